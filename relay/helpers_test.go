package relay

import (
	"crypto/ecdh"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/circuit"
)

// t0 is the fixed clock of the tests.
var t0 = time.Unix(1_700_000_000, 0)

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// node returns a test node ID: b repeated.
func node(b byte) NodeID {
	var id NodeID
	for i := range id {
		id[i] = b
	}
	return id
}

// testRand returns a deterministic random source for seed.
func testRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

// newTestTable returns a table for res whose circuit IDs come from a
// ChaCha8 seeded with seed, so tests are deterministic.
func newTestTable(tb testing.TB, res Resources, seed uint64) *Table {
	tb.Helper()
	t, err := NewTable(res)
	if err != nil {
		tb.Fatalf("NewTable: %v", err)
	}
	r := testRand(seed)
	t.randID = func() uint32 { return uint32(r.Uint64()) }
	return t
}

// mustOpen opens a relayed circuit and fails tb if it is refused.
func mustOpen(tb testing.TB, t *Table, now time.Time, prev NodeID, prevCID uint32, next NodeID) *Circuit {
	tb.Helper()
	c, r := t.Open(now, prev, prevCID, next, testKeys(tb))
	if c == nil || r != 0 {
		tb.Fatalf("Open(%x, %d, %x) refused: reason %d", prev[0], prevCID, next[0], r)
	}
	return c
}

// wantRefused fails tb unless an Open returned no circuit and reason.
func wantRefused(tb testing.TB, c *Circuit, got, want byte, what string) {
	tb.Helper()
	if c != nil || got != want {
		tb.Fatalf("%s: circuit %v, reason %d; want refused with %d", what, c != nil, got, want)
	}
}

// keyMaker builds real circuit keys by building onions and peeling them.
type keyMaker struct {
	r     io.Reader
	relay *ecdh.PrivateKey
	hops  []*ecdh.PrivateKey // the nodes after the relay
	cache *circuit.ReplayCache
}

// newKeyMaker returns a keyMaker drawing keys and onions from seed.
func newKeyMaker(tb testing.TB, seed uint64) *keyMaker {
	tb.Helper()
	m := &keyMaker{r: testRand(seed), cache: circuit.NewReplayCache(1 << 20)}
	m.relay = m.key(tb)
	for range circuit.MaxHops {
		m.hops = append(m.hops, m.key(tb))
	}
	return m
}

// key draws an X25519 key.
func (m *keyMaker) key(tb testing.TB) *ecdh.PrivateKey {
	tb.Helper()
	var seed [32]byte
	if _, err := io.ReadFull(m.r, seed[:]); err != nil {
		tb.Fatal(err)
	}
	k, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// path returns the path through keys, with IDs 1, 2, ...
func path(keys ...*ecdh.PrivateKey) []circuit.Hop {
	p := make([]circuit.Hop, len(keys))
	for i, k := range keys {
		p[i] = circuit.Hop{ID: node(byte(i + 1)), OnionKey: k.PublicKey()}
	}
	return p
}

// relayKeys returns the RelayKeys the first hop of a fresh two-hop
// circuit peels.
func (m *keyMaker) relayKeys(tb testing.TB) *circuit.RelayKeys {
	tb.Helper()
	onion, _, err := circuit.NewOnion(m.r, t0, path(m.relay, m.hops[0]))
	if err != nil {
		tb.Fatal(err)
	}
	res, err := circuit.Peel(m.relay, onion, t0, m.cache)
	if err != nil || res.Relay == nil {
		tb.Fatalf("Peel: %v", err)
	}
	return res.Relay
}

// terminal returns the Terminal the only hop of a fresh one-hop circuit
// peels.
func (m *keyMaker) terminal(tb testing.TB) *circuit.Terminal {
	tb.Helper()
	onion, _, err := circuit.NewOnion(m.r, t0, path(m.relay))
	if err != nil {
		tb.Fatal(err)
	}
	res, err := circuit.Peel(m.relay, onion, t0, m.cache)
	if err != nil || res.Term == nil {
		tb.Fatalf("Peel: %v", err)
	}
	return res.Term
}

// initiator returns the Initiator of a fresh circuit of n hops.
func (m *keyMaker) initiator(tb testing.TB, n int) *circuit.Initiator {
	tb.Helper()
	_, init, err := circuit.NewOnion(m.r, t0, path(m.hops[:n]...))
	if err != nil {
		tb.Fatal(err)
	}
	return init
}

// sharedKeys are real relay keys that tests which do not look at them
// share.
var sharedKeys struct {
	sync.Mutex
	keys *circuit.RelayKeys
	term *circuit.Terminal
	init *circuit.Initiator
}

// testKeys returns the shared relay keys.
func testKeys(tb testing.TB) *circuit.RelayKeys {
	tb.Helper()
	sharedKeys.Lock()
	defer sharedKeys.Unlock()
	if sharedKeys.keys == nil {
		m := newKeyMaker(tb, 99)
		sharedKeys.keys, sharedKeys.term, sharedKeys.init = m.relayKeys(tb), m.terminal(tb), m.initiator(tb, 3)
	}
	return sharedKeys.keys
}

// testTerm returns the shared Terminal.
func testTerm(tb testing.TB) *circuit.Terminal {
	testKeys(tb)
	sharedKeys.Lock()
	defer sharedKeys.Unlock()
	return sharedKeys.term
}

// testInit returns the shared Initiator.
func testInit(tb testing.TB) *circuit.Initiator {
	testKeys(tb)
	sharedKeys.Lock()
	defer sharedKeys.Unlock()
	return sharedKeys.init
}
