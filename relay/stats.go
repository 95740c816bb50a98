package relay

import "time"

// Stats are a table's counters since NewTable.
type Stats struct {
	// Circuits is how many circuits the table holds; Relays, Terminals
	// and Initiators split it by kind.
	Circuits, Relays, Terminals, Initiators int
	// Memory is the estimated bytes the circuits hold (see the package
	// documentation); MaxMemory the bound.
	Memory, MaxMemory int64
	// Draining reports that Drain was called.
	Draining bool
	// Opened counts the circuits admitted.
	Opened uint64
	// Refused counts the circuits refused, by wire reason; Closed the
	// circuits closed, by reason. Reasons with no count are absent.
	Refused, Closed map[byte]uint64
	// Forward and Backward count packets each way, over every circuit
	// the table has held. Dropped packets are the rate limit's.
	Forward, Backward Flow
}

// Load returns how many circuits the table relays and whether it is
// draining, without the walk over every circuit that Stats makes.
func (t *Table) Load() (relays int, draining bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count[KindRelay], t.draining
}

// Stats returns the table's counters. It walks every circuit for the
// packet counts; Load is the cheap way to read the load.
func (t *Table) Stats() Stats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := Stats{
		Circuits:   t.total(),
		Relays:     t.count[KindRelay],
		Terminals:  t.count[KindTerminal],
		Initiators: t.count[KindInitiator],
		Memory:     t.mem,
		MaxMemory:  t.res.MaxMemory,
		Draining:   t.draining,
		Opened:     t.opened,
		Refused:    nonzero(&t.refused),
		Closed:     nonzero(&t.closed),
		Forward:    t.retired[0],
		Backward:   t.retired[1],
	}
	t.each(func(c *Circuit) {
		fwd, bwd := c.flows()
		s.Forward.add(fwd)
		s.Backward.add(bwd)
	})
	return s
}

// nonzero returns the nonzero counters of a, by index.
func nonzero(a *[256]uint64) map[byte]uint64 {
	m := make(map[byte]uint64)
	for i, n := range a {
		if n != 0 {
			m[byte(i)] = n
		}
	}
	return m
}

// CircuitInfo describes one circuit, for `mycelium circuits`.
type CircuitInfo struct {
	Kind    Kind
	Prev    NodeID // zero for KindInitiator
	PrevCID uint32
	Next    NodeID // zero for KindTerminal
	NextCID uint32
	// Age is how long the circuit has been open; Idle how long since its
	// last packet either way (its age if it had none).
	Age, Idle time.Duration
	// Forward and Backward count its packets each way.
	Forward, Backward Flow
}

// Snapshot describes every circuit at now, sorted by Prev, PrevCID,
// Next, NextCID.
func (t *Table) Snapshot(now time.Time) []CircuitInfo {
	t.mu.RLock()
	var cs []*Circuit
	t.each(func(c *Circuit) { cs = append(cs, c) })
	t.mu.RUnlock()
	sortCircuits(cs)
	out := make([]CircuitInfo, 0, len(cs))
	for _, c := range cs {
		fwd, bwd := c.flows()
		out = append(out, CircuitInfo{
			Kind: c.Kind, Prev: c.Prev, PrevCID: c.PrevCID, Next: c.Next, NextCID: c.NextCID,
			Age: now.Sub(c.opened), Idle: c.idle(now),
			Forward: fwd, Backward: bwd,
		})
	}
	return out
}
