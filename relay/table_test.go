package relay

import (
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/wire"
)

func TestOpenAndLookups(t *testing.T) {
	tab := newTestTable(t, DefaultResources(), 1)
	a, b, c := node(1), node(2), node(3)
	keys := testKeys(t)

	r1, reason := tab.Open(t0, a, 7, b, keys)
	if r1 == nil || reason != 0 {
		t.Fatalf("Open refused: %d", reason)
	}
	if r1.Kind != KindRelay || r1.Prev != a || r1.PrevCID != 7 || r1.Next != b || r1.NextCID == 0 || r1.Keys != keys {
		t.Fatalf("circuit %+v", r1)
	}
	if r1.Reason() != 0 {
		t.Fatalf("open circuit has reason %d", r1.Reason())
	}
	term, _ := tab.OpenTerminal(t0, c, 7, testTerm(t))
	init, _ := tab.OpenInitiator(t0, b, testInit(t))
	if term == nil || init == nil {
		t.Fatal("an end was refused")
	}
	if term.Kind != KindTerminal || term.Next != (NodeID{}) || term.NextCID != 0 || term.Term == nil {
		t.Fatalf("terminal %+v", term)
	}
	if init.Kind != KindInitiator || init.Prev != (NodeID{}) || init.PrevCID != 0 || init.NextCID == 0 || init.Init == nil {
		t.Fatalf("initiator %+v", init)
	}
	if init.NextCID == r1.NextCID {
		t.Fatal("two circuits toward one peer got the same ID")
	}

	for _, l := range []struct {
		name string
		got  *Circuit
		want *Circuit
	}{
		{"relay from prev", tab.FromPrev(a, 7), r1},
		{"relay from next", tab.FromNext(b, r1.NextCID), r1},
		{"terminal from prev", tab.FromPrev(c, 7), term},
		{"initiator from next", tab.FromNext(b, init.NextCID), init},
		{"prev ID on the next link", tab.FromNext(b, 7), nil},
		{"next ID on the prev link", tab.FromPrev(a, r1.NextCID), nil},
		{"other peer", tab.FromPrev(b, 7), nil},
		{"prev looked up as next", tab.FromNext(a, 7), nil},
		{"zero ID", tab.FromPrev(a, 0), nil},
	} {
		if l.got != l.want {
			t.Errorf("%s: got %p, want %p", l.name, l.got, l.want)
		}
	}

	tab.Close(r1, wire.ReasonClosed)
	if tab.FromPrev(a, 7) != nil || tab.FromNext(b, r1.NextCID) != nil {
		t.Fatal("a closed circuit is still found")
	}
	if r1.Reason() != wire.ReasonClosed {
		t.Fatalf("Reason() = %d after Close", r1.Reason())
	}
	if tab.FromPrev(c, 7) != term || tab.FromNext(b, init.NextCID) != init {
		t.Fatal("closing one circuit removed others")
	}
	if s := tab.Stats(); s.Circuits != 2 || s.Relays != 0 || s.Terminals != 1 || s.Initiators != 1 {
		t.Fatalf("stats after close: %+v", s)
	}
}

func TestPerPeerLimit(t *testing.T) {
	res := DefaultResources()
	res.MaxCircuitsPerPeer = 3
	tab := newTestTable(t, res, 2)
	a, b, n := node(1), node(2), node(9)
	var fromA []*Circuit
	for i := range 3 {
		fromA = append(fromA, mustOpen(t, tab, t0, a, uint32(i+1), n))
	}
	c, r := tab.Open(t0, a, 4, n, testKeys(t))
	wantRefused(t, c, r, wire.ReasonPeerLimit, "a's fourth relayed circuit")
	c, r = tab.OpenTerminal(t0, a, 5, testTerm(t))
	wantRefused(t, c, r, wire.ReasonPeerLimit, "a's fourth circuit, ending here")
	for i := range 3 {
		mustOpen(t, tab, t0, b, uint32(i+1), n)
	}
	// Our own circuits do not count against any previous hop.
	if c, r := tab.OpenInitiator(t0, a, testInit(t)); c == nil {
		t.Fatalf("initiator toward a refused: %d", r)
	}
	tab.Close(fromA[1], wire.ReasonClosed)
	mustOpen(t, tab, t0, a, 4, n)
	c, r = tab.Open(t0, a, 6, n, testKeys(t))
	wantRefused(t, c, r, wire.ReasonPeerLimit, "a back at its limit")
	if got := tab.Stats().Refused[wire.ReasonPeerLimit]; got != 3 {
		t.Fatalf("peer-limit refusals %d, want 3", got)
	}
}

