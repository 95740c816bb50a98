package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func TestPunchRoundTrip(t *testing.T) {
	var id [32]byte
	id[0], id[31] = 1, 2
	for _, m := range []PunchMsg{
		{Type: PunchConnect, ID: id, Candidates: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:4242"), netip.MustParseAddrPort("[2001:db8::1]:9")}},
		{Type: PunchConnect, ID: id},
		{Type: PunchSync},
		{Type: PunchRefused, Reason: RefusedNoPunch},
	} {
		b, err := AppendPunch(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadPunch(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip %+v -> %+v", m, got)
		}
	}
	full := PunchMsg{Type: PunchConnect}
	for i := range MaxPunchCandidates {
		full.Candidates = append(full.Candidates, netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), uint16(i+1)))
	}
	b, err := AppendPunch(nil, full)
	if err != nil || len(b) != 2+MaxPunchMessage {
		t.Fatalf("full CONNECT: %d bytes, %v; want %d", len(b), err, 2+MaxPunchMessage)
	}
	full.Candidates = append(full.Candidates, full.Candidates[0])
	if _, err := AppendPunch(nil, full); err == nil {
		t.Fatal("encoded too many candidates")
	}
}

func TestPunchRejects(t *testing.T) {
	for name, body := range map[string][]byte{
		"empty":        {},
		"type":         {9},
		"short":        {PunchConnect, 1},
		"count":        append(append([]byte{PunchConnect}, make([]byte, 32)...), MaxPunchCandidates+1),
		"family":       append(append([]byte{PunchConnect}, make([]byte, 32)...), 1, 5, 1, 2, 3, 4, 0, 1),
		"port_zero":    append(append([]byte{PunchConnect}, make([]byte, 32)...), 1, 4, 1, 2, 3, 4, 0, 0),
		"unspecified":  append(append([]byte{PunchConnect}, make([]byte, 32)...), 1, 4, 0, 0, 0, 0, 0, 1),
		"truncated":    append(append([]byte{PunchConnect}, make([]byte, 32)...), 1, 4, 1, 2),
		"trailing":     {PunchSync, 0},
		"refused_long": {PunchRefused, 1, 2},
	} {
		if _, err := ParsePunch(body); !errors.Is(err, ErrBadPunch) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := ReadPunch(bytes.NewReader([]byte{0xff, 0xff})); !errors.Is(err, ErrBadPunch) {
		t.Errorf("oversized frame: %v", err)
	}
}

func FuzzParsePunch(f *testing.F) {
	b, _ := AppendPunch(nil, PunchMsg{Type: PunchConnect, Candidates: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:1")}})
	f.Add(b[2:])
	f.Add([]byte{PunchSync})
	f.Add([]byte{PunchRefused, 2})
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParsePunch(body)
		if err != nil {
			return
		}
		if len(m.Candidates) > MaxPunchCandidates {
			t.Fatal("too many candidates")
		}
		out, err := AppendPunch(nil, m)
		if err != nil {
			t.Fatalf("a parsed message does not encode: %v", err)
		}
		if !bytes.Equal(out[2:], body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", out[2:], body)
		}
	})
}
