package netlab_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

func scenarioConfig() netlab.ScenarioConfig {
	return netlab.ScenarioConfig{
		Steps: 50, MinGap: 2 * time.Second, MaxGap: 10 * time.Second,
		MinFor: time.Second, MaxFor: 20 * time.Second,
		NATs: 2, Pairs: 1, Hosts: 3,
	}
}

// TestScenarioDraws: a seed gives the same steps every time and another
// seed others; steps follow one another with a gap in bounds after each
// one ends; outages last within bounds and a rebinding has none; every
// target is in range; every kind is drawn, and a kind with no target or
// no weight never is.
func TestScenarioDraws(t *testing.T) {
	c := scenarioConfig()
	s1, err := netlab.Scenario(7, c)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := netlab.Scenario(7, c)
	other, _ := netlab.Scenario(8, c)
	if !slices.Equal(s1, again) {
		t.Fatal("seed 7 drew two different scenarios")
	}
	if slices.Equal(s1, other) {
		t.Fatal("seeds 7 and 8 drew the same scenario")
	}
	if len(s1) != c.Steps {
		t.Fatalf("%d steps, want %d", len(s1), c.Steps)
	}
	kinds := map[netlab.StepKind]int{}
	end := time.Duration(0)
	for i, s := range s1 {
		kinds[s.Kind]++
		if gap := s.At - end; gap < c.MinGap || gap > c.MaxGap {
			t.Fatalf("step %d (%v): gap %v after the previous one ended, want %v..%v", i, s, gap, c.MinGap, c.MaxGap)
		}
		var targets int
		switch s.Kind {
		case netlab.StepRebind:
			targets = c.NATs
			if s.For != 0 {
				t.Fatalf("step %d (%v): a rebinding with a duration", i, s)
			}
		case netlab.StepBlackhole, netlab.StepDark:
			targets = c.Pairs
			if s.Kind == netlab.StepDark {
				targets = c.Hosts
			}
			if s.For < c.MinFor || s.For > c.MaxFor {
				t.Fatalf("step %d (%v): lasts %v, want %v..%v", i, s, s.For, c.MinFor, c.MaxFor)
			}
		default:
			t.Fatalf("step %d: kind %v", i, s.Kind)
		}
		if s.Target < 0 || s.Target >= targets {
			t.Fatalf("step %d (%v): target out of 0..%d", i, s, targets-1)
		}
		end = s.At + s.For
	}
	if len(kinds) != 3 {
		t.Fatalf("kinds drawn %v in %d steps, want all three", kinds, len(s1))
	}

	c.Pairs = 0                        // no pair to blackhole
	c.PerKindWeights = [3]int{0, 1, 1} // and no rebinding
	s2, err := netlab.Scenario(7, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range s2 {
		if s.Kind != netlab.StepDark {
			t.Fatalf("drew %v with only dark links possible", s)
		}
	}
}

// TestScenarioConfigRefused: a config that cannot make a scenario is
// refused with ErrBadConfig.
func TestScenarioConfigRefused(t *testing.T) {
	for name, mutate := range map[string]func(*netlab.ScenarioConfig){
		"no_steps":        func(c *netlab.ScenarioConfig) { c.Steps = 0 },
		"too_many_steps":  func(c *netlab.ScenarioConfig) { c.Steps = 1001 },
		"gap_inverted":    func(c *netlab.ScenarioConfig) { c.MinGap, c.MaxGap = 2*time.Second, time.Second },
		"negative_gap":    func(c *netlab.ScenarioConfig) { c.MinGap = -1 },
		"zero_outage":     func(c *netlab.ScenarioConfig) { c.MinFor = 0 },
		"outage_inverted": func(c *netlab.ScenarioConfig) { c.MaxFor = c.MinFor - 1 },
		"negative_count":  func(c *netlab.ScenarioConfig) { c.Hosts = -1 },
		"negative_weight": func(c *netlab.ScenarioConfig) { c.PerKindWeights = [3]int{1, -1, 1} },
		"no_targets":      func(c *netlab.ScenarioConfig) { c.NATs, c.Pairs, c.Hosts = 0, 0, 0 },
		"weightless":      func(c *netlab.ScenarioConfig) { c.NATs, c.PerKindWeights = 0, [3]int{1, 0, 0} },
	} {
		c := scenarioConfig()
		mutate(&c)
		if _, err := netlab.Scenario(1, c); !errors.Is(err, netlab.ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
	}
}

// TestScenarioPlaySynctest: Play blackholes a pair and darkens a host
// for as long as their steps say, at their times (calling begin as each
// starts), and puts both back;
// a step naming a target Play was not given is refused before anything
// is done.
func TestScenarioPlaySynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newLab(t)
		a := listen(t, addHost(t, lab, server1), 1)
		bHost := addHost(t, lab, server2)
		b := listen(t, bHost, 2)
		steps := []netlab.Step{
			{At: time.Second, Kind: netlab.StepBlackhole, Target: 0, For: 2 * time.Second},
			{At: 5 * time.Second, Kind: netlab.StepDark, Target: 0, For: 2 * time.Second},
		}
		targets := netlab.Targets{Pairs: [][2]netip.Addr{{server1, server2}}, Hosts: []*netlab.Host{bHost}}
		if err := lab.Play(append(slices.Clone(steps), netlab.Step{Kind: netlab.StepRebind}), targets, nil); !errors.Is(err, netlab.ErrBadConfig) {
			t.Fatalf("a rebinding with no NAT given: %v, want ErrBadConfig", err)
		}
		var began []time.Duration
		start := time.Now()
		played := make(chan error, 1)
		go func() {
			played <- lab.Play(steps, targets, func(netlab.Step) { began = append(began, time.Since(start)) })
		}()
		check := func(at time.Duration, through bool) {
			t.Helper()
			time.Sleep(time.Until(start.Add(at)))
			send(t, a, addrOf(b), "x")
			if through {
				mustRecv(t, b)
			} else {
				mustNotRecv(t, b)
			}
		}
		check(500*time.Millisecond, true)
		check(1500*time.Millisecond, false) // blackholed
		check(3500*time.Millisecond, true)
		check(5500*time.Millisecond, false) // b is dark
		check(7500*time.Millisecond, true)
		if err := <-played; err != nil {
			t.Fatal(err)
		}
		if want := []time.Duration{time.Second, 5 * time.Second}; !slices.Equal(began, want) {
			t.Fatalf("steps began at %v, want %v", began, want)
		}
		if l := bHost.Link(); l.Loss != 0 {
			t.Fatalf("b's link after the scenario: %+v", l)
		}
	})
}

