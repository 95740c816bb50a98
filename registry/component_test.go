package registry

import (
	"slices"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// islandRecords builds 10 nodes: 0..7 a ring of mutual links (each also
// naming its ring neighbours), 8 and 9 an island that names only each
// other, while the stale records of 0 and 1 still name 8 and 9 (their
// links before the cut). Nodes 2..7 take inbound connections; the rest do
// not.
func islandRecords() ([]Record, []identity.NodeID) {
	ids := make([]identity.NodeID, 10)
	for i := range ids {
		_, ids[i] = testKey(i)
	}
	recs := make([]Record, 10)
	for i := range recs {
		// 0 and 1 have not re-published since the cut; the island has.
		issued := t0.Add(time.Minute)
		switch {
		case i < 2:
			issued = t0
		case i >= 8:
			issued = t0.Add(2 * time.Minute)
		}
		recs[i] = Record{ID: ids[i], Inbound: i >= 2 && i < 8, Issued: issued}
	}
	for i := range 8 {
		recs[i].Neighbors = []identity.NodeID{ids[(i+7)%8], ids[(i+1)%8]}
	}
	recs[0].Neighbors = append(recs[0].Neighbors, ids[8])
	recs[1].Neighbors = append(recs[1].Neighbors, ids[9])
	recs[8].Neighbors = []identity.NodeID{ids[9]}
	recs[9].Neighbors = []identity.NodeID{ids[8]}
	return recs, ids
}

func TestComponentOfIsland(t *testing.T) {
	recs, ids := islandRecords()
	c := ComponentOf(recs, ids[8], []identity.NodeID{ids[9]})
	if c.Size != 2 || c.Mapped != 10 || c.Largest != 8 {
		t.Fatalf("island member: size %d of %d mapped, largest other %d, want 2 of 10, 8", c.Size, c.Mapped, c.Largest)
	}
	if !c.Split(6) {
		t.Fatalf("island of 2 in 10 not reported split")
	}
	if want := ids[2:8]; !slices.Equal(c.Outside, want) {
		t.Fatalf("outside = %v, want the inbound nodes 2..7", c.Outside)
	}
	if c.Split(11) {
		t.Fatalf("split reported below minMapped")
	}
}

func TestComponentOfMain(t *testing.T) {
	recs, ids := islandRecords()
	// Node 2 sees the ring. The stale records of 0 and 1 name 8 and 9,
	// whose newer records do not name them back: those links are gone.
	c := ComponentOf(recs, ids[2], []identity.NodeID{ids[1], ids[3]})
	if c.Size != 8 || c.Mapped != 10 || c.Split(6) {
		t.Fatalf("main component: size %d of %d mapped (split %v), want 8 of 10, not split", c.Size, c.Mapped, c.Split(6))
	}
	if len(c.Outside) != 0 {
		t.Fatalf("outside = %v, want none inbound", c.Outside)
	}
}

// A link younger than the silent end's record counts: that end has not
// re-published since it came up. (Seen from 9: 8's live view would
// settle it for 8.)
func TestComponentOfNewLink(t *testing.T) {
	recs, ids := islandRecords()
	recs[3].Neighbors = append(recs[3].Neighbors, ids[8])
	recs[3].Issued = t0.Add(3 * time.Minute) // newer than 8's record
	c := ComponentOf(recs, ids[9], []identity.NodeID{ids[8]})
	if c.Size != 10 || c.Split(6) {
		t.Fatalf("island member with a new link out: size %d (split %v), want 10, not split", c.Size, c.Split(6))
	}
	// The same link named by a record older than 8's is one 8 dropped.
	recs[3].Issued = t0.Add(time.Minute)
	c = ComponentOf(recs, ids[9], []identity.NodeID{ids[8]})
	if c.Size != 2 || !c.Split(6) {
		t.Fatalf("island member, old link: size %d (split %v), want 2, split", c.Size, c.Split(6))
	}
}

// A node's own live view outranks every record: a stale record naming
// it does not link it when its view does not name that node.
func TestComponentOfLiveView(t *testing.T) {
	recs, ids := islandRecords()
	recs[2].Issued = t0.Add(time.Hour) // far newer than anything
	recs[2].Neighbors = append(recs[2].Neighbors, ids[8])
	c := ComponentOf(recs, ids[8], []identity.NodeID{ids[9]})
	if c.Size != 2 {
		t.Fatalf("a record naming us while our live view does not name it: size %d, want 2", c.Size)
	}
}

func TestComponentOfHalves(t *testing.T) {
	recs, ids := islandRecords()
	// Cut the ring into 0..3 and 4..7: both halves must report a split.
	recs[3].Neighbors = []identity.NodeID{ids[2]}
	recs[4].Neighbors = []identity.NodeID{ids[5]}
	recs[0].Neighbors = []identity.NodeID{ids[1]}
	recs[7].Neighbors = []identity.NodeID{ids[6]}
	recs = recs[:8]
	for _, self := range []int{0, 5} {
		var active []identity.NodeID
		for _, r := range recs {
			if r.ID == ids[self] {
				active = r.Neighbors
			}
		}
		c := ComponentOf(recs, ids[self], active)
		if c.Size != 4 || c.Mapped != 8 || !c.Split(8) {
			t.Fatalf("node %d: size %d of %d mapped (split %v), want 4 of 8, split", self, c.Size, c.Mapped, c.Split(8))
		}
	}
}

func TestComponentOfAlone(t *testing.T) {
	recs, ids := islandRecords()
	// A node with no active view and no record of its own: alone, and
	// counted among the mapped.
	_, me := testKey(42)
	c := ComponentOf(recs, me, nil)
	if c.Size != 1 || c.Mapped != 11 || !c.Split(2) {
		t.Fatalf("alone: size %d of %d mapped (split %v), want 1 of 11, split", c.Size, c.Mapped, c.Split(2))
	}
	// Tombstones and first records (no neighbours) map nothing.
	for i := range recs {
		recs[i].Neighbors = nil
	}
	c = ComponentOf(recs, ids[0], []identity.NodeID{ids[1]})
	if c.Size != 1 || c.Mapped != 1 || c.Split(2) {
		t.Fatalf("unmapped overlay: size %d of %d mapped (split %v), want 1 of 1, not split", c.Size, c.Mapped, c.Split(2))
	}
}

// Records of nodes that died without a tombstone stay until they expire,
// naming neighbours whose newer records disown them: each is a component
// of one, and a healthy overlay must not read them as the rest of it.
func TestComponentOfDeadRecords(t *testing.T) {
	recs, ids := islandRecords()
	recs = recs[:8] // the ring, no island
	for i := range 8 {
		_, dead := testKey(100 + i)
		recs = append(recs, Record{ID: dead, Inbound: true, Issued: t0.Add(-time.Hour),
			Neighbors: []identity.NodeID{ids[i]}})
	}
	c := ComponentOf(recs, ids[2], []identity.NodeID{ids[1], ids[3]})
	if c.Size != 8 || c.Mapped != 16 || c.Largest != 1 || c.Split(6) {
		t.Fatalf("healthy ring among dead records: size %d of %d mapped, largest other %d (split %v), want 8 of 16, 1, not split",
			c.Size, c.Mapped, c.Largest, c.Split(6))
	}
}
