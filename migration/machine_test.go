package migration

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	bad := DefaultConfig()
	bad.Margin = -1
	if _, err := New(bad, rand.New(rand.NewPCG(1, 2))); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("bad config: %v", err)
	}
	if _, err := New(DefaultConfig(), nil); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("nil rand: %v", err)
	}
	m := newTestMachine(t, DefaultConfig(), 1)
	if m.Current() != NoPath || m.Stats() != (Stats{}) {
		t.Fatalf("new machine: current %v, stats %+v", m.Current(), m.Stats())
	}
}

// TestFirstPath: the first validated path becomes current at once, and a
// connection's paths start with a probe.
func TestFirstPath(t *testing.T) {
	r := newRig(t, DefaultConfig(), 1)
	outs := r.add(1, Direct)
	wantActions(t, outs, "Probe(p1)")
	wantEvent(t, outs, "probe p1 (new-path)")
	lastTimer(t, outs, TimerProbe)
	wantActions(t, r.validated(1, 20*ms), "Switch(p1, initial)")
	r.wantCurrent(1)
	// The probe's timeout is stale now.
	wantActions(t, r.advance(time.Minute))
	if s := r.m.Stats(); s.Switches.Initial != 1 || s.Probes != 1 || s.Validations != 1 || s.ProbeTimeouts != 0 || s.Paths != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestUpgrade is acceptance test 1: on a circuit, a punched direct path
// is probed, validated, and becomes current with cause upgrade, at once.
func TestUpgrade(t *testing.T) {
	t.Run("punched_direct_replaces_circuit", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		wantActions(t, r.up(10, Circuit, 80*ms), "Probe(p10)", "Switch(p10, initial)")
		r.advance(2 * time.Second) // the first TryUpgrade is due at 3.75 s at the earliest
		outs := r.punch(1)
		wantActions(t, outs, "Probe(p1)")
		wantEvent(t, outs, "probe p1 (upgrade)")
		outs = r.validated(1, 30*ms)
		wantActions(t, outs, "Switch(p1, upgrade)")
		wantEvent(t, outs, "switch p10→p1 (upgrade)")
		r.wantCurrent(1)
		r.advance(time.Hour)
		if n := r.count(isTryUpgrade); n != 0 {
			t.Fatalf("%d TryUpgrade on a direct path", n)
		}
		if s := r.m.Stats(); s.Switches.Upgrade != 1 || s.Punches != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("direct_within_bias_wins", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(10, Circuit, 100*ms)
		// 150 ms ≤ 100 ms × 1.5 + 20 ms: not clearly worse.
		wantActions(t, r.up(1, Direct, 150*ms), "Probe(p1)", "Switch(p1, upgrade)")
	})
	t.Run("clearly_worse_direct_stays_off", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(10, Circuit, 40*ms)
		// 200 ms > 40 ms × 1.5 + 20 ms.
		wantActions(t, r.up(1, Direct, 200*ms), "Probe(p1)")
		r.wantCurrent(10)
		// With a validated direct path there, punching again is pointless.
		r.advance(time.Hour)
		if n := r.count(isTryUpgrade); n != 0 {
			t.Fatalf("%d TryUpgrade with a validated direct path", n)
		}
	})
	t.Run("both_at_once_direct_first", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.add(10, Circuit)
		r.add(1, Direct)
		wantActions(t, r.validated(1, 60*ms), "Switch(p1, initial)")
		wantActions(t, r.validated(10, 30*ms)) // 60 ≤ 30×1.5+20: direct stays
	})
}