func TestCapacity(t *testing.T) {
	res := DefaultResources()
	res.MaxCircuits, res.MaxCircuitsPerPeer = 4, 4
	tab := newTestTable(t, res, 3)
	first := mustOpen(t, tab, t0, node(1), 1, node(9))
	mustOpen(t, tab, t0, node(2), 1, node(9))
	if c, _ := tab.OpenTerminal(t0, node(3), 1, testTerm(t)); c == nil {
		t.Fatal("terminal refused below capacity")
	}
	if c, _ := tab.OpenInitiator(t0, node(9), testInit(t)); c == nil {
		t.Fatal("initiator refused below capacity")
	}
	c, r := tab.Open(t0, node(4), 1, node(9), testKeys(t))
	wantRefused(t, c, r, wire.ReasonCapacity, "fifth circuit")
	c, r = tab.OpenTerminal(t0, node(4), 2, testTerm(t))
	wantRefused(t, c, r, wire.ReasonCapacity, "fifth circuit, a terminal")
	c, r = tab.OpenInitiator(t0, node(4), testInit(t))
	wantRefused(t, c, r, wire.ReasonCapacity, "fifth circuit, an initiator")
	tab.Close(first, wire.ReasonClosed)
	mustOpen(t, tab, t0, node(4), 1, node(9))
}

func TestAllowList(t *testing.T) {
	res := DefaultResources()
	res.Allow = []NodeID{node(1), node(2)}
	tab := newTestTable(t, res, 4)
	res.Allow[1] = node(5) // the table keeps its own copy
	mustOpen(t, tab, t0, node(1), 1, node(9))
	mustOpen(t, tab, t0, node(2), 1, node(9))
	c, r := tab.Open(t0, node(5), 1, node(9), testKeys(t))
	wantRefused(t, c, r, wire.ReasonNotAllowed, "relay for a peer not on the list")
	// The allow-list is for relaying: circuits to us and from us pass.
	if c, r := tab.OpenTerminal(t0, node(5), 1, testTerm(t)); c == nil {
		t.Fatalf("terminal from a peer not on the list refused: %d", r)
	}
	if c, r := tab.OpenInitiator(t0, node(5), testInit(t)); c == nil {
		t.Fatalf("initiator toward a peer not on the list refused: %d", r)
	}
}

