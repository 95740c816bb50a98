package migration

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// FuzzMachine drives a machine with a sequence of inputs decoded from the
// bytes, including nonsense (unknown paths, bad RTTs and loss rates,
// forged and stale timers, time running backwards), and checks the
// invariants after every call.
func FuzzMachine(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 1, 3, 1, 20, 0, 2, 2, 3, 2, 40, 6, 1, 6, 1, 6, 1, 9, 200})
	f.Add([]byte{1, 0, 1, 3, 1, 10, 0, 10, 2, 3, 10, 30, 7, 9, 100, 4, 1, 9, 255, 9, 255})
	f.Add([]byte{0, 0, 1, 1, 3, 1, 50, 0, 2, 1, 3, 2, 10, 5, 1, 50, 0, 5, 2, 10, 0, 5, 1, 50, 0, 5, 2, 10, 0, 9, 60})
	f.Add([]byte{0, 10, 2, 3, 10, 90, 9, 60, 1, 3, 3, 3, 5, 9, 60, 2, 10, 9, 255, 10, 0, 11, 12, 2, 1, 7})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 10000 {
			return
		}
		a, c := drive(t, b, true), drive(t, b, false)
		if !slices.Equal(a, c) {
			t.Fatal("two runs of the same inputs differ")
		}
	})
}

// reader hands out the fuzz bytes; past the end it gives zeros.
type reader struct {
	b []byte
	i int
}

func (r *reader) next() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *reader) more() bool { return r.i < len(r.b) }

func (r *reader) id() PathID { return PathID(r.next() % 12) } // 0 and ids past MaxPaths too

func (r *reader) rtt() time.Duration {
	switch v := r.next(); v {
	case 255:
		return -ms
	case 254:
		return MaxRTT + 1
	default:
		return time.Duration(v) * 2 * ms
	}
}

func (r *reader) loss() float64 {
	switch v := r.next(); v {
	case 255:
		return math.NaN()
	case 254:
		return -0.1
	case 253:
		return 1.5
	case 252:
		return math.Inf(1)
	default:
		return float64(v%101) / 100
	}
}

// drive runs the inputs b encodes and returns every output, rendered with
// its time. With check, it checks the invariants after each call.
func drive(t *testing.T, b []byte, check bool) []string {
	r := &reader{b: b}
	cfg := DefaultConfig()
	if r.next()%2 == 1 {
		cfg = noHysteresis()
	}
	m := newTestMachine(t, cfg, uint64(r.next()))
	now := t0
	var timers, fired []SetTimer
	var log []string
	switches := uint64(0)
	call := func(name string, f func() []Output) {
		before := m.Current()
		known := knownIDs(m)
		outs := f()
		for _, o := range outs {
			log = append(log, fmt.Sprintf("%v %s: %v", now.Sub(t0), name, describe(o)))
			if st, ok := o.(SetTimer); ok {
				timers = append(timers, st)
			}
			if _, ok := o.(Switch); ok {
				switches++
			}
		}
		if check {
			checkInvariants(t, m, name, outs, before, known, switches)
		}
	}
	for r.more() {
		switch op := r.next() % 14; op {
		case 0:
			id, k := r.id(), Kind(r.next()%4)
			call("add", func() []Output { o, _ := m.AddPath(now, id, k); return o })
		case 1:
			id := r.id()
			call("punch", func() []Output { o, _ := m.PunchSucceeded(now, id); return o })
		case 2:
			id := r.id()
			call("remove", func() []Output { return m.RemovePath(now, id) })
		case 3:
			id, rtt := r.id(), r.rtt()
			call("validated", func() []Output { return m.Validated(now, id, rtt) })
		case 4:
			id := r.id()
			call("probe-failed", func() []Output { return m.ProbeFailed(now, id) })
		case 5:
			id, rtt, loss := r.id(), r.rtt(), r.loss()
			call("observe", func() []Output { return m.Observe(now, id, rtt, loss) })
		case 6:
			id := r.id()
			call("keepalive-missed", func() []Output { return m.KeepAliveMissed(now, id) })
		case 7:
			call("local-address", func() []Output { return m.LocalAddressChanged(now) })
		case 8:
			call("reflexive", func() []Output { return m.ReflexiveChanged(now) })
		case 9: // time passes; due timers fire in order
			end := now.Add(time.Duration(r.next()) * 100 * ms)
			for {
				slices.SortStableFunc(timers, func(a, b SetTimer) int { return a.At.Compare(b.At) })
				if len(timers) == 0 || timers[0].At.After(end) {
					break
				}
				st := timers[0]
				timers = timers[1:]
				fired = append(fired, st)
				now = st.At
				call("timer", func() []Output { return m.HandleTimer(now, st.Timer) })
			}
			now = end
		case 10: // a timer fired early (a driver bug)
			if len(timers) > 0 {
				i := int(r.next()) % len(timers)
				st := timers[i]
				timers = slices.Delete(timers, i, i+1)
				fired = append(fired, st)
				call("early-timer", func() []Output { return m.HandleTimer(now, st.Timer) })
			}
		case 11: // a timer fired again
			if len(fired) > 0 {
				st := fired[int(r.next())%len(fired)]
				call("replayed-timer", func() []Output { return m.HandleTimer(now, st.Timer) })
			}
		case 12: // a forged timer
			tm := Timer{Kind: TimerKind(r.next() % 6), Path: r.id(), seq: uint64(r.next())}
			call("forged-timer", func() []Output { return m.HandleTimer(now, tm) })
		case 13: // the driver's clock steps back
			now = now.Add(-time.Duration(r.next()) * 100 * ms)
			call("observe-back", func() []Output { return m.Observe(now, 1, 10*ms, 0) })
		}
	}
	return log
}

