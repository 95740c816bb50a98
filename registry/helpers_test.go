package registry

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// t0 is the start of test time: a whole second.
var t0 = time.Unix(1_700_000_000, 0).UTC()

// testKey returns a deterministic key and its ID for index i.
func testKey(i int) (ed25519.PrivateKey, identity.NodeID) {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i)+1)
	seed[31] = 0x5a
	k := ed25519.NewKeyFromSeed(seed[:])
	return k, identity.NodeID(k.Public().(ed25519.PublicKey))
}

// basicRecord is a small valid record of key i.
func basicRecord(i int, seq uint64, issued time.Time) (Record, ed25519.PrivateKey) {
	k, id := testKey(i)
	return Record{
		ID:       id,
		Seq:      seq,
		Issued:   issued,
		Lifetime: 30 * time.Minute,
		Inbound:  true,
		Listen:   []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:4433")},
	}, k
}

// mustSign signs r or fails the test.
func mustSign(t testing.TB, r Record, k ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := Sign(r, k)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return b
}

// fullRecord fills every list to its bound with its largest items.
func fullRecord() (Record, ed25519.PrivateKey) {
	k, id := testKey(1000)
	r := Record{
		ID: id, Seq: 1<<64 - 1, Issued: t0, Lifetime: MaxLifetime,
		Inbound: true, Mapping: NATAddressAndPortDependent, Filtering: NATAddressDependent,
		Relay: true, RelayCapacity: 1<<32 - 1, RelayLoad: 7,
	}
	for i := range MaxAddrs {
		r.Listen = append(r.Listen, netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1)), uint16(1000+i)))
		r.Reflexive = append(r.Reflexive, netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%x", i+1)), 65535))
	}
	for i := range MaxHomeRelays {
		_, h := testKey(2000 + i)
		r.HomeRelays = append(r.HomeRelays, h)
	}
	for i := range MaxNeighbors {
		_, n := testKey(3000 + i)
		r.Neighbors = append(r.Neighbors, n)
	}
	for i := range MaxServices {
		name := fmt.Sprintf("svc%02d", i) + strings.Repeat("x", MaxServiceName-5)
		r.Services = append(r.Services, Service{Name: name, Meta: []byte(strings.Repeat("m", MaxServiceMeta))})
	}
	for i := range r.OnionKey {
		r.OnionKey[i] = byte(i + 1)
	}
	return r, k
}

// edSign signs body as Sign would, with any key.
func edSign(k ed25519.PrivateKey, body []byte) []byte {
	return ed25519.Sign(k, signedMessage(body))
}

// newTestMachine returns the Machine of key i.
func newTestMachine(t testing.TB, i int, cfg Config) *Machine {
	t.Helper()
	k, _ := testKey(i)
	m, err := New(k, cfg, rand.New(rand.NewPCG(uint64(i), 1)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// changes picks the Changed outputs.
func changes(out []Output) []Changed {
	var c []Changed
	for _, o := range out {
		if ch, ok := o.(Changed); ok {
			c = append(c, ch)
		}
	}
	return c
}

// published picks the Publish payloads.
func published(out []Output) [][]byte {
	var p [][]byte
	for _, o := range out {
		if pb, ok := o.(Publish); ok {
			p = append(p, pb.Payload)
		}
	}
	return p
}

// timerOf returns the first SetTimer of kind k.
func timerOf(t testing.TB, out []Output, k TimerKind) SetTimer {
	t.Helper()
	for _, o := range out {
		if st, ok := o.(SetTimer); ok && st.Timer.Kind == k {
			return st
		}
	}
	t.Fatalf("no %v timer in %v", k, out)
	return SetTimer{}
}
