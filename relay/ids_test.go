package relay

import (
	"testing"

	"github.com/mycelium-net/mycelium/internal/wire"
)

// TestIDAllocationChurn opens and closes many circuits toward a few next
// hops and checks after every step that the IDs in use toward each
// next hop are nonzero, unique, and what the lookups find.
func TestIDAllocationChurn(t *testing.T) {
	res := DefaultResources()
	res.MaxCircuitsPerPeer = res.MaxCircuits
	tab := newTestTable(t, res, 11)
	r := testRand(12)
	nexts := []NodeID{node(0xA1), node(0xA2), node(0xA3)}
	open := map[*Circuit]bool{}
	var prevCID uint32
	for step := range 20_000 {
		if len(open) > 0 && (len(open) >= 2000 || r.Uint64()%3 == 0) {
			for c := range open { // any one
				tab.Close(c, wire.ReasonClosed)
				delete(open, c)
				break
			}
			continue
		}
		prevCID++
		var c *Circuit
		if step%5 == 0 {
			c, _ = tab.OpenInitiator(t0, nexts[step%3], testInit(t))
		} else {
			c = mustOpen(t, tab, t0, node(1), prevCID, nexts[step%3])
		}
		if c == nil {
			t.Fatalf("step %d refused", step)
		}
		open[c] = true
	}
	used := map[linkKey]*Circuit{}
	for c := range open {
		k := linkKey{c.Next, c.NextCID}
		if c.NextCID == 0 {
			t.Fatal("circuit ID 0 allocated")
		}
		if other, dup := used[k]; dup {
			t.Fatalf("ID %d toward %x given to two circuits (%p, %p)", c.NextCID, c.Next[0], c, other)
		}
		used[k] = c
		if tab.FromNext(c.Next, c.NextCID) != c {
			t.Fatalf("FromNext does not find circuit %d", c.NextCID)
		}
	}
	if s := tab.Stats(); s.Circuits != len(open) {
		t.Fatalf("table holds %d circuits, want %d", s.Circuits, len(open))
	}
}

// TestIDAllocationCollisions forces the random IDs into a tiny range:
// allocation skips 0 and IDs in use toward the same peer, reuses IDs
// toward other peers, and refuses with ReasonCapacity when it finds no
// free ID, leaving the table as it was.
func TestIDAllocationCollisions(t *testing.T) {
	tab := newTestTable(t, DefaultResources(), 13)
	r := testRand(14)
	tab.randID = func() uint32 { return uint32(r.Uint64() % 4) } // 0..3
	a, b := node(0xA1), node(0xA2)
	seen := map[uint32]bool{}
	var toA []*Circuit
	for i := range 3 {
		c := mustOpen(t, tab, t0, node(1), uint32(i+1), a)
		if c.NextCID == 0 || seen[c.NextCID] {
			t.Fatalf("circuit %d got ID %d (in use: %v)", i, c.NextCID, seen)
		}
		seen[c.NextCID] = true
		toA = append(toA, c)
	}
	before := tab.Stats()
	c, reason := tab.Open(t0, node(1), 4, a, testKeys(t))
	wantRefused(t, c, reason, wire.ReasonCapacity, "no free ID toward a")
	after := tab.Stats()
	if after.Circuits != before.Circuits || after.Memory != before.Memory || tab.FromPrev(node(1), 4) != nil {
		t.Fatal("a refused circuit left state behind")
	}
	// Toward b the same three IDs are free.
	for i := range 3 {
		mustOpen(t, tab, t0, node(1), uint32(10+i), b)
	}
	// Closing a circuit toward a frees its ID for the next one.
	tab.Close(toA[1], wire.ReasonClosed)
	c = mustOpen(t, tab, t0, node(1), 4, a)
	if c.NextCID != toA[1].NextCID {
		t.Fatalf("got ID %d, want the freed %d", c.NextCID, toA[1].NextCID)
	}
}