// TestTryUpgradeBackoff: on a circuit, TryUpgrade comes at 5 s, then
// doubling to 5 min, each ±25%; a successful upgrade starts it over.
func TestTryUpgradeBackoff(t *testing.T) {
	cfg := DefaultConfig()
	r := newRig(t, cfg, 3)
	st := lastTimer(t, r.up(10, Circuit, 80*ms), TimerUpgrade)
	wait := cfg.UpgradeBackoff
	for i := range 10 {
		d := st.At.Sub(r.now)
		if d < wait*3/4 || d >= wait*5/4 {
			t.Fatalf("TryUpgrade %d after %v, want %v ±25%%", i, d, wait)
		}
		outs := r.advance(d)
		wantActions(t, outs, "TryUpgrade")
		wantEvent(t, outs, "try-upgrade p10 (upgrade)")
		st = lastTimer(t, outs, TimerUpgrade)
		wait = min(2*wait, cfg.MaxUpgradeBackoff)
	}
	if wait != cfg.MaxUpgradeBackoff || r.m.Stats().UpgradesTried != 10 {
		t.Fatalf("wait %v, stats %+v", wait, r.m.Stats())
	}
	r.punch(1)
	wantActions(t, r.validated(1, 30*ms), "Switch(p1, upgrade)")
	// The direct path dies; back on the circuit, the backoff starts over.
	r.advance(time.Minute)
	outs := r.remove(1)
	wantActions(t, outs, "Switch(p10, fallback)")
	if d := lastTimer(t, outs, TimerUpgrade).At.Sub(r.now); d < cfg.UpgradeBackoff*3/4 || d >= cfg.UpgradeBackoff*5/4 {
		t.Fatalf("first TryUpgrade after the fallback in %v, want %v ±25%%", d, cfg.UpgradeBackoff)
	}
}

// TestDeadPath is acceptance test 2: a dead current path is left at once
// (no dwell, no hold) for a validated path, and with none a circuit is
// asked for.
func TestDeadPath(t *testing.T) {
	t.Run("keepalive_loss_direct_to_circuit", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		r.up(10, Circuit, 90*ms)
		wantActions(t, r.miss(1, 2))
		// Within a second of the first switch: no dwell applies.
		outs := r.miss(1, 1)
		wantActions(t, outs, "Probe(p1)", "Switch(p10, fallback)")
		wantEvent(t, outs, "suspect p1 (path-dead)")
		wantEvent(t, outs, "switch p1→p10 (fallback)")
		r.wantCurrent(10)
		// The suspect path's probe fails: it stays failed, and the
		// circuit asks for a punch in due course.
		wantActions(t, r.failed(1))
		r.advance(10 * time.Second)
		if r.count(isTryUpgrade) == 0 {
			t.Fatal("no TryUpgrade on the circuit")
		}
		if s := r.m.Stats(); s.Switches.Fallback != 1 || s.Suspects != 1 || s.ProbeFailures != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("keepalive_loss_direct_to_direct", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		r.up(2, Direct, 50*ms)
		wantActions(t, r.miss(1, 3), "Probe(p1)", "Switch(p2, path-dead)")
		// The old path answers again: it is validated, but quality rules
		// (not liveness) decide whether to go back.
		wantActions(t, r.validated(1, 30*ms))
		r.wantCurrent(2)
	})
	t.Run("keepalive_loss_reprobes_failed_alternatives", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		r.add(2, Direct)
		r.failed(2)
		wantActions(t, r.miss(1, 3), "Probe(p1)", "Probe(p2)", "FallBack(path-dead)")
		r.wantCurrent(1) // suspect, but all there is
		wantActions(t, r.validated(2, 40*ms), "Switch(p2, path-dead)")
	})
	t.Run("removed_without_alternative", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		outs := r.remove(1)
		wantActions(t, outs, "FallBack(path-dead)")
		wantEvent(t, outs, "lost p1 (path-dead)")
		r.wantCurrent(NoPath)
		wantActions(t, r.add(10, Circuit), "Probe(p10)")
		wantActions(t, r.validated(10, 90*ms), "Switch(p10, fallback)")
	})
	t.Run("removed_circuit_before_validation", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.add(10, Circuit)
		r.up(1, Direct, 30*ms)
		// A circuit is on its way: no FallBack yet.
		wantActions(t, r.remove(1))
		r.wantCurrent(NoPath)
		// The driver gives up on that circuit: ask for another.
		wantActions(t, r.remove(10), "FallBack(path-dead)")
	})
	t.Run("suspect_without_alternative_then_timeout", func(t *testing.T) {
		cfg := DefaultConfig()
		r := newRig(t, cfg, 1)
		r.up(1, Direct, 30*ms)
		wantActions(t, r.miss(1, 3), "Probe(p1)", "FallBack(path-dead)")
		r.wantCurrent(1)
		outs := r.advance(cfg.ProbeTimeout)
		wantEvent(t, outs, "probe-failed p1 (path-dead)")
		wantEvent(t, outs, "lost p1 (path-dead)")
		r.wantCurrent(NoPath)
		if r.m.Stats().ProbeTimeouts != 1 {
			t.Fatalf("stats %+v", r.m.Stats())
		}
	})
	t.Run("suspect_recovers", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		r.miss(1, 3)
		outs := r.observe(1, 30*ms, 0)
		wantEvent(t, outs, "recovered p1 (path-dead)")
		r.wantCurrent(1)
		// The FallBack retry finds nothing to do.
		r.advance(time.Hour)
		if n := r.count(isFallBack); n != 1 {
			t.Fatalf("%d FallBacks, want only the first", n)
		}
	})
	t.Run("suspect_revalidated", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		r.miss(1, 3)
		outs := r.validated(1, 35*ms)
		wantActions(t, outs)
		wantEvent(t, outs, "kept p1 (path-dead)")
		r.wantCurrent(1)
		if s := r.m.Stats(); s.Kept != 1 || s.Suspects != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("circuit_dies", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(10, Circuit, 90*ms)
		r.up(11, Circuit, 120*ms)
		wantActions(t, r.miss(10, 3), "Probe(p10)", "Switch(p11, path-dead)")
	})
}

