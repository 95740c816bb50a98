package relay

import (
	"bytes"
	"cmp"
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/internal/wire"
)

// Close removes c from the table, recording reason (a wire.Reason
// constant; 0 is recorded as ReasonClosed). From then on c passes no
// packet. Closing a circuit twice, nil, or one of another table does
// nothing.
func (t *Table) Close(c *Circuit, reason byte) {
	if c == nil || c.table != t {
		return
	}
	t.mu.Lock()
	t.closeLocked(c, reason)
	t.mu.Unlock()
}

// closeLocked is Close with t.mu held. It reports whether c was open.
func (t *Table) closeLocked(c *Circuit, reason byte) bool {
	if reason == wire.ReasonNone {
		reason = wire.ReasonClosed
	}
	if !c.reason.CompareAndSwap(0, uint32(reason)) {
		return false
	}
	if k := (linkKey{c.Prev, c.PrevCID}); c.PrevCID != 0 && t.byPrev[k] == c {
		delete(t.byPrev, k)
		if t.perPrev[c.Prev]--; t.perPrev[c.Prev] <= 0 {
			delete(t.perPrev, c.Prev)
		}
	}
	if k := (linkKey{c.Next, c.NextCID}); c.NextCID != 0 && t.byNext[k] == c {
		delete(t.byNext, k)
	}
	t.count[c.Kind]--
	t.mem -= costOf(c.Kind)
	t.closed[reason]++
	// The reason is set, so no packet changes the counters after this.
	fwd, bwd := c.flows()
	t.retired[0].add(fwd)
	t.retired[1].add(bwd)
	return true
}

// Sweep removes and returns the circuits idle at now for IdleTimeout or
// longer (reason ReasonIdle) and, once the drain deadline has passed,
// all the others (reason ReasonDraining). The caller sends DESTROY with
// c.Reason() to each circuit's other hops. The result is sorted by
// Prev, PrevCID, Next, NextCID.
func (t *Table) Sweep(now time.Time) []*Circuit {
	t.mu.Lock()
	defer t.mu.Unlock()
	drained := t.draining && !now.Before(t.deadline)
	var out []*Circuit
	t.each(func(c *Circuit) {
		switch {
		case c.idle(now) >= t.res.IdleTimeout:
			t.closeLocked(c, wire.ReasonIdle)
		case drained:
			t.closeLocked(c, wire.ReasonDraining)
		default:
			return
		}
		out = append(out, c)
	})
	sortCircuits(out)
	return out
}

// PeerGone removes and returns the circuits with peer as their previous
// or next hop, with reason ReasonNoRoute: the link to peer is lost, so
// they cannot carry packets. The caller sends DESTROY to each circuit's
// other hop. The result is sorted as in Sweep.
func (t *Table) PeerGone(peer NodeID) []*Circuit {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*Circuit
	t.each(func(c *Circuit) {
		if (c.PrevCID != 0 && c.Prev == peer) || (c.NextCID != 0 && c.Next == peer) {
			t.closeLocked(c, wire.ReasonNoRoute)
			out = append(out, c)
		}
	})
	sortCircuits(out)
	return out
}

// Drain makes the table refuse every new circuit with ReasonDraining
// from now on, and sets the drain deadline to now + DrainTimeout, after
// which Sweep tears down the circuits left. Calling it again keeps the
// first deadline.
func (t *Table) Drain(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining {
		return
	}
	t.draining = true
	t.deadline = now.Add(t.res.DrainTimeout)
}

// each calls f on every circuit once, with t.mu held. f may close the
// circuit it is given.
func (t *Table) each(f func(*Circuit)) {
	for _, c := range t.byPrev {
		f(c)
	}
	for _, c := range t.byNext {
		if c.Kind != KindRelay {
			f(c)
		}
	}
}

// sortCircuits orders cs by Prev, PrevCID, Next, NextCID.
func sortCircuits(cs []*Circuit) {
	slices.SortFunc(cs, func(a, b *Circuit) int {
		return cmp.Or(
			bytes.Compare(a.Prev[:], b.Prev[:]),
			cmp.Compare(a.PrevCID, b.PrevCID),
			bytes.Compare(a.Next[:], b.Next[:]),
			cmp.Compare(a.NextCID, b.NextCID),
		)
	})
}
