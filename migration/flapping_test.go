package migration

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// Acceptance test 4: no flapping. Two paths whose quality oscillates
// around each other are sampled every 100 ms for an hour of virtual time.
// With the default config the quality switches must stay within the
// bound the dwell backoff gives (hourlyBound: 16 an hour); once one path
// becomes persistently better the machine must move to it (so the test
// fails if the machine simply never switches); and with the hysteresis
// turned off the same traces must flap many times over (so the test fails
// if the traces do not actually cross the switching threshold).

const (
	samplePeriod = 100 * time.Millisecond
	oscillation  = time.Hour
	persistent   = 10 * time.Minute
)

// sample is one measurement of both paths.
type sample struct {
	rtt  [2]time.Duration
	loss [2]float64
}

// flapTrace describes two paths, p1 and p2, and their measurements at
// virtual time t since the start (sample i); rng gives seeded jitter. A
// trace may keep state across calls: use each for one run only.
type flapTrace struct {
	name  string
	kinds [2]Kind
	at    func(t time.Duration, i int, rng *rand.Rand) sample
}

// jitter returns d ± 3 ms, uniform.
func jitter(d time.Duration, rng *rand.Rand) time.Duration {
	return d + time.Duration(rng.Int64N(int64(6*ms))) - 3*ms
}

// swap returns (a, b) in the first half of each period and (b, a) in the
// second.
func swap[T any](t, period time.Duration, a, b T) [2]T {
	if (t/(period/2))%2 == 0 {
		return [2]T{a, b}
	}
	return [2]T{b, a}
}

func flapTraces() []flapTrace {
	direct2 := [2]Kind{Direct, Direct}
	return []flapTrace{
		{
			// Crosses at every sample: the raw RTTs trade places each
			// 100 ms, and so (by a couple of ms) do the smoothed ones.
			name: "alternate_every_sample", kinds: direct2,
			at: func(_ time.Duration, i int, rng *rand.Rand) sample {
				r := [2]time.Duration{30 * ms, 70 * ms}
				if i%2 == 1 {
					r[0], r[1] = r[1], r[0]
				}
				return sample{rtt: [2]time.Duration{jitter(r[0], rng), jitter(r[1], rng)}}
			},
		},
		{
			// Square wave: each path is 3× better for 5 s, then 3× worse.
			name: "square_10s_period", kinds: direct2,
			at: func(t time.Duration, _ int, rng *rand.Rand) sample {
				r := swap(t, 10*time.Second, 30*ms, 90*ms)
				return sample{rtt: [2]time.Duration{jitter(r[0], rng), jitter(r[1], rng)}}
			},
		},
		{
			// Sinusoids in antiphase, 60 ± 30 ms, period 20 s.
			name: "sine_20s_period", kinds: direct2,
			at: func(t time.Duration, _ int, rng *rand.Rand) sample {
				s := 30 * math.Sin(2*math.Pi*t.Seconds()/20)
				a := time.Duration((60 + s) * float64(ms))
				b := time.Duration((60 - s) * float64(ms))
				return sample{rtt: [2]time.Duration{jitter(a, rng), jitter(b, rng)}}
			},
		},
		{
			// Same RTT; the loss rate swaps between 0 and 20% every 10 s.
			name: "loss_square_20s_period", kinds: direct2,
			at: func(t time.Duration, _ int, rng *rand.Rand) sample {
				return sample{
					rtt:  [2]time.Duration{jitter(40*ms, rng), jitter(40*ms, rng)},
					loss: swap(t, 20*time.Second, 0.0, 0.2),
				}
			},
		},
		{
			// The direct path swings either side of the circuit's biased
			// cost (80 × 1.5 + 20 = 140 ms) every 10 s.
			name: "direct_vs_circuit", kinds: [2]Kind{Direct, Circuit},
			at: func(t time.Duration, _ int, rng *rand.Rand) sample {
				d := swap(t, 20*time.Second, 60*ms, 260*ms)[0]
				return sample{rtt: [2]time.Duration{jitter(d, rng), jitter(80*ms, rng)}}
			},
		},
		{
			// Random segments of 0.5 to 30 s, each with the better path
			// flipped and a random gap of 10 to 60 ms.
			name: "random_segments", kinds: direct2,
			at: randomSegments(),
		},
	}
}

// randomSegments returns a trace whose better path flips at random
// times. Its state advances with the calls, in time order.
func randomSegments() func(time.Duration, int, *rand.Rand) sample {
	var end time.Duration
	var gap time.Duration
	better := 0
	return func(t time.Duration, _ int, rng *rand.Rand) sample {
		if t >= end {
			end = t + 500*ms + time.Duration(rng.Int64N(int64(29500*ms)))
			gap = 10*ms + time.Duration(rng.Int64N(int64(50*ms)))
			better = 1 - better
		}
		var r [2]time.Duration
		r[better], r[1-better] = 50*ms, 50*ms+gap
		return sample{rtt: [2]time.Duration{jitter(r[0], rng), jitter(r[1], rng)}}
	}
}

// flapResult is what a run of a trace shows.
type flapResult struct {
	oscillating int    // switches, other than the first, in the hour of oscillation
	persistent  int    // switches after one path became persistently better
	final       PathID // the current path at the end
	better      PathID // the path that was persistently better
	stats       Stats
}