func knownIDs(m *Machine) map[PathID]bool {
	k := make(map[PathID]bool, len(m.paths))
	for _, p := range m.paths {
		k[p.id] = true
	}
	return k
}

// checkInvariants checks what must hold after every call.
func checkInvariants(t *testing.T, m *Machine, name string, outs []Output, before PathID, knownBefore map[PathID]bool, switches uint64) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("after %s (outputs %q): %s", name, all(outs), fmt.Sprintf(format, args...))
	}
	known := knownIDs(m)
	cur := m.Current()
	// The current path is known and usable, or there is none; and there
	// is one whenever a path is validated.
	if cur != NoPath {
		p := m.find(cur)
		if p == nil || !p.usable() {
			fail("current %v is unknown or unusable", cur)
		}
	}
	for _, p := range m.paths {
		if p.state == validated && cur == NoPath {
			fail("%v is validated but there is no current path", p.id)
		}
	}
	// Liveness: the machine never sits waiting for nothing. With no
	// reliable path (after having had one) and no circuit on its way, a
	// FallBack retry is pending; on a circuit, a TryUpgrade timer is.
	if m.needsFallBack() && !m.circuitProbing() && (m.cur != nil || m.lost.cause != 0) && !m.fallback.armed {
		fail("no usable path, no circuit coming, and no FallBack pending")
	}
	if m.cur != nil && m.cur.kind == Circuit && !m.upgrade.armed {
		fail("on a circuit with no upgrade timer")
	}
	// Paths stay sorted, unique and bounded.
	if len(m.paths) > MaxPaths || !slices.IsSortedFunc(m.paths, func(a, b *path) int { return int(a.id) - int(b.id) }) {
		fail("paths %d, not sorted or too many", len(m.paths))
	}
	var lastSwitch PathID
	lost := false
	for _, o := range outs {
		switch o := o.(type) {
		case Probe:
			if !known[o.Path] {
				fail("%v for an unknown path", o)
			}
		case Switch:
			p := m.find(o.Path)
			if p == nil || p.state != validated || o.Cause < CauseInitial || o.Cause > CauseFallback {
				fail("%v to an unknown or unvalidated path, or with a bad cause", o)
			}
			lastSwitch = o.Path
		case FallBack:
			if o.Cause < CauseInitial || o.Cause > CauseFallback {
				fail("%v has a bad cause", o)
			}
		case SetTimer:
			if o.At.Before(m.now) {
				fail("%v set before now", o)
			}
		case Event:
			for _, id := range []PathID{o.Path, o.From} {
				if id != NoPath && !known[id] && !knownBefore[id] {
					fail("%v names an unknown path", o)
				}
			}
			if o.Kind == EventLost {
				lost = true
			}
		}
	}
	// The current path changes only with a Switch, or to none with
	// EventLost.
	switch {
	case lastSwitch != NoPath && cur != lastSwitch && !lost:
		fail("last Switch to %v, but current is %v", lastSwitch, cur)
	case lastSwitch == NoPath && cur != before && !(lost && cur == NoPath):
		fail("current changed from %v to %v without a Switch", before, cur)
	}
	if got := m.Stats().Switches.Total(); got != switches {
		fail("Stats count %d switches, %d emitted", got, switches)
	}
}

// TestRandomInputs runs FuzzMachine's checks over seeded random input
// sequences, so that every test run (not only fuzzing) covers them.
func TestRandomInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 1))
	for range 100 {
		b := make([]byte, 1500)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		drive(t, b, true)
	}
}
