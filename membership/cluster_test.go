package membership

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// grow joins nodes 1..n-1 one by one, each through a random earlier node
// that is in the overlay already (has a neighbour; node 0 is the first),
// as a real node joins through a bootstrap node. The overlay settles for
// 100 ms after each JOIN.
func grow(c *cluster, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0xc0ffee))
	for i := 1; i < len(c.nodes); i++ {
		contact := 0
		for range 10 {
			if k := r.IntN(i); c.nodes[k].alive && c.nodes[k].m.active.len() > 0 {
				contact = k
				break
			}
		}
		c.join(i, contact)
		c.run(100 * time.Millisecond)
	}
}

func TestClusterJoin(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		settle  time.Duration
		wantDeg int // every node's active view has exactly this many peers, or 0 for "1..ActiveSize"
	}{
		{"two_nodes", 2, 0, 1},
		{"four_nodes_full_mesh", 4, time.Minute, 3},
		{"six_nodes_full_mesh", 6, time.Minute, 5},
		{"forty_nodes_no_shuffle", 40, 0, 0},
		{"forty_nodes", 40, 2 * time.Minute, 0},
		{"hundred_nodes", 100, 2 * time.Minute, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c := newCluster(t, tt.n, cfg, 1)
			grow(c, 1)
			c.run(tt.settle)
			c.check()
			for i, n := range c.nodes {
				if d := len(n.m.active.peers); tt.wantDeg > 0 && d != tt.wantDeg {
					t.Errorf("n%d has %d neighbours, want %d", i+1, d, tt.wantDeg)
				}
			}
			t.Logf("degrees %v after %d steps; unlinked sends %v", c.degrees(), c.steps, c.unlinked)
		})
	}
}

// TestClusterFullViews: after shuffles and refills, a big enough overlay
// fills nearly every active view and the passive views too.
func TestClusterFullViews(t *testing.T) {
	cfg := DefaultConfig()
	c := newCluster(t, 150, cfg, 3)
	grow(c, 3)
	c.run(5 * time.Minute)
	c.check()
	full, passive := 0, 0
	for _, n := range c.nodes {
		if n.m.active.len() == cfg.ActiveSize {
			full++
		}
		passive += n.m.passive.len()
	}
	if full < len(c.nodes)*8/10 {
		t.Errorf("only %d of %d active views are full: %v", full, len(c.nodes), c.degrees())
	}
	if avg := float64(passive) / float64(len(c.nodes)); avg < float64(cfg.PassiveSize)/2 {
		t.Errorf("passive views hold %.1f peers on average, want at least %d", avg, cfg.PassiveSize/2)
	}
	var s Stats
	for _, n := range c.nodes {
		st := n.m.Stats()
		s.Shuffles += st.Shuffles
		s.ShuffleReplies += st.ShuffleReplies
	}
	if s.Shuffles == 0 || s.ShuffleReplies < s.Shuffles/2 {
		t.Errorf("%d shuffles, %d replies integrated", s.Shuffles, s.ShuffleReplies)
	}
}

// TestClusterFailureRepair crashes a fifth of the nodes at once; the
// survivors replace them from their passive views.
func TestClusterFailureRepair(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed_%d", seed), func(t *testing.T) {
			cfg := DefaultConfig()
			c := newCluster(t, 80, cfg, seed)
			grow(c, seed)
			c.run(2 * time.Minute)
			c.check()
			r := rand.New(rand.NewPCG(seed, 99))
			victims := r.Perm(len(c.nodes))[:len(c.nodes)/5]
			slices.Sort(victims)
			for _, v := range victims {
				c.kill(v)
			}
			c.quiet() // the failure detector fires; repair runs
			var failures, ups uint64
			for _, n := range c.nodes {
				if n.alive {
					failures += n.m.Stats().Failures
					ups += n.m.Stats().NeighborUps
				}
			}
			if failures == 0 {
				t.Fatal("no survivor saw a failure")
			}
			c.run(time.Minute)
			c.check()
			t.Logf("%d failures seen; degrees after repair %v", failures, c.degrees())
		})
	}
}

// TestClusterLoss loses messages while nodes join, shuffle and crash;
// once the loss stops, timeouts and link closes restore symmetric views,
// every request ends, and the overlay is whole.
func TestClusterLoss(t *testing.T) {
	tests := []struct {
		loss float64
		seed uint64
	}{{0.05, 1}, {0.1, 5}, {0.1, 18}, {0.2, 2}, {0.2, 7}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("loss_%.0f%%_seed_%d", tt.loss*100, tt.seed), func(t *testing.T) {
			c := newCluster(t, 60, DefaultConfig(), tt.seed)
			c.loss = tt.loss
			grow(c, tt.seed)
			c.run(2 * time.Minute)
			c.kill(int(tt.seed % 60))
			c.kill(int(tt.seed * 7 % 60))
			c.run(time.Minute)
			c.loss = 0
			c.run(3 * time.Minute)
			c.check()
			var timeouts, retries uint64
			for _, n := range c.nodes {
				timeouts += n.m.Stats().NeighborTimeouts
				retries += n.m.Stats().JoinRetries
			}
			t.Logf("degrees %v; %d neighbour timeouts, %d join retries, unlinked sends %v", c.degrees(), timeouts, retries, c.unlinked)
		})
	}
}

// TestDeterminism: the same seed gives the same trace of every output,
// a different seed another.
func TestDeterminism(t *testing.T) {
	trace := func(seed uint64) []string {
		c := newCluster(t, 50, DefaultConfig(), seed)
		c.tracing = true
		c.loss = 0.05
		grow(c, seed)
		c.run(time.Minute)
		c.kill(7)
		c.kill(21)
		c.run(time.Minute)
		return c.trace
	}
	a, b, other := trace(42), trace(42), trace(43)
	if len(a) < 1000 {
		t.Fatalf("trace has only %d lines", len(a))
	}
	if i := firstDiff(a, b); i >= 0 {
		t.Fatalf("same seed, traces differ at line %d of %d/%d:\n%s\n%s", i, len(a), len(b), at(a, i), at(b, i))
	}
	if firstDiff(a, other) < 0 {
		t.Fatal("different seeds gave the same trace")
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<end>"
}
