package circuit

import (
	"bytes"
	"crypto/ecdh"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// t0 is the fixed clock of the tests.
var t0 = time.Unix(1_700_000_000, 0)

// testRand returns a deterministic random source for seed.
func testRand(seed uint64) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

// testNode is one node of a test network: its ID, onion key and replay
// cache.
type testNode struct {
	id    NodeID
	priv  *ecdh.PrivateKey
	cache *ReplayCache
}

// makeNodes returns n nodes with keys and IDs drawn from r.
func makeNodes(tb testing.TB, r io.Reader, n int) []testNode {
	tb.Helper()
	nodes := make([]testNode, n)
	for i := range nodes {
		var seed [32]byte
		if _, err := io.ReadFull(r, seed[:]); err != nil {
			tb.Fatal(err)
		}
		priv, err := ecdh.X25519().NewPrivateKey(seed[:])
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(r, nodes[i].id[:]); err != nil {
			tb.Fatal(err)
		}
		nodes[i].priv = priv
		nodes[i].cache = NewReplayCache(1024)
	}
	return nodes
}

// pathOf returns the path through nodes, in order.
func pathOf(nodes []testNode) []Hop {
	path := make([]Hop, len(nodes))
	for i, nd := range nodes {
		path[i] = Hop{ID: nd.id, OnionKey: nd.priv.PublicKey()}
	}
	return path
}

// testCircuit is a circuit built and peeled along its whole path.
type testCircuit struct {
	nodes  []testNode
	init   *Initiator
	onions [][]byte // the onion as each hop received it
	relays []*RelayKeys
	term   *Terminal
}

// buildCircuit builds an n-hop circuit from seed and peels it at every
// hop, checking what each hop learns.
func buildCircuit(tb testing.TB, seed uint64, n int) *testCircuit {
	tb.Helper()
	r := testRand(seed)
	c := &testCircuit{nodes: makeNodes(tb, r, n)}
	onion, init, err := NewOnion(r, t0, pathOf(c.nodes))
	if err != nil {
		tb.Fatalf("NewOnion(%d hops): %v", n, err)
	}
	if len(onion) != OnionSize {
		tb.Fatalf("onion is %d bytes, want %d", len(onion), OnionSize)
	}
	if init.Hops() != n {
		tb.Fatalf("Hops() = %d, want %d", init.Hops(), n)
	}
	c.init = init
	for i, nd := range c.nodes {
		c.onions = append(c.onions, onion)
		res, err := Peel(nd.priv, onion, t0, nd.cache)
		if err != nil {
			tb.Fatalf("%d hops: Peel at hop %d: %v", n, i, err)
		}
		if i < n-1 {
			if res.Terminal || res.Term != nil || res.Relay == nil {
				tb.Fatalf("%d hops: hop %d is not a relay: %+v", n, i, res)
			}
			if res.Next != c.nodes[i+1].id {
				tb.Fatalf("%d hops: hop %d forwards to %x, want %x", n, i, res.Next, c.nodes[i+1].id)
			}
			if len(res.Forward) != OnionSize {
				tb.Fatalf("%d hops: hop %d forwards %d bytes, want %d", n, i, len(res.Forward), OnionSize)
			}
			c.relays = append(c.relays, res.Relay)
			onion = res.Forward
			continue
		}
		if !res.Terminal || res.Term == nil || res.Relay != nil || res.Forward != nil || res.Next != (NodeID{}) {
			tb.Fatalf("%d hops: last hop is not the terminal: %+v", n, res)
		}
		c.term = res.Term
	}
	return c
}

// forward passes pkt through every relay's Forward, as the terminal
// receives it.
func (c *testCircuit) forward(tb testing.TB, pkt []byte) []byte {
	tb.Helper()
	for i, r := range c.relays {
		if err := r.Forward(pkt); err != nil {
			tb.Fatalf("relay %d Forward: %v", i, err)
		}
	}
	return pkt
}

// backward passes pkt through every relay's Backward, from the last relay
// to the first.
func (c *testCircuit) backward(tb testing.TB, pkt []byte) []byte {
	tb.Helper()
	for i := len(c.relays) - 1; i >= 0; i-- {
		if err := c.relays[i].Backward(pkt); err != nil {
			tb.Fatalf("relay %d Backward: %v", i, err)
		}
	}
	return pkt
}

// payloadOf returns a recognisable payload of n bytes.
func payloadOf(n int, tag byte) []byte {
	p := bytes.Repeat([]byte("plaintext payload "), n/18+1)[:n]
	if n > 0 {
		p[0] = tag
	}
	return p
}

// wantErr fails tb unless err wraps target.
func wantErr(tb testing.TB, err, target error, what string) {
	tb.Helper()
	if !errors.Is(err, target) {
		tb.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// clone returns a copy of b.
func clone(b []byte) []byte { return append([]byte(nil), b...) }