// TestFallBackRetry: while no path is usable, FallBack is asked again at
// 1 s doubling to 1 min, but not while a circuit is being probed, and no
// more once a path is current.
func TestFallBackRetry(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ProbeTimeout = 5 * time.Minute // a slow circuit build
	r := newRig(t, cfg, 5)
	r.up(1, Direct, 30*ms)
	outs := r.remove(1)
	wait := cfg.FallBackRetry
	for i := range 6 {
		st := lastTimer(t, outs, TimerFallBack)
		d := st.At.Sub(r.now)
		if d < wait*3/4 || d >= wait*5/4 {
			t.Fatalf("FallBack %d after %v, want %v ±25%%", i+1, d, wait)
		}
		outs = r.advance(d)
		wantActions(t, outs, "FallBack(path-dead)")
		wait = min(2*wait, cfg.MaxFallBackRetry)
	}
	r.add(10, Circuit)
	outs = r.advance(2 * cfg.MaxFallBackRetry)
	wantActions(t, outs) // a circuit is on its way
	wantActions(t, r.validated(10, 80*ms), "Switch(p10, fallback)")
	r.advance(time.Hour)
	if n := r.count(isFallBack); n != 7 {
		t.Fatalf("%d FallBacks, want 7", n)
	}
}

// TestAddressChangeAsksFallBack: with no usable path, an address change
// asks for a circuit at once (the builds that failed went from the old
// address, or found no route) and starts the FallBack backoff over. With
// a usable path it asks for none.
func TestAddressChangeAsksFallBack(t *testing.T) {
	cfg := DefaultConfig()
	r := newRig(t, cfg, 7)
	r.up(1, Direct, 30*ms)
	outs := r.remove(1)
	for range 3 { // the backoff grows: 1 s, 2 s, 4 s
		outs = r.advance(lastTimer(t, outs, TimerFallBack).At.Sub(r.now))
	}
	r.advance(time.Second) // within the 8 s wait
	outs = r.take(r.m.LocalAddressChanged(r.now))
	wantActions(t, outs, "FallBack(path-dead)")
	if d := lastTimer(t, outs, TimerFallBack).At.Sub(r.now); d < cfg.FallBackRetry*3/4 || d >= cfg.FallBackRetry*5/4 {
		t.Fatalf("next FallBack after %v, want %v ±25%% (the backoff starts over)", d, cfg.FallBackRetry)
	}
	if n := r.count(isFallBack); n != 5 {
		t.Fatalf("%d FallBacks, want 5", n)
	}

	r = newRig(t, cfg, 7)
	r.up(10, Circuit, 80*ms)
	wantActions(t, r.take(r.m.LocalAddressChanged(r.now))) // the circuit is usable
	if n := r.count(isFallBack); n != 0 {
		t.Fatalf("%d FallBacks with a usable circuit, want 0", n)
	}
}

