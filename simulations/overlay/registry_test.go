package overlay

import (
	"context"
	"os"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/registry"
)

// TestRegistryUpdatesReachAll: 300 nodes run the registry; five of them
// publish their record after the broadcasts, and every other node takes
// each record.
func TestRegistryUpdatesReachAll(t *testing.T) {
	sc := small(300)
	sc.RegistryUpdates = 5
	s, err := New(sc, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Connected || !r.Invariants.OK || r.Reliability != 1 {
		t.Fatalf("connected %v, invariants %+v, reliability %v", r.Connected, r.Invariants, r.Reliability)
	}
	g := r.Registry
	if g == nil {
		t.Fatal("no registry result")
	}
	if g.Updates != 5 || g.Publications != 5 || len(g.PerUpdate) != 5 || g.ReachedAll != 5 {
		t.Fatalf("updates %d, publications %d, reaching all %d; want 5 each", g.Updates, g.Publications, g.ReachedAll)
	}
	nodes := map[int]bool{}
	for _, u := range g.PerUpdate {
		nodes[u.Node] = true
		if u.Live != 299 || u.Reached != 299 || u.Reach99 == nil || u.Reach100 == nil {
			t.Fatalf("update %d: reached %d of %d (99%% %v, 100%% %v), want all 299", u.K, u.Reached, u.Live, u.Reach99, u.Reach100)
		}
		if *u.Reach99 <= 0 || *u.Reach99 > *u.Reach100 || *u.Reach100 > 10 {
			t.Errorf("update %d: 99%% after %v s, 100%% after %v s", u.K, *u.Reach99, *u.Reach100)
		}
		if u.Bytes < 200 || u.Bytes > 400 {
			t.Errorf("update %d: record of %d bytes, want a realistic 200..400", u.K, u.Bytes)
		}
	}
	if len(nodes) != 5 {
		t.Errorf("publishers %v, want 5 different nodes", nodes)
	}
	if *g.Reach99Mean > *g.Reach100Mean || *g.Reach99Max > *g.Reach100Max || g.DeliveredFraction != 1 || g.DeliveredFractionMin != 1 {
		t.Errorf("99%% %v/%v s, 100%% %v/%v s, delivered %v (min %v)", *g.Reach99Mean, *g.Reach99Max, *g.Reach100Mean, *g.Reach100Max, g.DeliveredFraction, g.DeliveredFractionMin)
	}
	// Each record crosses each node about once: C is about the nodes
	// times a GOSSIP (header, topic, record), plus IHAVEs.
	gossip := float64(48 + len(registryTopic) + 370)
	if g.BytesPerUpdate < 0.9*299*gossip || g.BytesPerUpdate > 3*300*gossip || g.Bytes.IHave == 0 {
		t.Errorf("bytes per update %.0f (%+v), want about 299 GOSSIPs of %.0f bytes and some IHAVEs", g.BytesPerUpdate, g.Bytes, gossip)
	}
	if g.Bandwidth.M1 != g.BytesPerUpdate/60 || g.Bandwidth.M15 != g.BytesPerUpdate/900 {
		t.Errorf("bandwidth %+v for C %v", g.Bandwidth, g.BytesPerUpdate)
	}
	if g.DigestBytes != 67+300*40 || g.AntiEntropyDigest != g.NeighborUpsPerNodePerSecond*float64(g.DigestBytes) ||
		g.AntiEntropy != g.AntiEntropyDigest+g.AntiEntropyRecords || g.Total.M5 != g.Bandwidth.M5+g.AntiEntropy {
		t.Errorf("digest %d bytes, anti-entropy %v = %v + %v, total %+v", g.DigestBytes, g.AntiEntropy, g.AntiEntropyDigest, g.AntiEntropyRecords, g.Total)
	}
	if g.Memory.Records != 300 || g.Memory.HeapBytesPerRecord < g.Memory.RecordBytes || g.Memory.HeapBytesPerRecord > 8<<10 {
		t.Errorf("memory %+v", g.Memory)
	}
	// Every live machine holds the five records, the publishers' own
	// included, and no other.
	for i := range sc.Nodes {
		reg := s.Node(i).Registry()
		if st := reg.Stats(); reg.Len() != 5 || st.Forged+st.Malformed+st.Expired+st.FarFuture+st.Stale+st.BadMessages != 0 {
			t.Fatalf("node %d holds %d records, stats %+v", i, reg.Len(), st)
		}
	}
}

// TestRegistrySameSeedSameTrace: with the registry, churn and loss, one
// seed gives one trace and one result.
func TestRegistrySameSeedSameTrace(t *testing.T) {
	sc := small(120)
	sc.RegistryUpdates = 4
	sc.RegistryInterval = Duration(2 * time.Second)
	sc.Churn = 0.05
	sc.Loss = 0.01
	sc.Broadcasts = 3
	a, b := run(t, sc), run(t, sc)
	if a.TraceSHA256 != b.TraceSHA256 {
		t.Fatalf("same seed, traces %s and %s", a.TraceSHA256, b.TraceSHA256)
	}
	strip := func(r *Result) Result {
		c := *r
		c.WallSeconds, c.HeapBytesPerNode = 0, 0
		reg := *c.Registry
		reg.Memory.HeapBytes, reg.Memory.HeapBytesPerRecord = 0, 0
		c.Registry = &reg
		return c
	}
	if !reflect.DeepEqual(strip(a), strip(b)) {
		t.Fatal("same seed, different results")
	}
	if a.Registry.Publications < 4 || a.Registry.Bytes.Digest == 0 || a.Registry.Bytes.Records == 0 || a.Registry.NeighborUpsPerNodePerSecond == 0 {
		t.Fatalf("the churn ran no anti-entropy: %+v", a.Registry)
	}
	sc.RegistryUpdates = 0
	if c := run(t, sc); c.TraceSHA256 == a.TraceSHA256 || c.Registry != nil {
		t.Fatal("the registry changed nothing in the trace")
	}
}

// TestRegistryMemory fills one real registry.Machine with 10,000 valid
// signed records (1,000 under the race detector, which makes Ed25519 ten
// times slower) and measures the live heap it takes: the memory a node
// spends on the registry of a 10,000-node overlay.
func TestRegistryMemory(t *testing.T) {
	n := 10000
	if raceEnabled {
		n = 1000
	}
	m, err := MeasureRegistryMemory(n, 1, registry.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records of %.0f bytes: %.1f MiB live heap, %.0f bytes per record", m.Records, m.RecordBytes, m.HeapBytes/(1<<20), m.HeapBytesPerRecord)
	if m.Records != n || m.HeapBytesPerRecord < m.RecordBytes || m.HeapBytesPerRecord > 8<<10 {
		t.Fatalf("%+v: want at least the encoded record and at most 8 KiB per record", m)
	}
}

func TestDigestBytes(t *testing.T) {
	for _, c := range []struct{ n, chunk, want int }{
		{0, 512, 67},
		{1, 512, 67 + 40},
		{512, 512, 67 + 512*40},
		{513, 512, 2*67 + 513*40},
		{10000, 512, 20*67 + 10000*40},
	} {
		if got, err := digestBytes(c.n, c.chunk); err != nil || got != c.want {
			t.Errorf("digestBytes(%d, %d) = %d, %v; want %d", c.n, c.chunk, got, err, c.want)
		}
	}
}

// TestRegistryTopicIsTheNodes holds the simulator's registry topic to
// the node's: its length is in every GOSSIP the simulator counts.
func TestRegistryTopicIsTheNodes(t *testing.T) {
	src, err := os.ReadFile("../../registry.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`registryTopic\s*=\s*"([^"]*)"`).FindSubmatch(src)
	if m == nil || string(m[1]) != registryTopic {
		t.Fatalf("node's registry topic %q, simulator's %q", m, registryTopic)
	}
}
