package relay

import (
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/wire"
)

// wantSwept fails tb unless got is exactly want, in order, each closed
// with reason and gone from the table.
func wantSwept(tb testing.TB, tab *Table, got []*Circuit, reason byte, want ...*Circuit) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("removed %d circuits, want %d", len(got), len(want))
	}
	for i, c := range got {
		if c != want[i] {
			tb.Fatalf("removed #%d is %+v, want %+v", i, c, want[i])
		}
		if c.Reason() != reason {
			tb.Fatalf("removed #%d has reason %d, want %d", i, c.Reason(), reason)
		}
		if (c.PrevCID != 0 && tab.FromPrev(c.Prev, c.PrevCID) != nil) || (c.NextCID != 0 && tab.FromNext(c.Next, c.NextCID) != nil) {
			tb.Fatalf("removed #%d is still in the table", i)
		}
	}
}

func TestIdleSweep(t *testing.T) {
	res := DefaultResources() // IdleTimeout 2 min
	res.BytesPerSecond, res.Burst = 1, wire.MaxCircuitData
	tab := newTestTable(t, res, 30)
	quiet := mustOpen(t, tab, t0, node(1), 1, node(9))
	fwd := mustOpen(t, tab, t0, node(2), 1, node(9))
	bwd := mustOpen(t, tab, t0, node(3), 1, node(9))
	term, _ := tab.OpenTerminal(t0, node(4), 1, testTerm(t))
	allow(t, fwd.AllowForward, at(90*time.Second), 100, true, "forward at 90 s")
	allow(t, bwd.AllowBackward, at(60*time.Second), wire.MaxCircuitData, true, "backward at 60 s")
	// A packet the rate limit refuses is activity too: the circuit is in
	// use.
	allow(t, bwd.AllowBackward, at(100*time.Second), 100, false, "backward at 100 s")

	wantSwept(t, tab, tab.Sweep(at(2*time.Minute-time.Nanosecond)), 0)
	wantSwept(t, tab, tab.Sweep(at(2*time.Minute)), wire.ReasonIdle, quiet, term)
	wantSwept(t, tab, tab.Sweep(at(90*time.Second+2*time.Minute-time.Nanosecond)), 0)
	wantSwept(t, tab, tab.Sweep(at(90*time.Second+2*time.Minute)), wire.ReasonIdle, fwd)
	wantSwept(t, tab, tab.Sweep(at(100*time.Second+2*time.Minute-time.Nanosecond)), 0)
	wantSwept(t, tab, tab.Sweep(at(100*time.Second+2*time.Minute)), wire.ReasonIdle, bwd)
	if s := tab.Stats(); s.Circuits != 0 || s.Memory != 0 || s.Closed[wire.ReasonIdle] != 4 {
		t.Fatalf("stats %+v", s)
	}
	// Their previous hop may open circuits again.
	mustOpen(t, tab, at(5*time.Minute), node(1), 1, node(9))
}

func TestDrainDeadlineSweep(t *testing.T) {
	tab := newTestTable(t, DefaultResources(), 31) // DrainTimeout 30 s
	a := mustOpen(t, tab, t0, node(1), 1, node(9))
	b := mustOpen(t, tab, t0, node(2), 1, node(9))
	init, _ := tab.OpenInitiator(t0, node(9), testInit(t))
	tab.Drain(at(10 * time.Second))
	tab.Drain(at(20 * time.Second)) // does not move the deadline
	for _, c := range []*Circuit{a, b, init} {
		c.AllowForward(at(35*time.Second), 100)
	}
	wantSwept(t, tab, tab.Sweep(at(40*time.Second-time.Nanosecond)), 0)
	wantSwept(t, tab, tab.Sweep(at(40*time.Second)), wire.ReasonDraining, init, a, b)
	if s := tab.Stats(); s.Circuits != 0 || !s.Draining || s.Closed[wire.ReasonDraining] != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// TestDrainSweepIdleFirst: a circuit both idle and past the drain
// deadline is reported idle.
func TestDrainSweepIdleFirst(t *testing.T) {
	res := DefaultResources()
	res.DrainTimeout = 0
	tab := newTestTable(t, res, 32)
	idle := mustOpen(t, tab, t0, node(1), 1, node(9))
	busy := mustOpen(t, tab, t0, node(2), 1, node(9))
	busy.AllowBackward(at(3*time.Minute), 100)
	tab.Drain(at(3 * time.Minute))
	got := tab.Sweep(at(3 * time.Minute))
	if len(got) != 2 || got[0] != idle || got[1] != busy || idle.Reason() != wire.ReasonIdle || busy.Reason() != wire.ReasonDraining {
		t.Fatalf("swept %v; reasons %d, %d", got, idle.Reason(), busy.Reason())
	}
}

func TestPeerGone(t *testing.T) {
	res := DefaultResources()
	res.MaxCircuitsPerPeer = 2
	tab := newTestTable(t, res, 33)
	a, b, c, d, e := node(0xA), node(0xB), node(0xC), node(0xD), node(0xE)
	aToB := mustOpen(t, tab, t0, a, 1, b)
	cToA := mustOpen(t, tab, t0, c, 1, a)
	termA, _ := tab.OpenTerminal(t0, a, 2, testTerm(t))
	initA, _ := tab.OpenInitiator(t0, a, testInit(t))
	dToE := mustOpen(t, tab, t0, d, 1, e)
	initB, _ := tab.OpenInitiator(t0, b, testInit(t))
	if termA == nil || initA == nil || initB == nil {
		t.Fatal("an end was refused")
	}

	// Sorted by Prev (the initiator's is zero), PrevCID, Next, NextCID.
	wantSwept(t, tab, tab.PeerGone(a), wire.ReasonNoRoute, initA, aToB, termA, cToA)
	if tab.FromPrev(d, 1) != dToE || tab.FromNext(b, initB.NextCID) != initB {
		t.Fatal("PeerGone removed circuits of other peers")
	}
	if got := tab.PeerGone(a); len(got) != 0 {
		t.Fatalf("second PeerGone removed %d", len(got))
	}
	// a's quota is free again.
	mustOpen(t, tab, t0, a, 1, b)
	mustOpen(t, tab, t0, a, 2, b)
	if s := tab.Stats(); s.Circuits != 4 || s.Closed[wire.ReasonNoRoute] != 4 {
		t.Fatalf("stats %+v", s)
	}
}