// TestAddressChange is acceptance test 3: after a rebinding or a local
// address change, direct paths are probed again, and the probe decides
// between keeping the path and leaving it.
func TestAddressChange(t *testing.T) {
	reflexive := func(r *rig) []Output { return r.take(r.m.ReflexiveChanged(r.now)) }
	local := func(r *rig) []Output { return r.take(r.m.LocalAddressChanged(r.now)) }

	t.Run("rebinding_probe_ok_keeps", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		r.up(10, Circuit, 80*ms)
		outs := reflexive(r)
		wantActions(t, outs, "Probe(p1)") // circuits do not depend on our address
		wantEvent(t, outs, "probe p1 (rebinding)")
		outs = r.validated(1, 32*ms)
		wantActions(t, outs)
		wantEvent(t, outs, "kept p1 (rebinding)")
		r.wantCurrent(1)
		if s := r.m.Stats(); s.Kept != 1 || s.Switches.Total() != 1 || s.ReflexiveChanges != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("rebinding_probe_fails_to_circuit", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		r.up(10, Circuit, 80*ms)
		reflexive(r)
		outs := r.failed(1)
		wantActions(t, outs, "Switch(p10, fallback)")
		wantEvent(t, outs, "probe-failed p1 (rebinding)")
	})
	t.Run("rebinding_probe_fails_nothing_else", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		reflexive(r)
		outs := r.failed(1)
		wantActions(t, outs, "FallBack(rebinding)")
		wantEvent(t, outs, "lost p1 (rebinding)")
		r.wantCurrent(NoPath)
	})
	t.Run("rebinding_probe_times_out", func(t *testing.T) {
		cfg := DefaultConfig()
		r := newRig(t, cfg, 1)
		r.up(1, Direct, 30*ms)
		r.up(10, Circuit, 80*ms)
		reflexive(r)
		wantActions(t, r.advance(cfg.ProbeTimeout), "Switch(p10, fallback)")
	})
	t.Run("local_address_probe_fails_other_direct", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		r.up(2, Direct, 50*ms)
		wantActions(t, local(r), "Probe(p1)", "Probe(p2)")
		// p2 is in doubt too, but better than no path while its probe is out.
		wantActions(t, r.failed(1), "Switch(p2, local-address)")
		outs := r.validated(2, 45*ms)
		wantActions(t, outs)
		wantEvent(t, outs, "kept p2 (local-address)")
	})
	t.Run("local_address_new_path_first", func(t *testing.T) {
		r := newRig(t, DefaultConfig(), 1)
		r.up(1, Direct, 30*ms)
		r.up(10, Circuit, 20*ms)
		wantActions(t, local(r), "Probe(p1)")
		// A circuit's validation does not preempt the direct path's probe.
		wantActions(t, r.validated(10, 20*ms))
		// The driver opened a new socket: the path from it is proven first.
		wantActions(t, r.add(2, Direct), "Probe(p2)")
		wantActions(t, r.validated(2, 40*ms), "Switch(p2, local-address)")
		wantActions(t, r.failed(1)) // no longer current
		r.wantCurrent(2)
	})
	t.Run("local_address_on_circuit_restarts_upgrade", func(t *testing.T) {
		cfg := DefaultConfig()
		r := newRig(t, cfg, 1)
		r.up(10, Circuit, 80*ms)
		r.advance(10 * time.Minute) // the upgrade backoff is at its cap
		outs := local(r)
		d := lastTimer(t, outs, TimerUpgrade).At.Sub(r.now)
		if d < cfg.UpgradeBackoff*3/4 || d >= cfg.UpgradeBackoff*5/4 {
			t.Fatalf("next TryUpgrade in %v, want %v ±25%%", d, cfg.UpgradeBackoff)
		}
		wantActions(t, r.advance(d), "TryUpgrade")
	})
}

