package netlab

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Migration scenarios: a seeded, random sequence of the path changes a
// long-lived connection meets (a NAT that rebinds, a route between two
// networks that breaks for a while, a host whose link goes dark: a relay
// that dies, or comes back), played on a Network while the code under
// test keeps a stream going. The steps come one after another: each
// starts once the previous one has ended and a gap has passed, so every
// stall a test measures belongs to one step.

// StepKind is what a scenario step does.
type StepKind uint8

const (
	// StepRebind: the NAT Targets.NATs[Target] rebinds (NAT.Rebind).
	StepRebind StepKind = iota + 1
	// StepBlackhole: the two public addresses Targets.Pairs[Target]
	// stop reaching each other for For (Network.Block, then Unblock).
	StepBlackhole
	// StepDark: the host Targets.Hosts[Target] drops every datagram on
	// its link for For, then its link is as it was.
	StepDark
)

func (k StepKind) String() string {
	switch k {
	case StepRebind:
		return "rebind"
	case StepBlackhole:
		return "blackhole"
	case StepDark:
		return "dark"
	}
	return fmt.Sprintf("step(%d)", uint8(k))
}

// Step is one step of a scenario.
type Step struct {
	At     time.Duration // from the start of the scenario
	Kind   StepKind
	Target int           // index into the Targets slice of its kind
	For    time.Duration // how long a blackhole or a dark link lasts; 0 for a rebinding
}

func (e Step) String() string {
	if e.For == 0 {
		return fmt.Sprintf("%v: %v %d", e.At, e.Kind, e.Target)
	}
	return fmt.Sprintf("%v: %v %d for %v", e.At, e.Kind, e.Target, e.For)
}

// Targets are what a scenario's steps act on. A kind with no targets
// is never drawn.
type Targets struct {
	NATs  []*NAT          // StepRebind
	Pairs [][2]netip.Addr // StepBlackhole
	Hosts []*Host         // StepDark
}

// ScenarioConfig shapes a scenario.
type ScenarioConfig struct {
	Steps          int           // how many steps; 1..1000
	MinGap, MaxGap time.Duration // the quiet time after each step ends (and before the first)
	MinFor, MaxFor time.Duration // how long a blackhole or a dark link lasts
	NATs, Pairs    int           // how many targets of each kind there are (Targets' lengths)
	Hosts          int
	PerKindWeights [3]int // weights of rebind, blackhole and dark; all 0 means equal
}

// maxScenarioSteps bounds ScenarioConfig.Steps.
const maxScenarioSteps = 1000

// Validate reports whether c can make a scenario.
func (c ScenarioConfig) Validate() error {
	bad := func(f string, a ...any) error {
		return fmt.Errorf("%w: scenario: "+f, append([]any{ErrBadConfig}, a...)...)
	}
	switch {
	case c.Steps < 1 || c.Steps > maxScenarioSteps:
		return bad("Steps %d, want 1..%d", c.Steps, maxScenarioSteps)
	case c.MinGap < 0 || c.MaxGap < c.MinGap:
		return bad("gap %v..%v", c.MinGap, c.MaxGap)
	case c.MinFor <= 0 || c.MaxFor < c.MinFor:
		return bad("outage %v..%v, want 0 < MinFor <= MaxFor", c.MinFor, c.MaxFor)
	case c.NATs < 0 || c.Pairs < 0 || c.Hosts < 0:
		return bad("negative target count")
	}
	for _, x := range c.PerKindWeights {
		if x < 0 {
			return bad("negative weight %d", x)
		}
	}
	if w := c.weights(); w[0]+w[1]+w[2] == 0 {
		return bad("no step kind has both a target and a weight")
	}
	return nil
}

// weights are the kinds' weights, 0 for a kind with no target.
func (c ScenarioConfig) weights() [3]int {
	w := c.PerKindWeights
	if w == [3]int{} {
		w = [3]int{1, 1, 1}
	}
	for i, n := range [3]int{c.NATs, c.Pairs, c.Hosts} {
		if n == 0 {
			w[i] = 0
		}
	}
	return w
}

// Scenario draws a scenario from seed: the same seed and config give the
// same steps.
func Scenario(seed uint64, c ScenarioConfig) ([]Step, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, mix(seed)))
	between := func(lo, hi time.Duration) time.Duration {
		if hi == lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	w := c.weights()
	total := w[0] + w[1] + w[2]
	steps := make([]Step, 0, c.Steps)
	at := between(c.MinGap, c.MaxGap)
	for range c.Steps {
		var e Step
		switch x := rng.IntN(total); {
		case x < w[0]:
			e = Step{Kind: StepRebind, Target: rng.IntN(c.NATs)}
		case x < w[0]+w[1]:
			e = Step{Kind: StepBlackhole, Target: rng.IntN(c.Pairs), For: between(c.MinFor, c.MaxFor)}
		default:
			e = Step{Kind: StepDark, Target: rng.IntN(c.Hosts), For: between(c.MinFor, c.MaxFor)}
		}
		e.At = at
		steps = append(steps, e)
		at += e.For + between(c.MinGap, c.MaxGap)
	}
	return steps, nil
}

// Play carries out steps on n, sleeping until each one's time from now
// (under testing/synctest, virtual time) and calling begin, if not nil,
// as each begins; it returns once the last has ended (a blackhole
// lifted, a dark link back). It returns an error, before doing
// anything, when a step names a target that t does not have.
func (n *Network) Play(steps []Step, t Targets, begin func(Step)) error {
	for _, e := range steps {
		var have int
		switch e.Kind {
		case StepRebind:
			have = len(t.NATs)
		case StepBlackhole:
			have = len(t.Pairs)
		case StepDark:
			have = len(t.Hosts)
		default:
			return fmt.Errorf("%w: scenario step %v", ErrBadConfig, e)
		}
		if e.Target < 0 || e.Target >= have {
			return fmt.Errorf("%w: scenario step %v: %d targets of its kind", ErrBadConfig, e, have)
		}
	}
	start := time.Now()
	for _, e := range steps {
		time.Sleep(time.Until(start.Add(e.At)))
		if begin != nil {
			begin(e)
		}
		switch e.Kind {
		case StepRebind:
			t.NATs[e.Target].Rebind()
		case StepBlackhole:
			p := t.Pairs[e.Target]
			n.Block(p[0], p[1])
			time.Sleep(e.For)
			n.Unblock(p[0], p[1])
		case StepDark:
			h := t.Hosts[e.Target]
			was := h.Link()
			dark := was
			dark.Loss = 1
			if err := h.SetLink(dark); err != nil {
				return err
			}
			time.Sleep(e.For)
			if err := h.SetLink(was); err != nil {
				return err
			}
		}
	}
	return nil
}