// runFlap runs tr for an hour, then makes the path that is not current
// persistently better (half the other's RTT, no loss) for ten minutes.
func runFlap(t *testing.T, cfg Config, tr flapTrace, seed uint64) flapResult {
	t.Helper()
	r := newRig(t, cfg, seed)
	rng := rand.New(rand.NewPCG(seed, 99))
	first := tr.at(0, 0, rng)
	r.up(1, tr.kinds[0], first.rtt[0])
	r.up(2, tr.kinds[1], first.rtt[1]) // without hysteresis, may win at once
	i := 0
	run := func(d time.Duration, at func(time.Duration, int) sample) {
		for end := r.now.Add(d); r.now.Before(end); i++ {
			r.advance(samplePeriod)
			s := at(r.now.Sub(t0), i)
			r.observe(1, s.rtt[0], s.loss[0])
			r.observe(2, s.rtt[1], s.loss[1])
		}
	}
	run(oscillation, func(t time.Duration, i int) sample { return tr.at(t, i, rng) })
	res := flapResult{oscillating: len(r.switches()) - 1}
	res.better = 3 - r.m.Current()
	run(persistent, func(time.Duration, int) sample {
		var s sample
		s.rtt[res.better-1] = jitter(40*ms, rng)
		s.rtt[2-res.better] = jitter(120*ms, rng)
		return s
	})
	res.persistent = len(r.switches()) - 1 - res.oscillating
	res.final, res.stats = r.m.Current(), r.m.Stats()
	return res
}

// hourlyBound is the most quality switches the default config allows in
// any hour, as the package doc derives it. It is a literal, not computed
// with the machine's own code, so that a machine whose backoff is broken
// fails TestNoFlapping.
const hourlyBound = 16

// switchBound is the most quality switches the dwell backoff allows in a
// window: the first at its start, then each one a backed-off dwell after
// the one before (Dwell, 2 Dwell, 4 Dwell, … up to MaxDwell). It holds
// for any window no longer than BackoffReset, since the backoff starts
// over at most once in it (see the package doc). It does its own
// arithmetic, apart from Config.dwell.
func switchBound(cfg Config, window time.Duration) int {
	if cfg.Dwell <= 0 {
		panic("switchBound: no dwell, no bound")
	}
	n, elapsed, dwell := 1, time.Duration(0), cfg.Dwell
	for {
		elapsed += dwell
		if elapsed > window {
			return n
		}
		n++
		dwell = min(2*dwell, cfg.MaxDwell)
	}
}

// noHysteresis is DefaultConfig with every brake off: no margin, no
// minimum gain, no hold, no dwell.
func noHysteresis() Config {
	c := DefaultConfig()
	c.Margin, c.MinImprovement = 0, 0
	c.HoldSamples, c.HoldTime = 0, 0
	c.Dwell, c.MaxDwell = 0, 0
	return c
}

func TestSwitchBound(t *testing.T) {
	// The package doc states 16; keep it true.
	if got := switchBound(DefaultConfig(), time.Hour); got != hourlyBound {
		t.Fatalf("switchBound(default, 1h) = %d, want 16 (update the package doc)", got)
	}
	if DefaultConfig().BackoffReset < time.Hour {
		t.Fatal("the hourly bound needs BackoffReset ≥ 1 h")
	}
}

func TestNoFlapping(t *testing.T) {
	bound := hourlyBound
	for i, tr := range flapTraces() {
		t.Run(tr.name, func(t *testing.T) {
			for _, seed := range []uint64{1, 2, 3} {
				tr := flapTraces()[i] // fresh: a trace may keep state
				res := runFlap(t, DefaultConfig(), tr, seed)
				t.Logf("seed %d: %d switches in %v of oscillation (bound %d); held back %d by hold, %d by dwell",
					seed, res.oscillating, oscillation, bound, res.stats.SuppressedHold, res.stats.SuppressedDwell)
				if res.oscillating > bound {
					t.Fatalf("seed %d: %d switches in an hour, bound %d: flapping", seed, res.oscillating, bound)
				}
				if res.persistent < 1 || res.final != res.better {
					t.Fatalf("seed %d: %d switches once %v was persistently better, ending on %v: stuck", seed, res.persistent, res.better, res.final)
				}
				if s := res.stats.Switches; s.Total() != s.Initial+s.Degraded+s.Upgrade {
					t.Fatalf("seed %d: switches not driven by quality: %v", seed, s)
				}
			}
		})
	}
}

// TestNoFlappingControl: with the hysteresis off, the same traces flap,
// so TestNoFlapping would catch a machine that flaps.
func TestNoFlappingControl(t *testing.T) {
	bound := hourlyBound
	for _, tr := range flapTraces() {
		t.Run(tr.name, func(t *testing.T) {
			res := runFlap(t, noHysteresis(), tr, 1)
			t.Logf("%d switches in %v without hysteresis (bound with it %d)", res.oscillating, oscillation, bound)
			if res.oscillating < 5*bound {
				t.Fatalf("only %d switches without hysteresis, want ≥ %d: the trace does not cross the threshold", res.oscillating, 5*bound)
			}
		})
	}
}