// TestQualityDwellBackoff: with the better path always the other one,
// quality switches come exactly when the dwell allows: 10 s after the
// first switch, then after 10, 20, 40, 80, 160 s and then every 300 s.
// After BackoffReset without a quality switch the dwell is 10 s again.
func TestQualityDwellBackoff(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BackoffReset = 20 * time.Minute
	r := newRig(t, cfg, 1)
	r.up(1, Direct, 100*ms)
	r.up(2, Direct, 100*ms)
	sample := func(d time.Duration, good PathID) {
		for range int(d / (100 * ms)) {
			r.advance(100 * ms)
			for _, id := range []PathID{1, 2} {
				rtt := 120 * ms
				if id == good {
					rtt = 30 * ms
				}
				r.observe(id, rtt, 0)
			}
		}
	}
	other := func() PathID { return 3 - r.m.Current() }
	for r.now.Sub(t0) < 1000*time.Second {
		sample(100*ms, other())
	}
	want := []time.Duration{0, 10, 20, 40, 80, 160, 320, 620, 920}
	if len(r.at) != len(want) {
		t.Fatalf("switches at %v, want %v s", r.at, want)
	}
	for i, w := range want {
		if r.at[i] != w*time.Second {
			t.Fatalf("switch %d at %v, want %v (all %v)", i, r.at[i], w*time.Second, r.at)
		}
	}
	if s := r.m.Stats(); s.Switches.Degraded != 8 || s.SuppressedDwell == 0 || s.SuppressedHold == 0 {
		t.Fatalf("stats %+v", s)
	}
	// Quiet for BackoffReset, then the other path turns better: it wins
	// after the hold, and the next dwell is back to 10 s.
	sample(cfg.BackoffReset, r.m.Current())
	start := r.now.Sub(t0)
	for r.now.Sub(t0) < start+30*time.Second {
		sample(100*ms, other())
	}
	got := r.at[len(want):]
	if len(got) != 2 || got[0]-start > cfg.HoldTime+time.Second || got[1]-got[0] != cfg.Dwell {
		t.Fatalf("after a quiet %v, switches at %v from %v; want one after the hold and one %v later", cfg.BackoffReset, got, start, cfg.Dwell)
	}
}

// TestHoldNeedsSamplesAndTime: a candidate must beat the current path on
// HoldSamples samples of its own over HoldTime; a path measured only at
// its validation never wins; one contrary sample starts the count over.
func TestHoldNeedsSamplesAndTime(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dwell, cfg.MaxDwell = 0, 0
	r := newRig(t, cfg, 1)
	r.up(1, Direct, 100*ms)
	r.up(2, Direct, 40*ms) // one sample of p2, far better
	for range 50 {         // 5 s of samples of p1 alone: p2's one sample is not enough
		r.advance(100 * ms)
		r.observe(1, 100*ms, 0)
	}
	r.wantCurrent(1)
	r.advance(100 * ms)
	r.observe(2, 400*ms, 0) // p2's srtt 85 ms: 85 × 1.25 > 100, the streak breaks
	both := func(n int) {
		for range n {
			r.advance(100 * ms)
			r.observe(1, 100*ms, 0)
			r.observe(2, 40*ms, 0) // from the first, p2 beats p1 again
		}
	}
	both(20) // the new streak began at 5.2 s; at 7.1 s it spans 1.9 s
	r.wantCurrent(1)
	both(1) // 7.2 s: 2 s
	r.wantCurrent(2)
	if got := r.at[len(r.at)-1]; got != 7200*ms {
		t.Fatalf("switch at %v, want 7.2 s", got)
	}
	if s := r.m.Stats(); s.Switches.Degraded != 1 || s.SuppressedHold == 0 || s.SuppressedDwell != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestMarginAndMinimum: a candidate within the margin, or better by less
// than MinImprovement, never wins.
func TestMarginAndMinimum(t *testing.T) {
	tests := []struct {
		name     string
		cur, alt time.Duration
		win      bool
	}{
		{"within_margin", 100 * ms, 81 * ms, false}, // 81 × 1.25 > 100
		{"beyond_margin", 100 * ms, 79 * ms, true},
		{"lan_noise", 2 * ms, 1 * ms, false}, // 2× better, but by 1 ms
		{"lan_real", 12 * ms, 6 * ms, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, DefaultConfig(), 1)
			r.up(1, Direct, tt.cur)
			r.up(2, Direct, tt.alt)
			for range 600 {
				r.advance(100 * ms)
				r.observe(1, tt.cur, 0)
				r.observe(2, tt.alt, 0)
			}
			if got := r.m.Current() == 2; got != tt.win {
				t.Fatalf("switched %v, want %v", got, tt.win)
			}
		})
	}
}