// TestHostMoveToSynctest: a host behind one NAT moves behind another
// (a laptop changing networks). Its socket stays open on its port and
// reports the new address; a server it sends to sees the new router's
// public address; what the server sends to the old mapping is lost. A
// taken address and a router of another network are refused.
func TestHostMoveToSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newLab(t)
		server := listen(t, addHost(t, lab, server1), 3478)
		cfg := netlab.DefaultNATConfig()
		cfg.Addr = netip.MustParseAddr("198.51.100.1")
		home := addNAT(t, lab, cfg)
		cfg.Addr = netip.MustParseAddr("198.51.100.2")
		cafe := addNAT(t, lab, cfg)
		laptop := addHost(t, home, netip.MustParseAddr("192.168.1.10"))
		addHost(t, cafe, netip.MustParseAddr("10.0.0.7")) // someone at the café
		c := listen(t, laptop, 5000)

		send(t, c, addrOf(server), "from home")
		_, old := mustRecv(t, server)
		if old.Addr() != netip.MustParseAddr("198.51.100.1") {
			t.Fatalf("server saw %v before the move", old)
		}
		if err := laptop.MoveTo(cafe, netip.MustParseAddr("10.0.0.7")); !errors.Is(err, netlab.ErrAddrInUse) {
			t.Fatalf("move onto a taken address: %v, want ErrAddrInUse", err)
		}
		other := newLab(t)
		cfg.Addr = netip.MustParseAddr("198.51.100.3")
		elsewhere := addNAT(t, other, cfg)
		if err := laptop.MoveTo(elsewhere, netip.MustParseAddr("10.0.0.8")); !errors.Is(err, netlab.ErrBadConfig) {
			t.Fatalf("move to another network's router: %v, want ErrBadConfig", err)
		}
		if err := laptop.MoveTo(cafe, netip.MustParseAddr("10.0.0.8")); err != nil {
			t.Fatal(err)
		}
		if got := addrOf(c); got != netip.MustParseAddrPort("10.0.0.8:5000") {
			t.Fatalf("socket's address after the move: %v", got)
		}
		if got := laptop.Addr(); got != netip.MustParseAddr("10.0.0.8") {
			t.Fatalf("host's address after the move: %v", got)
		}
		send(t, server, old, "to the old mapping")
		mustNotRecv(t, c)
		send(t, c, addrOf(server), "from the café")
		msg, now := mustRecv(t, server)
		if msg != "from the café" || now.Addr() != netip.MustParseAddr("198.51.100.2") {
			t.Fatalf("server got %q from %v after the move", msg, now)
		}
		send(t, server, now, "back")
		if msg, _ := mustRecv(t, c); msg != "back" {
			t.Fatalf("laptop got %q", msg)
		}
	})
}