func TestDraining(t *testing.T) {
	tab := newTestTable(t, DefaultResources(), 5)
	old := mustOpen(t, tab, t0, node(1), 1, node(9))
	tab.Drain(at(time.Second))
	c, r := tab.Open(at(time.Second), node(2), 1, node(9), testKeys(t))
	wantRefused(t, c, r, wire.ReasonDraining, "relay while draining")
	c, r = tab.OpenTerminal(at(time.Second), node(2), 2, testTerm(t))
	wantRefused(t, c, r, wire.ReasonDraining, "terminal while draining")
	c, r = tab.OpenInitiator(at(time.Second), node(2), testInit(t))
	wantRefused(t, c, r, wire.ReasonDraining, "initiator while draining")
	if !old.AllowForward(at(2*time.Second), 100) || tab.FromPrev(node(1), 1) != old {
		t.Fatal("an existing circuit stopped flowing on Drain")
	}
	if s := tab.Stats(); !s.Draining || s.Refused[wire.ReasonDraining] != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMemoryLimit(t *testing.T) {
	res := DefaultResources()
	res.MaxMemory = 3*relayCost + relayCost/2
	tab := newTestTable(t, res, 6)
	for i := range 3 {
		mustOpen(t, tab, t0, node(byte(i+1)), 1, node(9))
	}
	c, r := tab.Open(t0, node(4), 1, node(9), testKeys(t))
	wantRefused(t, c, r, wire.ReasonMemory, "fourth circuit")
	if s := tab.Stats(); s.Memory != 3*relayCost || s.MaxMemory != res.MaxMemory {
		t.Fatalf("memory %d of %d, want %d", s.Memory, s.MaxMemory, 3*relayCost)
	}
	// An end costs more than a relayed circuit: with room for a relayed
	// one only, it is refused.
	res.MaxMemory = relayCost
	tab = newTestTable(t, res, 6)
	c, r = tab.OpenTerminal(t0, node(1), 1, testTerm(t))
	wantRefused(t, c, r, wire.ReasonMemory, "terminal over the memory bound")
	mustOpen(t, tab, t0, node(1), 1, node(9))
}

// TestRefusalOrder checks each pair of neighbouring reasons in the order
// draining, allow-list, memory, capacity, per-peer, duplicate ID.
func TestRefusalOrder(t *testing.T) {
	a, b, n := node(1), node(2), node(9)
	for _, tc := range []struct {
		name  string
		res   func(*Resources)
		setup func(*Table)
		want  byte
	}{
		{"draining before allow-list", func(r *Resources) { r.Allow = []NodeID{a} }, func(t *Table) { t.Drain(t0) }, wire.ReasonDraining},
		{"allow-list before memory", func(r *Resources) { r.Allow, r.MaxMemory = []NodeID{a}, relayCost }, nil, wire.ReasonNotAllowed},
		{"memory before capacity", func(r *Resources) { r.MaxCircuits, r.MaxCircuitsPerPeer, r.MaxMemory = 1, 1, relayCost }, nil, wire.ReasonMemory},
		{"capacity before per-peer", func(r *Resources) { r.MaxCircuits, r.MaxCircuitsPerPeer = 1, 1 }, nil, wire.ReasonCapacity},
		{"per-peer before duplicate", func(r *Resources) { r.MaxCircuitsPerPeer = 1 }, nil, wire.ReasonPeerLimit},
	} {
		res := DefaultResources()
		tc.res(&res)
		if len(res.Allow) > 0 {
			res.Allow = append(res.Allow, b)
		}
		tab := newTestTable(t, res, 7)
		mustOpen(t, tab, t0, b, 1, n) // fills memory, capacity and b's quota
		if tc.setup != nil {
			tc.setup(tab)
		}
		prev := b
		if tc.want == wire.ReasonDraining || tc.want == wire.ReasonNotAllowed {
			prev = node(3) // not on the list
		}
		// From b, ID 1 is also a duplicate.
		c, r := tab.Open(t0, prev, 1, n, testKeys(t))
		wantRefused(t, c, r, tc.want, tc.name)
	}
}

func TestDuplicateID(t *testing.T) {
	tab := newTestTable(t, DefaultResources(), 8)
	first := mustOpen(t, tab, t0, node(1), 5, node(9))
	c, r := tab.Open(t0, node(1), 5, node(8), testKeys(t))
	wantRefused(t, c, r, wire.ReasonDuplicateID, "same ID from the same peer")
	c, r = tab.OpenTerminal(t0, node(1), 5, testTerm(t))
	wantRefused(t, c, r, wire.ReasonDuplicateID, "same ID from the same peer, ending here")
	mustOpen(t, tab, t0, node(2), 5, node(9)) // another link, same number
	tab.Close(first, wire.ReasonClosed)
	again := mustOpen(t, tab, t0, node(1), 5, node(9))
	// Closing the old circuit again must not remove the new one.
	tab.Close(first, wire.ReasonClosed)
	if tab.FromPrev(node(1), 5) != again || tab.FromNext(node(9), again.NextCID) != again {
		t.Fatal("closing a closed circuit removed its successor")
	}
	if s := tab.Stats(); s.Circuits != 2 || s.Closed[wire.ReasonClosed] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBadArguments(t *testing.T) {
	tab := newTestTable(t, DefaultResources(), 9)
	keys := testKeys(t)
	for name, open := range map[string]func() (*Circuit, byte){
		"zero prevCID":   func() (*Circuit, byte) { return tab.Open(t0, node(1), 0, node(2), keys) },
		"zero prev":      func() (*Circuit, byte) { return tab.Open(t0, NodeID{}, 1, node(2), keys) },
		"zero next":      func() (*Circuit, byte) { return tab.Open(t0, node(1), 1, NodeID{}, keys) },
		"nil keys":       func() (*Circuit, byte) { return tab.Open(t0, node(1), 1, node(2), nil) },
		"terminal cid 0": func() (*Circuit, byte) { return tab.OpenTerminal(t0, node(1), 0, testTerm(t)) },
		"terminal nil":   func() (*Circuit, byte) { return tab.OpenTerminal(t0, node(1), 1, nil) },
		"initiator zero": func() (*Circuit, byte) { return tab.OpenInitiator(t0, NodeID{}, testInit(t)) },
		"initiator nil":  func() (*Circuit, byte) { return tab.OpenInitiator(t0, node(2), nil) },
	} {
		c, r := open()
		wantRefused(t, c, r, wire.ReasonBadOnion, name)
	}
	if s := tab.Stats(); s.Circuits != 0 || s.Memory != 0 || s.Refused[wire.ReasonBadOnion] != 8 {
		t.Fatalf("stats %+v", s)
	}
	// Nil and foreign circuits are ignored, not panicked on.
	var nilc *Circuit
	tab.Close(nil, wire.ReasonClosed)
	if nilc.AllowForward(t0, 1) || nilc.AllowBackward(t0, 1) || nilc.Reason() != 0 {
		t.Fatal("a nil circuit allowed a packet")
	}
	other := newTestTable(t, DefaultResources(), 10)
	c := mustOpen(t, other, t0, node(1), 1, node(2))
	tab.Close(c, wire.ReasonClosed)
	if c.Reason() != 0 || other.FromPrev(node(1), 1) != c {
		t.Fatal("a table closed another table's circuit")
	}
	var zero Circuit
	if zero.AllowForward(t0, 1) {
		t.Fatal("a circuit no table admitted allowed a packet")
	}
	if c.AllowForward(t0, -1) {
		t.Fatal("a negative size was allowed")
	}
}