// TestLossCounts: loss weighs in the cost: a path with 20% loss loses to
// a slower clean one.
func TestLossCounts(t *testing.T) {
	r := newRig(t, DefaultConfig(), 1)
	r.up(1, Direct, 40*ms)
	r.up(2, Direct, 80*ms)
	for range 600 {
		r.advance(100 * ms)
		r.observe(1, 40*ms, 0.2) // cost 40 + 200 ms
		r.observe(2, 80*ms, 0)
	}
	r.wantCurrent(2)
}

// TestDegradeToCircuitAndBack: a direct path clearly worse than the
// circuit is left after the hold and dwell; going back to direct then
// waits for the dwell too, as a quality switch.
func TestDegradeToCircuitAndBack(t *testing.T) {
	r := newRig(t, DefaultConfig(), 1)
	r.up(10, Circuit, 50*ms)
	wantActions(t, r.up(1, Direct, 90*ms), "Probe(p1)", "Switch(p1, upgrade)")
	run := func(d, direct time.Duration) {
		for range int(d / (100 * ms)) {
			r.advance(100 * ms)
			r.observe(1, direct, 0)
			r.observe(10, 50*ms, 0)
		}
	}
	run(time.Minute, 110*ms) // worse than 95 ms, within the margin: stay
	r.wantCurrent(1)
	for r.m.Current() != 10 { // 150 > 95 × 1.25: degrade
		run(100*ms, 150*ms)
		if r.now.Sub(t0) > 10*time.Minute {
			t.Fatal("no degraded switch")
		}
	}
	degraded := r.at[len(r.at)-1]
	run(time.Minute, 60*ms)
	r.wantCurrent(1)
	up := r.at[len(r.at)-1]
	if up-degraded != 10*time.Second {
		t.Fatalf("upgrade %v after the degraded switch, want the 10 s dwell", up-degraded)
	}
	s := r.m.Stats()
	if s.Switches.Degraded != 1 || s.Switches.Upgrade != 2 || s.SuppressedDwell == 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestBadInput is acceptance test 5's first half: nonsense from the
// driver is counted and ignored.
func TestBadInput(t *testing.T) {
	tests := []struct {
		name    string
		do      func(m *Machine) []Output
		counter func(Stats) uint64
	}{
		{"observe_unknown", func(m *Machine) []Output { return m.Observe(t0, 9, 10*ms, 0) }, func(s Stats) uint64 { return s.Invalid.UnknownPath }},
		{"observe_nopath", func(m *Machine) []Output { return m.Observe(t0, NoPath, 10*ms, 0) }, func(s Stats) uint64 { return s.Invalid.UnknownPath }},
		{"observe_negative_rtt", func(m *Machine) []Output { return m.Observe(t0, 1, -ms, 0) }, func(s Stats) uint64 { return s.Invalid.BadRTT }},
		{"observe_huge_rtt", func(m *Machine) []Output { return m.Observe(t0, 1, MaxRTT+1, 0) }, func(s Stats) uint64 { return s.Invalid.BadRTT }},
		{"observe_nan_loss", func(m *Machine) []Output { return m.Observe(t0, 1, 10*ms, math.NaN()) }, func(s Stats) uint64 { return s.Invalid.BadLoss }},
		{"observe_inf_loss", func(m *Machine) []Output { return m.Observe(t0, 1, 10*ms, math.Inf(1)) }, func(s Stats) uint64 { return s.Invalid.BadLoss }},
		{"observe_negative_loss", func(m *Machine) []Output { return m.Observe(t0, 1, 10*ms, -0.01) }, func(s Stats) uint64 { return s.Invalid.BadLoss }},
		{"observe_loss_above_one", func(m *Machine) []Output { return m.Observe(t0, 1, 10*ms, 1.01) }, func(s Stats) uint64 { return s.Invalid.BadLoss }},
		{"validated_unknown", func(m *Machine) []Output { return m.Validated(t0, 9, 10*ms) }, func(s Stats) uint64 { return s.Invalid.UnknownPath }},
		{"validated_negative_rtt", func(m *Machine) []Output { return m.Validated(t0, 1, -ms) }, func(s Stats) uint64 { return s.Invalid.BadRTT }},
		{"probe_failed_unknown", func(m *Machine) []Output { return m.ProbeFailed(t0, 9) }, func(s Stats) uint64 { return s.Invalid.UnknownPath }},
		{"keepalive_unknown", func(m *Machine) []Output { return m.KeepAliveMissed(t0, 9) }, func(s Stats) uint64 { return s.Invalid.UnknownPath }},
		{"remove_unknown", func(m *Machine) []Output { return m.RemovePath(t0, 9) }, func(s Stats) uint64 { return s.Invalid.UnknownPath }},
		{"time_backwards", func(m *Machine) []Output { return m.Observe(t0.Add(-time.Hour), 1, 20*ms, 0) }, func(s Stats) uint64 { return s.Invalid.TimeBackwards }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMachine(t, DefaultConfig(), 1)
			m.AddPath(t0, 1, Direct)
			m.Validated(t0, 1, 20*ms)
			before := *m.find(1)
			outs := tt.do(m)
			if len(outs) != 0 {
				t.Fatalf("outputs %q", all(outs))
			}
			if got := tt.counter(m.Stats()); got != 1 {
				t.Fatalf("counter = %d, want 1 (%+v)", got, m.Stats().Invalid)
			}
			if tt.name != "time_backwards" && *m.find(1) != before {
				t.Fatalf("path changed: %+v, was %+v", *m.find(1), before)
			}
			if m.Current() != 1 {
				t.Fatal("current path changed")
			}
		})
	}
}

