package overlay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/membership"
)

func run(t *testing.T, sc Scenario) *Result {
	t.Helper()
	r, err := Run(context.Background(), sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func small(nodes int) Scenario {
	sc := DefaultScenario()
	sc.Nodes = nodes
	sc.Join = Duration(10 * time.Second)
	sc.Settle = Duration(20 * time.Second)
	sc.Drain = Duration(20 * time.Second)
	return sc
}

func TestNoFailure(t *testing.T) {
	sc := small(300)
	r := run(t, sc)
	if !r.Connected || r.Live != 300 {
		t.Errorf("connected %v with %d live, want one component of 300", r.Connected, r.Live)
	}
	if !r.Invariants.OK {
		t.Errorf("invariants: %+v", r.Invariants)
	}
	for _, b := range r.PerBcast {
		if b.Reliability != 1 || b.Delivered != 300 {
			t.Errorf("broadcast %d reached %d (reliability %v), want all 300", b.K, b.Delivered, b.Reliability)
		}
	}
	// The first broadcast floods every link; once the tree has settled a
	// single sender's messages go (almost) only along it.
	if first := r.PerBcast[0]; first.RMR < 1 {
		t.Errorf("first broadcast RMR %.3f: expected the flood of a fresh overlay", first.RMR)
	}
	if r.RMR >= 0.2 {
		t.Errorf("measured RMR %.3f, want < 0.2 once the tree settles", r.RMR)
	}
	if r.LDH < 2 || r.LDH > 40 {
		t.Errorf("LDH %d", r.LDH)
	}
	if r.HealSeconds != nil || r.Failed != 0 {
		t.Errorf("no failure, yet failed %d heal %v", r.Failed, r.HealSeconds)
	}
}

func TestFailureHeals(t *testing.T) {
	sc := small(400)
	sc.Fail = 0.5
	sc.Broadcasts = 20
	r := run(t, sc)
	if r.Failed != 200 || r.Live != 200 {
		t.Fatalf("failed %d, live %d; want 200, 200", r.Failed, r.Live)
	}
	if !r.Connected || !r.Invariants.OK {
		t.Errorf("after the failure: connected %v, invariants %+v", r.Connected, r.Invariants)
	}
	if r.ReliabilityLater < 0.95 || r.HealSeconds == nil {
		t.Errorf("reliability first %.3f later %.3f, heal %v: the overlay should recover", r.ReliabilityFirst, r.ReliabilityLater, r.HealSeconds)
	}
	if r.PerBcast[len(r.PerBcast)-1].Reliability != 1 {
		t.Errorf("last broadcast reliability %v, want 1", r.PerBcast[len(r.PerBcast)-1].Reliability)
	}
}

// TestFastJoinsLeaveNoIsland: 3,000 nodes joining 3 ms apart. With
// seed 4 the paper's protocol alone (StarveTicks 0) leaves an island of
// 16 nodes whose active views are full of each other and whose passive
// views know nobody outside; the contact request of a node whose passive
// view cannot fill (membership.Config.StarveTicks) joins it back.
func TestFastJoinsLeaveNoIsland(t *testing.T) {
	sc := DefaultScenario()
	sc.Nodes, sc.Seed, sc.Join, sc.Broadcasts = 3000, 4, Duration(9*time.Second), 1
	sc.Duration = Duration(3 * time.Minute)

	off := membership.DefaultConfig()
	off.StarveTicks = 0
	r, err := Run(context.Background(), sc, Options{Membership: &off})
	if err != nil {
		t.Fatal(err)
	}
	if r.Connected {
		t.Fatal("without escalation the overlay is connected: this seed no longer shows the island, pick another")
	}
	t.Logf("StarveTicks 0: %d components, islands %v", r.Overlay.Components, r.Overlay.Islands)

	r = run(t, sc)
	if !r.Connected || !r.Invariants.OK {
		t.Fatalf("default config: connected %v (islands %v), invariants %+v", r.Connected, r.Overlay.Islands, r.Invariants)
	}
}

// TestSameSeedSameTrace runs a scenario with every disturbance twice with
// one seed and once with another.
func TestSameSeedSameTrace(t *testing.T) {
	sc := small(150)
	sc.Fail = 0.3
	sc.Loss = 0.01
	sc.Churn = 0.05
	sc.Partition = 0.2
	sc.PartitionAt = Duration(35 * time.Second)
	sc.HealAt = Duration(45 * time.Second)
	sc.Sender = "random"
	a, b := run(t, sc), run(t, sc)
	if a.TraceSHA256 != b.TraceSHA256 {
		t.Fatalf("same seed, traces %s and %s", a.TraceSHA256, b.TraceSHA256)
	}
	strip := func(r *Result) Result { c := *r; c.WallSeconds, c.HeapBytesPerNode = 0, 0; return c }
	if !reflect.DeepEqual(strip(a), strip(b)) {
		t.Fatal("same seed, different results")
	}
	// And byte for byte, in the text trace of a shorter run.
	short := small(60)
	short.Fail = 0.3
	short.Loss = 0.01
	var t1, t2 bytes.Buffer
	for _, w := range []*bytes.Buffer{&t1, &t2} {
		if _, err := Run(context.Background(), short, Options{Trace: w}); err != nil {
			t.Fatal(err)
		}
	}
	if t1.Len() == 0 || !bytes.Equal(t1.Bytes(), t2.Bytes()) {
		t.Fatalf("same seed, text traces of %d and %d bytes differ", t1.Len(), t2.Len())
	}
	sc.Seed++
	if c := run(t, sc); c.TraceSHA256 == a.TraceSHA256 {
		t.Fatal("different seeds, same trace")
	}
	if a.Engine.Lost == 0 || a.Engine.Dropped == 0 || a.Engine.LinkBreaks == 0 {
		t.Fatalf("the scenario did not disturb much: %+v", a.Engine)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	sc := small(200)
	sc.Partition = 0.3
	sc.PartitionAt = Duration(12 * time.Second)
	sc.HealAt = Duration(25 * time.Second)
	s, err := New(sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var during Overlay
	s.Engine().At(24*time.Second, func() { during = s.components() })
	r, err := s.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if during.Components < 2 {
		t.Errorf("during the partition: %d component(s), want the two sides apart", during.Components)
	}
	// HyParView has no explicit merge: the sides find each other again
	// through passive views, when shuffles and repairs pick a peer across.
	if !r.Connected || !r.Invariants.OK || r.Reliability != 1 {
		t.Errorf("after heal: %d component(s), reliability %.3f, invariants %+v", r.Components, r.Reliability, r.Invariants)
	}
}

func TestScenarioKeysAreFlags(t *testing.T) {
	sc := DefaultScenario()
	js, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	json.Unmarshal(js, &keys)
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	sc.RegisterFlags(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		k := strings.ReplaceAll(f.Name, "-", "_")
		if _, ok := keys[k]; !ok {
			t.Errorf("flag %s has no JSON key %s", f.Name, k)
		}
	})
	if n != len(keys) {
		t.Errorf("%d flags, %d JSON keys", n, len(keys))
	}
	// Every flag round-trips through its text form.
	fs.VisitAll(func(f *flag.Flag) {
		if err := sc.SetFlag(f.Name, f.Value.String()); err != nil {
			t.Errorf("SetFlag(%s, %q): %v", f.Name, f.Value.String(), err)
		}
	})
	if !reflect.DeepEqual(sc, DefaultScenario()) {
		t.Error("flags did not round-trip")
	}
}

func TestLoadScenario(t *testing.T) {
	sc, err := LoadScenario(strings.NewReader(`{"nodes": 50, "seed": 9, "fail": 0.3, "interval": "500ms", "latency_spread": "1ms"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultScenario()
	want.Nodes, want.Seed, want.Fail, want.Interval, want.LatencySpread = 50, 9, 0.3, Duration(500*time.Millisecond), Duration(time.Millisecond)
	if sc != want {
		t.Fatalf("got %+v\nwant %+v", sc, want)
	}
	for name, in := range map[string]string{
		"unknown_key":   `{"nodes": 50, "node": 3}`,
		"trailing_data": `{"nodes": 50} {}`,
		"bad_duration":  `{"interval": "soon"}`,
		"out_of_range":  `{"fail": 1}`,
		"registry_over": `{"nodes": 10, "registry_updates": 11}`,
		"registry_gap":  `{"registry_updates": 2, "registry_interval": "0s"}`,
		"not_json":      `nodes=5`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := LoadScenario(strings.NewReader(in)); !errors.Is(err, ErrScenario) {
				t.Fatalf("got %v, want ErrScenario", err)
			}
		})
	}
}

func TestReport(t *testing.T) {
	sc := small(100)
	sc.Fail = 0.2
	r := run(t, sc)
	dir := filepath.Join(t.TempDir(), "rep")
	if err := WriteReport(dir, r); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, "sim.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"nodes", "seed", "connected", "reliability", "rmr", "ldh", "wall_seconds", "sim_seconds", "heal_seconds"} {
		if _, ok := back[k]; !ok {
			t.Errorf("sim.json has no %q", k)
		}
	}
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(page), "<svg"); n != 3 {
		t.Errorf("index.html has %d plots, want 3", n)
	}
	if strings.Contains(string(page), "<script") {
		t.Error("index.html has a script")
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, small(50), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestScenarioFiles checks that the example scenarios load. Run one with
// `mycelium sim simulations/overlay/testdata/NAME.json`.
func TestScenarioFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no scenario files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := LoadScenario(strings.NewReader(string(b))); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
