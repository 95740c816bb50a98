package registry

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTripAtBounds(t *testing.T) {
	r, k := fullRecord()
	b := mustSign(t, r, k)
	if len(b) != maxRecordLen {
		t.Errorf("full record is %d bytes, want maxRecordLen %d", len(b), maxRecordLen)
	}
	if maxRecordLen > MaxRecordSize {
		t.Fatalf("maxRecordLen %d > MaxRecordSize %d", maxRecordLen, MaxRecordSize)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	again := mustSign(t, got, k)
	if !bytes.Equal(again, b) {
		t.Fatal("re-signing the parsed record gives other bytes")
	}
}

func TestRecordRoundTripSmall(t *testing.T) {
	r, k := basicRecord(1, 5, t0)
	r.Listen = append(r.Listen, netip.MustParseAddrPort("[::ffff:192.0.2.9]:1"))
	got, err := Parse(mustSign(t, r, k))
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("Parse = %+v, %v; want %+v", got, err, r)
	}
	tomb := Record{ID: r.ID, Seq: 6, Issued: t0, Lifetime: time.Minute, Leaving: true}
	got, err = Parse(mustSign(t, tomb, k))
	if err != nil || !reflect.DeepEqual(got, tomb) {
		t.Fatalf("tombstone: Parse = %+v, %v", got, err)
	}
}

func TestSignRefuses(t *testing.T) {
	_, other := testKey(99)
	cases := []struct {
		name string
		edit func(*Record)
		want error
	}{
		{"too_many_listen", func(r *Record) { r.Listen = append(r.Listen, r.Listen[0]) }, ErrOversized},
		{"too_many_reflexive", func(r *Record) { r.Reflexive = append(r.Reflexive, r.Reflexive[0]) }, ErrOversized},
		{"too_many_home_relays", func(r *Record) { r.HomeRelays = append(r.HomeRelays, other) }, ErrOversized},
		{"too_many_neighbors", func(r *Record) { r.Neighbors = append(r.Neighbors, other) }, ErrOversized},
		{"too_many_services", func(r *Record) { r.Services = append(r.Services, Service{Name: "zzz"}) }, ErrOversized},
		{"long_service_name", func(r *Record) { r.Services[15].Name += "y" }, ErrOversized},
		{"long_service_meta", func(r *Record) { r.Services[0].Meta = append(r.Services[0].Meta, 1) }, ErrOversized},
		{"long_lifetime", func(r *Record) { r.Lifetime = MaxLifetime + time.Second }, ErrMalformed},
		{"zero_lifetime", func(r *Record) { r.Lifetime = 0 }, ErrMalformed},
		{"fractional_lifetime", func(r *Record) { r.Lifetime = time.Minute + time.Millisecond }, ErrMalformed},
		{"fractional_issued", func(r *Record) { r.Issued = r.Issued.Add(time.Millisecond) }, ErrMalformed},
		{"before_1970", func(r *Record) { r.Issued = time.Unix(-1, 0) }, ErrMalformed},
		{"zero_id", func(r *Record) { r.ID = [32]byte{} }, ErrMalformed},
		{"zero_home_relay", func(r *Record) { r.HomeRelays[0] = [32]byte{} }, ErrMalformed},
		{"repeated_neighbor", func(r *Record) { r.Neighbors[1] = r.Neighbors[0] }, ErrMalformed},
		{"unsorted_services", func(r *Record) { r.Services[0], r.Services[1] = r.Services[1], r.Services[0] }, ErrMalformed},
		{"bad_nat_class", func(r *Record) { r.Mapping = 4 }, ErrMalformed},
		{"zoned_address", func(r *Record) { r.Listen[0] = netip.MustParseAddrPort("[fe80::1%eth0]:1") }, ErrMalformed},
		{"invalid_address", func(r *Record) { r.Reflexive[0] = netip.AddrPort{} }, ErrMalformed},
		{"tombstone_with_addresses", func(r *Record) { r.Leaving = true }, ErrMalformed},
		{"key_mismatch", func(r *Record) { r.ID = other }, ErrForged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, k := fullRecord()
			c.edit(&r)
			if _, err := Sign(r, k); !errors.Is(err, c.want) {
				t.Fatalf("Sign = %v, want %v", err, c.want)
			}
		})
	}
}

func TestValidServiceName(t *testing.T) {
	for _, ok := range []string{"a", "chat", "my-svc_1.v2", strings.Repeat("a", MaxServiceName), "mycelium"} {
		if err := ValidServiceName(ok); err != nil {
			t.Errorf("ValidServiceName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Chat", "a b", "é", "mycelium.dns", strings.Repeat("a", MaxServiceName+1), "a/b"} {
		if err := ValidServiceName(bad); err == nil {
			t.Errorf("ValidServiceName(%q) = nil", bad)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	r, k := basicRecord(1, 5, t0)
	good := mustSign(t, r, k)
	other, _ := testKey(2)
	forged := mustSign(t, r, k)
	copy(forged[len(forged)-64:], mustSign(t, Record{ID: r.ID, Seq: 5, Issued: t0, Lifetime: time.Minute, Leaving: true}, k)[minRecordLen-64:])
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"oversized", make([]byte, MaxRecordSize+1), ErrOversized},
		{"truncated", good[:len(good)-1], ErrMalformed},
		{"trailing", append(bytes.Clone(good), 0), ErrMalformed},
		{"bad_version", flip(0), ErrMalformed},
		{"unknown_flag", func() []byte { b := bytes.Clone(good); b[1] |= 0x80; return b }(), ErrMalformed},
		{"bit_flip_in_seq", flip(40), ErrForged},
		{"bit_flip_in_signature", flip(len(good) - 1), ErrForged},
		{"other_signature", forged, ErrForged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse(c.b); !errors.Is(err, c.want) {
				t.Fatalf("Parse = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("signed_by_another_key", func(t *testing.T) {
		// Sign the body with another key by hand: Sign refuses to.
		body := appendBody(nil, r)
		b := append(body, edSign(other, body)...)
		if _, err := Parse(b); !errors.Is(err, ErrForged) {
			t.Fatalf("Parse = %v, want ErrForged", err)
		}
	})
}

func TestCheckTime(t *testing.T) {
	r, _ := basicRecord(1, 1, t0)
	if err := r.CheckTime(t0); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckTime(r.Expires()); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v", err)
	}
	if err := r.CheckTime(r.Expires().Add(-time.Nanosecond)); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	if err := r.CheckTime(t0.Add(-MaxClockSkew)); err != nil {
		t.Fatalf("at the skew bound: %v", err)
	}
	if err := r.CheckTime(t0.Add(-MaxClockSkew - time.Second)); !errors.Is(err, ErrFarFuture) {
		t.Fatalf("beyond the skew bound: %v", err)
	}
}

func TestNATClassString(t *testing.T) {
	want := []string{"unknown", "endpoint-independent", "address-dependent", "address-and-port-dependent"}
	for i, w := range want {
		if got := NATClass(i).String(); got != w {
			t.Errorf("NATClass(%d) = %q, want %q", i, got, w)
		}
	}
}