// TestAddPathRefused: AddPath refuses what it cannot hold, with an error
// wrapping a sentinel and a count, and nothing emitted.
func TestAddPathRefused(t *testing.T) {
	m := newTestMachine(t, DefaultConfig(), 1)
	for i := range MaxPaths {
		if _, err := m.AddPath(t0, PathID(i+1), Direct); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		do   func() ([]Output, error)
		want error
	}{
		{"nopath", func() ([]Output, error) { return m.AddPath(t0, NoPath, Direct) }, ErrBadPath},
		{"kind_zero", func() ([]Output, error) { return m.AddPath(t0, 99, 0) }, ErrBadPath},
		{"kind_unknown", func() ([]Output, error) { return m.AddPath(t0, 99, 7) }, ErrBadPath},
		{"duplicate", func() ([]Output, error) { return m.AddPath(t0, 1, Circuit) }, ErrDuplicatePath},
		{"duplicate_punch", func() ([]Output, error) { return m.PunchSucceeded(t0, 2) }, ErrDuplicatePath},
		{"too_many", func() ([]Output, error) { return m.AddPath(t0, MaxPaths+1, Circuit) }, ErrTooManyPaths},
		{"too_many_punch", func() ([]Output, error) { return m.PunchSucceeded(t0, MaxPaths+1) }, ErrTooManyPaths},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs, err := tt.do()
			if !errors.Is(err, tt.want) || len(outs) != 0 {
				t.Fatalf("err %v, outputs %q; want %v and nothing", err, all(outs), tt.want)
			}
			if s := m.Stats(); s.Refused != uint64(i+1) || s.Paths != MaxPaths || s.Punches != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// TestStaleTimers is acceptance test 6: timers that no longer matter,
// fired twice, superseded or forged, do nothing but count.
func TestStaleTimers(t *testing.T) {
	cfg := DefaultConfig()
	r := newRig(t, cfg, 1)
	probe := lastTimer(t, r.add(1, Direct), TimerProbe)
	r.validated(1, 30*ms)
	wantActions(t, r.take(r.m.HandleTimer(probe.At, probe.Timer))) // validated already

	// A probe superseded by an address change: the old timer is stale,
	// the new one counts.
	old := lastTimer(t, r.take(r.m.ReflexiveChanged(r.now)), TimerProbe)
	r.advance(time.Second)
	renewed := lastTimer(t, r.take(r.m.LocalAddressChanged(r.now)), TimerProbe)
	wantActions(t, r.take(r.m.HandleTimer(old.At, old.Timer)))
	outs := r.take(r.m.HandleTimer(renewed.At, renewed.Timer))
	wantActions(t, outs, "FallBack(local-address)")
	r.now = renewed.At

	// An upgrade timer fired twice, and one left over after an upgrade.
	up := lastTimer(t, r.up(10, Circuit, 80*ms), TimerUpgrade)
	r.now = up.At
	wantActions(t, r.take(r.m.HandleTimer(up.At, up.Timer)), "TryUpgrade")
	wantActions(t, r.take(r.m.HandleTimer(up.At, up.Timer)))
	next := r.timersOf(TimerUpgrade)
	r.punch(2)
	r.validated(2, 20*ms)
	wantActions(t, r.take(r.m.HandleTimer(next[len(next)-1].At, next[len(next)-1].Timer)))

	// Forged timers.
	before := r.m.Stats().StaleTimers
	for _, tm := range []Timer{{}, {Kind: 99}, {Kind: TimerProbe, Path: 77}, {Kind: TimerDwell, seq: 12345}, {Kind: TimerFallBack}} {
		wantActions(t, r.take(r.m.HandleTimer(r.now, tm)))
	}
	if got := r.m.Stats().StaleTimers - before; got != 5 {
		t.Fatalf("StaleTimers +%d, want +5", got)
	}
	if r.m.Stats().ProbeTimeouts != 1 {
		t.Fatalf("ProbeTimeouts %d, want 1", r.m.Stats().ProbeTimeouts)
	}
}

// TestDeterministic: the same inputs and seed give the same outputs.
func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	b := make([]byte, 4000)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	a, c := drive(t, b, false), drive(t, b, false)
	if len(a) != len(c) {
		t.Fatalf("%d outputs, then %d", len(a), len(c))
	}
	for i := range a {
		if a[i] != c[i] {
			t.Fatalf("output %d: %q, then %q", i, a[i], c[i])
		}
	}
	if len(a) < 100 {
		t.Fatalf("only %d outputs: the trace exercises little", len(a))
	}
}

func TestStrings(t *testing.T) {
	for _, s := range []string{
		Kind(9).String(), Cause(0).String(), TimerKind(0).String(), EventKind(0).String(),
	} {
		if s == "" {
			t.Fatal("empty name")
		}
	}
	for c := CauseInitial; c <= CauseFallback; c++ {
		if strings.HasPrefix(c.String(), "cause(") {
			t.Fatalf("cause %d has no name", c)
		}
	}
	if got := (Event{Kind: EventSwitch, Path: 2, From: 1, Cause: CauseDegraded}).String(); got != "switch p1→p2 (degraded)" {
		t.Fatalf("event %q", got)
	}
}

// TestPathInfo: Path reports a path's kind, smoothed RTT and loss, and
// misses in a row, and knows no path it was not given.
func TestPathInfo(t *testing.T) {
	cfg := DefaultConfig()
	r := newRig(t, cfg, 1)
	r.up(1, Circuit, 80*ms)
	r.observe(1, 80*ms, 0.5)
	r.miss(1, 1)
	p, ok := r.m.Path(1)
	if !ok {
		t.Fatal("path 1 unknown")
	}
	if want := cfg.LossGain * 0.5; p.Kind != Circuit || p.SRTT != 80*ms || p.Loss != want || !p.Usable || p.Misses != 1 {
		t.Fatalf("path 1: %+v, want a usable circuit, srtt 80ms, loss %v, 1 miss", p, want)
	}
	if _, ok := r.m.Path(2); ok {
		t.Fatal("path 2, never added, is known")
	}
}
