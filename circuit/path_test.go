package circuit

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// pid names test node i.
func pid(i int) NodeID { return NodeID{byte(i >> 8), byte(i), 0xee} }

// pcand is a candidate with an onion key.
func pcand(i int, inbound, relay bool, links ...int) Candidate {
	c := Candidate{ID: pid(i), Inbound: inbound, Relay: relay}
	c.OnionKey[0] = 1
	for _, l := range links {
		c.Links = append(c.Links, pid(l))
	}
	return c
}

// checkPath fails unless relays is a valid path for q over g.
func checkPath(t *testing.T, g *Graph, q PathQuery, relays []NodeID) {
	t.Helper()
	if len(relays) == 0 || len(relays) > MaxRelays {
		t.Fatalf("path of %d relays", len(relays))
	}
	linked := func(a, b NodeID) bool { return slices.Contains(g.adj[a], b) }
	first, _ := g.Candidate(relays[0])
	if !first.Inbound && (q.Linked == nil || !q.Linked(first.ID)) {
		t.Fatalf("first relay %x is neither inbound nor linked to us", first.ID[:2])
	}
	for i, r := range relays {
		if r == q.Self || r == q.Target || slices.Contains(relays[:i], r) {
			t.Fatalf("relay %d (%x) repeats or is an end", i, r[:2])
		}
		if i > 0 && !linked(relays[i-1], r) {
			t.Fatalf("relays %d and %d hold no link", i-1, i)
		}
	}
	if !linked(relays[len(relays)-1], q.Target) {
		t.Fatalf("the last relay holds no link to the target")
	}
}

func TestSelectOneRelay(t *testing.T) {
	// 0 is us, 9 the NATed target with home relays 1 (public) and 2
	// (public, linked to us).
	g := NewGraph([]Candidate{
		pcand(0, false, false), pcand(9, false, false, 1, 2),
		pcand(1, true, true), pcand(2, true, false),
	})
	q := PathQuery{Self: pid(0), Target: pid(9)}
	p, err := g.Select(q)
	if err != nil || !slices.Equal(p, []NodeID{pid(1)}) {
		t.Fatalf("got %x, %v; want the announced relay 1", p, err)
	}
	q.Linked = func(id NodeID) bool { return id == pid(2) }
	if p, err = g.Select(q); err != nil || !slices.Equal(p, []NodeID{pid(2)}) {
		t.Fatalf("got %x, %v; want 2, the relay we hold a link to", p, err)
	}
	q.Avoid = func(id NodeID) bool { return id == pid(2) }
	if p, err = g.Select(q); err != nil || !slices.Equal(p, []NodeID{pid(1)}) {
		t.Fatalf("avoiding 2: got %x, %v; want 1", p, err)
	}
}

func TestSelectAvoidsOverloaded(t *testing.T) {
	full := pcand(1, true, true)
	full.Capacity, full.Load = 100, 95
	busy := pcand(2, true, true)
	busy.Capacity, busy.Load = 100, 60
	g := NewGraph([]Candidate{pcand(0, false, false), pcand(9, false, false, 1, 2), full, busy})
	q := PathQuery{Self: pid(0), Target: pid(9)}
	if p, err := g.Select(q); err != nil || !slices.Equal(p, []NodeID{pid(2)}) {
		t.Fatalf("got %x, %v; want 2, not the relay at 95%%", p, err)
	}
	q.Avoid = func(id NodeID) bool { return id == pid(2) }
	if p, err := g.Select(q); err != nil || !slices.Equal(p, []NodeID{pid(1)}) {
		t.Fatalf("with 2 avoided: got %x, %v; want the full relay rather than nothing", p, err)
	}
}

func TestSelectLongerWhenNeeded(t *testing.T) {
	// The target's only link is NATed node 5, which holds a link to
	// public node 3; 3 takes inbound connections.
	g := NewGraph([]Candidate{
		pcand(0, false, false), pcand(9, false, false, 5),
		pcand(5, false, false, 3), pcand(3, true, true),
	})
	q := PathQuery{Self: pid(0), Target: pid(9)}
	p, err := g.Select(q)
	if err != nil || !slices.Equal(p, []NodeID{pid(3), pid(5)}) {
		t.Fatalf("got %x, %v; want 3 then 5", p, err)
	}
	checkPath(t, g, q, p)
	q.MinRelays = 3
	if p, err := g.Select(q); !errors.Is(err, ErrNoPath) {
		t.Fatalf("3 relays where only 2 exist: got %x, %v; want ErrNoPath", p, err)
	}
}

func TestSelectBadQueries(t *testing.T) {
	g := NewGraph([]Candidate{pcand(0, false, false), pcand(9, false, false)})
	for _, q := range []PathQuery{
		{Self: pid(0), Target: pid(9), MinRelays: MaxRelays + 1},
		{Self: pid(0), Target: pid(9), MinRelays: -1},
		{Self: pid(0), Target: pid(0)},
	} {
		if _, err := g.Select(q); !errors.Is(err, ErrBadArgument) {
			t.Errorf("%+v: got %v, want ErrBadArgument", q, err)
		}
	}
	for _, q := range []PathQuery{
		{Self: pid(0), Target: pid(7)}, // no record
		{Self: pid(0), Target: pid(9)}, // no links
	} {
		if _, err := g.Select(q); !errors.Is(err, ErrNoPath) {
			t.Errorf("%+v: got %v, want ErrNoPath", q, err)
		}
	}
	// A node without an onion key cannot be a hop.
	nokey := pcand(1, true, true)
	nokey.OnionKey = [32]byte{}
	g = NewGraph([]Candidate{pcand(0, false, false), pcand(9, false, false, 1), nokey})
	if _, err := g.Select(PathQuery{Self: pid(0), Target: pid(9)}); !errors.Is(err, ErrNoPath) {
		t.Errorf("relay without onion key: got %v, want ErrNoPath", err)
	}
}

// TestSelectRandomGraphs checks every path found in random graphs, with
// MinRelays 1 or 2, is valid, and that with MinRelays 1 the search
// finds a path whenever some single relay would do.
func TestSelectRandomGraphs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	found := 0
	for trial := range 300 {
		n := 10 + rng.IntN(40)
		var cands []Candidate
		for i := range n {
			c := pcand(i, rng.IntN(3) == 0, rng.IntN(4) == 0)
			for range rng.IntN(3) {
				c.Links = append(c.Links, pid(rng.IntN(n)))
			}
			if rng.IntN(10) == 0 {
				c.OnionKey = [32]byte{}
			}
			cands = append(cands, c)
		}
		g := NewGraph(cands)
		q := PathQuery{Self: pid(0), Target: pid(1 + rng.IntN(n-1)), MinRelays: 1 + trial%2, Rand: rng}
		p, err := g.Select(q)
		oneRelay := slices.ContainsFunc(g.adj[q.Target], func(id NodeID) bool {
			c, ok := g.Candidate(id)
			return ok && id != q.Self && c.Inbound && c.OnionKey != [32]byte{}
		})
		if err != nil {
			if !errors.Is(err, ErrNoPath) {
				t.Fatal(err)
			}
			if oneRelay && q.MinRelays == 1 {
				t.Fatalf("trial %d: ErrNoPath, but a single relay links to the target", trial)
			}
			continue
		}
		found++
		checkPath(t, g, q, p)
		if len(p) < q.MinRelays {
			t.Fatalf("%d relays, asked at least %d", len(p), q.MinRelays)
		}
	}
	if found < 50 {
		t.Fatalf("only %d of 300 random graphs had a path; the test checks too little", found)
	}
}
