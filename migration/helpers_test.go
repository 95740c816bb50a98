package migration

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const ms = time.Millisecond

func newTestMachine(t testing.TB, cfg Config, seed uint64) *Machine {
	t.Helper()
	m, err := New(cfg, rand.New(rand.NewPCG(seed, 11)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// describe renders an output as tests compare it.
func describe(o Output) string {
	if s, ok := o.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", o)
}

// actions renders the outputs that ask the driver to act: everything
// but events and timers.
func actions(outs []Output) []string {
	var s []string
	for _, o := range outs {
		switch o.(type) {
		case Event, SetTimer:
		default:
			s = append(s, describe(o))
		}
	}
	return s
}

// events renders the events among outs.
func events(outs []Output) []string {
	var s []string
	for _, o := range outs {
		if e, ok := o.(Event); ok {
			s = append(s, e.String())
		}
	}
	return s
}

// wantActions fails unless the actions of outs are exactly want.
func wantActions(t testing.TB, outs []Output, want ...string) {
	t.Helper()
	if got := actions(outs); !slices.Equal(got, want) {
		t.Fatalf("actions:\n got %q\nwant %q\n(all outputs %q)", got, want, all(outs))
	}
}

// wantEvent fails unless outs hold the event e.
func wantEvent(t testing.TB, outs []Output, e string) {
	t.Helper()
	if !slices.Contains(events(outs), e) {
		t.Fatalf("no event %q in %q", e, events(outs))
	}
}

func all(outs []Output) []string {
	s := make([]string, len(outs))
	for i, o := range outs {
		s[i] = describe(o)
	}
	return s
}

// rig drives a Machine under virtual time: it keeps the timers the
// machine sets and fires them, in order, as time advances, and records
// every output.
type rig struct {
	t      testing.TB
	m      *Machine
	now    time.Time
	timers []SetTimer
	outs   []Output        // every output, in order
	at     []time.Duration // when each Switch in outs came, since t0
}

func newRig(t testing.TB, cfg Config, seed uint64) *rig {
	return &rig{t: t, m: newTestMachine(t, cfg, seed), now: t0}
}

// take records outs and queues their timers.
func (r *rig) take(outs []Output) []Output {
	for _, o := range outs {
		if st, ok := o.(SetTimer); ok {
			if st.At.Before(r.now) {
				r.t.Fatalf("timer %v set in the past (%v < %v)", st.Timer, st.At, r.now)
			}
			r.timers = append(r.timers, st)
		}
		if _, ok := o.(Switch); ok {
			r.at = append(r.at, r.now.Sub(t0))
		}
	}
	r.outs = append(r.outs, outs...)
	return outs
}

// advance moves time to now+d, firing due timers in time order, and
// returns the outputs of the timers.
func (r *rig) advance(d time.Duration) []Output {
	end := r.now.Add(d)
	var outs []Output
	for {
		sort.SliceStable(r.timers, func(i, j int) bool { return r.timers[i].At.Before(r.timers[j].At) })
		if len(r.timers) == 0 || r.timers[0].At.After(end) {
			break
		}
		st := r.timers[0]
		r.timers = r.timers[1:]
		r.now = st.At
		outs = append(outs, r.take(r.m.HandleTimer(r.now, st.Timer))...)
	}
	r.now = end
	return outs
}

func (r *rig) add(id PathID, k Kind) []Output {
	r.t.Helper()
	outs, err := r.m.AddPath(r.now, id, k)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.take(outs)
}

func (r *rig) punch(id PathID) []Output {
	r.t.Helper()
	outs, err := r.m.PunchSucceeded(r.now, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.take(outs)
}

func (r *rig) validated(id PathID, rtt time.Duration) []Output {
	return r.take(r.m.Validated(r.now, id, rtt))
}

func (r *rig) failed(id PathID) []Output { return r.take(r.m.ProbeFailed(r.now, id)) }

func (r *rig) observe(id PathID, rtt time.Duration, loss float64) []Output {
	return r.take(r.m.Observe(r.now, id, rtt, loss))
}

func (r *rig) miss(id PathID, n int) []Output {
	var outs []Output
	for range n {
		outs = append(outs, r.take(r.m.KeepAliveMissed(r.now, id))...)
	}
	return outs
}

func (r *rig) remove(id PathID) []Output { return r.take(r.m.RemovePath(r.now, id)) }

// up adds a path and validates it with rtt.
func (r *rig) up(id PathID, k Kind, rtt time.Duration) []Output {
	return append(r.add(id, k), r.validated(id, rtt)...)
}

// switches returns the Switch outputs recorded so far.
func (r *rig) switches() []Switch {
	var s []Switch
	for _, o := range r.outs {
		if sw, ok := o.(Switch); ok {
			s = append(s, sw)
		}
	}
	return s
}

// count returns how many recorded outputs satisfy f.
func (r *rig) count(f func(Output) bool) int {
	n := 0
	for _, o := range r.outs {
		if f(o) {
			n++
		}
	}
	return n
}

func isTryUpgrade(o Output) bool { _, ok := o.(TryUpgrade); return ok }
func isFallBack(o Output) bool   { _, ok := o.(FallBack); return ok }

// timersOf returns the pending timers of kind k.
func (r *rig) timersOf(k TimerKind) []SetTimer {
	var s []SetTimer
	for _, st := range r.timers {
		if st.Timer.Kind == k {
			s = append(s, st)
		}
	}
	return s
}

// lastTimer returns the last timer of kind k set in outs.
func lastTimer(t testing.TB, outs []Output, k TimerKind) SetTimer {
	t.Helper()
	var last *SetTimer
	for _, o := range outs {
		if st, ok := o.(SetTimer); ok && st.Timer.Kind == k {
			last = &st
		}
	}
	if last == nil {
		t.Fatalf("no %v timer in %q", k, all(outs))
	}
	return *last
}

func (r *rig) wantCurrent(id PathID) {
	r.t.Helper()
	if got := r.m.Current(); got != id {
		r.t.Fatalf("current = %v, want %v", got, id)
	}
	if got := r.m.Stats().Current; got != id {
		r.t.Fatalf("Stats.Current = %v, want %v", got, id)
	}
}
