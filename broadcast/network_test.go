package broadcast

import (
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// testNet is a small deterministic message pump: Machines on a fixed
// random graph, messages delayed by a per-link latency, timers fired in
// virtual time from one priority queue. It is the simulator in miniature.
type testNet struct {
	t     testing.TB
	rng   *rand.Rand
	now   time.Time
	nodes []*Machine
	index map[identity.NodeID]int
	// links holds each up link's latency, keyed by (low, high) index.
	links map[[2]int]time.Duration
	q     eventQueue
	seq   uint64
	trace hash.Hash

	// Per message: deliveries per node, hops per delivery, payload sends.
	delivered map[MessageID]map[int]int
	hops      map[MessageID][]int
	sent      map[MessageID]int
}

type event struct {
	at    time.Time
	seq   uint64 // FIFO among events at the same time
	node  int
	from  int // sender of a message; -1 for a timer
	msg   []byte
	timer Timer
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func netNodeID(i int) identity.NodeID {
	// Hashed, so ID order is unrelated to index order.
	return identity.NodeID(sha256.Sum256(binary.BigEndian.AppendUint32([]byte("node"), uint32(i))))
}

// newTestNet builds n nodes on a connected random graph of at most degree
// neighbours each; links are symmetric, with a latency of 5..49 ms each.
func newTestNet(t testing.TB, seed uint64, n, degree int, cfg Config) *testNet {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tn := &testNet{
		t: t, rng: rng, now: testNow,
		index:     make(map[identity.NodeID]int),
		links:     make(map[[2]int]time.Duration),
		trace:     sha256.New(),
		delivered: make(map[MessageID]map[int]int),
		hops:      make(map[MessageID][]int),
		sent:      make(map[MessageID]int),
	}
	for i := range n {
		m, err := New(netNodeID(i), cfg, rand.New(rand.NewPCG(seed, uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		tn.nodes = append(tn.nodes, m)
		tn.index[m.Self()] = i
	}
	// Like HyParView's active view: random links while both ends have
	// room, so most nodes end with exactly degree neighbours.
	deg := make([]int, n)
	for tries := 0; tries < 100*n; tries++ {
		i, j := rng.IntN(n), rng.IntN(n)
		if i == j || deg[i] >= degree || deg[j] >= degree || tn.linked(i, j) {
			continue
		}
		tn.connect(i, j, time.Duration(5+rng.IntN(45))*time.Millisecond)
		deg[i]++
		deg[j]++
	}
	if !tn.connected() {
		t.Fatalf("seed %d: graph is not connected", seed)
	}
	return tn
}

func key(i, j int) [2]int {
	if i > j {
		i, j = j, i
	}
	return [2]int{i, j}
}

func (tn *testNet) linked(i, j int) bool { _, ok := tn.links[key(i, j)]; return ok }

func (tn *testNet) connect(i, j int, lat time.Duration) {
	tn.links[key(i, j)] = lat
	tn.apply(i, tn.nodes[i].HandleNeighborUp(tn.now, tn.nodes[j].Self()))
	tn.apply(j, tn.nodes[j].HandleNeighborUp(tn.now, tn.nodes[i].Self()))
}

// cut takes a link down on both ends; messages in flight on it are lost.
func (tn *testNet) cut(i, j int) {
	delete(tn.links, key(i, j))
	tn.apply(i, tn.nodes[i].HandleNeighborDown(tn.now, tn.nodes[j].Self()))
	tn.apply(j, tn.nodes[j].HandleNeighborDown(tn.now, tn.nodes[i].Self()))
}

func (tn *testNet) connected() bool {
	seen := map[int]bool{0: true}
	stack := []int{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for j := range tn.nodes {
			if !seen[j] && tn.linked(i, j) {
				seen[j] = true
				stack = append(stack, j)
			}
		}
	}
	return len(seen) == len(tn.nodes)
}

func (tn *testNet) push(e *event) {
	tn.seq++
	e.seq = tn.seq
	heap.Push(&tn.q, e)
}

// apply carries out node i's outputs and writes them to the trace.
func (tn *testNet) apply(i int, out []Output) {
	for _, o := range out {
		switch o := o.(type) {
		case Send:
			fmt.Fprintf(tn.trace, "%d %d send %d %x\n", tn.now.UnixNano(), i, tn.index[o.To], o.Msg)
			msg, err := ParseMessage(o.Msg)
			if err != nil {
				tn.t.Fatalf("node %d sent an unparsable message: %v", i, err)
			}
			if g, ok := msg.(Gossip); ok {
				tn.sent[g.ID()]++
			}
			j, ok := tn.index[o.To]
			lat, up := tn.links[key(i, j)]
			if !ok || !up {
				continue // no link: the send is lost
			}
			tn.push(&event{at: tn.now.Add(lat), node: j, from: i, msg: o.Msg})
		case SetTimer:
			fmt.Fprintf(tn.trace, "%d %d timer %d %s\n", tn.now.UnixNano(), i, o.At.UnixNano(), o.Timer)
			if o.At.Before(tn.now) {
				tn.t.Fatalf("node %d asked for a timer in the past", i)
			}
			tn.push(&event{at: o.At, node: i, from: -1, timer: o.Timer})
		case Deliver:
			fmt.Fprintf(tn.trace, "%d %d deliver %s %d\n", tn.now.UnixNano(), i, o.ID, o.Hops)
			if tn.delivered[o.ID] == nil {
				tn.delivered[o.ID] = make(map[int]int)
			}
			tn.delivered[o.ID][i]++
			tn.hops[o.ID] = append(tn.hops[o.ID], o.Hops)
		}
	}
}

// run processes events up to now+d.
func (tn *testNet) run(d time.Duration) {
	end := tn.now.Add(d)
	for tn.q.Len() > 0 && !tn.q[0].at.After(end) {
		e := heap.Pop(&tn.q).(*event)
		tn.now = e.at
		m := tn.nodes[e.node]
		if e.from < 0 {
			tn.apply(e.node, m.HandleTimer(tn.now, e.timer))
			continue
		}
		if !tn.linked(e.from, e.node) {
			continue // the link went down while the message was in flight
		}
		tn.apply(e.node, m.HandleMessage(tn.now, tn.nodes[e.from].Self(), e.msg))
	}
	tn.now = end
}

func (tn *testNet) broadcast(origin int, payload string) MessageID {
	tn.t.Helper()
	id, out, err := tn.nodes[origin].Broadcast(tn.now, "test", []byte(payload))
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.apply(origin, out)
	return id
}

// checkDelivered fails unless every node delivered id exactly once.
func (tn *testNet) checkDelivered(id MessageID) {
	tn.t.Helper()
	d := tn.delivered[id]
	for i := range tn.nodes {
		if d[i] != 1 {
			tn.t.Fatalf("message %s: node %d delivered it %d times, want once (%d of %d nodes have it)", id.Short(), i, d[i], len(d), len(tn.nodes))
		}
	}
}

// rmr is the paper's relative message redundancy of one message:
// m/(n-1) - 1, m the payload sends, n the nodes that delivered it.
func (tn *testNet) rmr(id MessageID) float64 {
	n := len(tn.delivered[id])
	return float64(tn.sent[id])/float64(n-1) - 1
}

// ldh is the paper's last delivery hop: the largest hop count of any
// delivery of the message.
func (tn *testNet) ldh(id MessageID) int { return slices.Max(tn.hops[id]) }

func (tn *testNet) stats() Stats {
	var sum Stats
	for _, m := range tn.nodes {
		s := m.Stats()
		sum.Duplicates += s.Duplicates
		sum.Delivered += s.Delivered
		sum.GossipOut += s.GossipOut
		sum.PruneOut += s.PruneOut
		sum.GraftOut += s.GraftOut
		sum.GraftsForMissing += s.GraftsForMissing
		sum.Optimizations += s.Optimizations
		sum.MissingGaveUp += s.MissingGaveUp
		sum.Drops.Malformed += s.Drops.Malformed
		sum.Drops.NotNeighbor += s.Drops.NotNeighbor
	}
	return sum
}

// eagerEdges lists the links that are eager on both ends.
func (tn *testNet) eagerEdges() [][2]int {
	var out [][2]int
	for k := range tn.links {
		a, b := tn.nodes[k[0]], tn.nodes[k[1]]
		if slices.Contains(a.Eager(), b.Self()) && slices.Contains(b.Eager(), a.Self()) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(x, y [2]int) int {
		if x[0] != y[0] {
			return x[0] - y[0]
		}
		return x[1] - y[1]
	})
	return out
}

const (
	netNodes  = 50
	netDegree = 5
	settle    = 10 * time.Second
)

var netSeeds = []uint64{1, 2, 3}

func TestNetworkDeliversEveryMessageOnce(t *testing.T) {
	for _, seed := range netSeeds {
		t.Run(fmt.Sprintf("seed_%d", seed), func(t *testing.T) {
			tn := newTestNet(t, seed, netNodes, netDegree, DefaultConfig())
			var ids []MessageID
			// Bursts from random origins, overlapping in flight.
			for i := range 30 {
				ids = append(ids, tn.broadcast(tn.rng.IntN(netNodes), fmt.Sprint("m", i)))
				tn.run(time.Duration(tn.rng.IntN(150)) * time.Millisecond)
			}
			tn.run(settle)
			for _, id := range ids {
				tn.checkDelivered(id)
			}
			s := tn.stats()
			if s.Delivered != uint64(len(ids)*netNodes) {
				t.Fatalf("Delivered = %d, want %d", s.Delivered, len(ids)*netNodes)
			}
			if s.Duplicates == 0 || s.PruneOut == 0 {
				t.Fatalf("the first flood saw %d duplicates and sent %d prunes; want some of each", s.Duplicates, s.PruneOut)
			}
			if s.MissingGaveUp != 0 || s.Drops.Malformed != 0 {
				t.Fatalf("gave up on %d messages, %d malformed", s.MissingGaveUp, s.Drops.Malformed)
			}
		})
	}
}

func TestNetworkTreeSettles(t *testing.T) {
	const warmup, measured = 5, 20
	lowThreshold := DefaultConfig()
	lowThreshold.OptimizationThreshold = 2
	noOpt := DefaultConfig()
	noOpt.OptimizationThreshold = 0
	configs := []struct {
		name string
		cfg  Config
	}{
		{"defaults", DefaultConfig()},
		// At 50 nodes the tree is too shallow for a threshold of 7 to
		// act; 2 makes the optimisation work hard.
		{"optimization_threshold_2", lowThreshold},
		{"optimization_off", noOpt},
	}
	for _, c := range configs {
		for _, seed := range netSeeds {
			t.Run(fmt.Sprintf("%s/seed_%d", c.name, seed), func(t *testing.T) {
				tn := newTestNet(t, seed, netNodes, netDegree, c.cfg)
				origin := tn.rng.IntN(netNodes)
				var first float64
				for i := range warmup {
					id := tn.broadcast(origin, fmt.Sprint("warm", i))
					tn.run(settle)
					tn.checkDelivered(id)
					if i == 0 {
						first = tn.rmr(id)
					}
				}
				if edges := len(tn.eagerEdges()); edges != netNodes-1 {
					t.Errorf("%d links are eager on both ends, want a spanning tree of %d", edges, netNodes-1)
				}
				var sumRMR, maxRMR float64
				var sumLDH, maxLDH int
				for i := range measured {
					id := tn.broadcast(origin, fmt.Sprint("m", i))
					tn.run(settle)
					tn.checkDelivered(id)
					r, l := tn.rmr(id), tn.ldh(id)
					sumRMR += r
					maxRMR = max(maxRMR, r)
					sumLDH += l
					maxLDH = max(maxLDH, l)
				}
				t.Logf("mean degree %.1f; first broadcast RMR %.2f; settled: mean RMR %.3f, max %.3f; mean LDH %.1f, max %d; optimisations %d",
					2*float64(len(tn.links))/netNodes, first, sumRMR/measured, maxRMR, float64(sumLDH)/measured, maxLDH, tn.stats().Optimizations)
				if first < 1 {
					t.Errorf("first broadcast RMR %.2f: the initial flood should be redundant", first)
				}
				if maxRMR >= 0.2 {
					t.Fatalf("settled RMR reached %.3f, want < 0.2", maxRMR)
				}
				if c.cfg.OptimizationThreshold == 2 && tn.stats().Optimizations == 0 {
					t.Error("threshold 2 and no optimisation ran")
				}
				if c.cfg.OptimizationThreshold == 0 && tn.stats().Optimizations != 0 {
					t.Error("optimisation ran while turned off")
				}

				// The tree is shared: other origins use it too.
				var other float64
				for i := range 10 {
					id := tn.broadcast(tn.rng.IntN(netNodes), fmt.Sprint("o", i))
					tn.run(settle)
					tn.checkDelivered(id)
					other = max(other, tn.rmr(id))
				}
				t.Logf("other origins on the settled tree: max RMR %.3f", other)
				if other >= 0.2 {
					t.Fatalf("other origins' RMR reached %.3f, want < 0.2", other)
				}
			})
		}
	}
}

func TestNetworkRepairsCutLinks(t *testing.T) {
	for _, seed := range netSeeds {
		t.Run(fmt.Sprintf("seed_%d", seed), func(t *testing.T) {
			tn := newTestNet(t, seed, netNodes, netDegree, DefaultConfig())
			origin := tn.rng.IntN(netNodes)
			for i := range 3 {
				tn.broadcast(origin, fmt.Sprint("warm", i))
				tn.run(settle)
			}
			// Cut tree links, keeping the graph connected, then
			// broadcast: lazy links must take over by IHAVE/GRAFT.
			before := tn.stats().GraftsForMissing
			cut := 0
			for _, e := range tn.eagerEdges() {
				if cut == 5 {
					break
				}
				lat := tn.links[e]
				delete(tn.links, e)
				ok := tn.connected()
				tn.links[e] = lat
				if !ok {
					continue
				}
				tn.cut(e[0], e[1])
				cut++
			}
			if cut == 0 {
				t.Fatal("no tree link could be cut")
			}
			for i := range 5 {
				id := tn.broadcast(origin, fmt.Sprint("after", i))
				tn.run(settle)
				tn.checkDelivered(id)
			}
			grafts := tn.stats().GraftsForMissing - before
			if grafts == 0 {
				t.Fatalf("cut %d tree links and no GRAFT repaired them", cut)
			}
			// Repaired, the tree settles again.
			id := tn.broadcast(origin, "settled")
			tn.run(settle)
			tn.checkDelivered(id)
			t.Logf("cut %d tree links: %d GRAFTs; RMR after repair %.3f", cut, grafts, tn.rmr(id))
			if r := tn.rmr(id); r >= 0.2 {
				t.Fatalf("RMR after repair %.3f, want < 0.2", r)
			}
		})
	}
}

func TestNetworkCutMidFlight(t *testing.T) {
	// Links go down while a message is in flight: every node still gets it.
	tn := newTestNet(t, 7, netNodes, netDegree, DefaultConfig())
	origin := 0
	tn.broadcast(origin, "warm")
	tn.run(settle)
	id := tn.broadcast(origin, "in flight")
	tn.run(20 * time.Millisecond)
	for _, e := range tn.eagerEdges() {
		lat := tn.links[e]
		delete(tn.links, e)
		ok := tn.connected()
		tn.links[e] = lat
		if ok {
			tn.cut(e[0], e[1])
		}
	}
	tn.run(settle)
	tn.checkDelivered(id)
}

func TestNetworkDeterministic(t *testing.T) {
	run := func(seed uint64) []byte {
		tn := newTestNet(t, seed, netNodes, netDegree, DefaultConfig())
		for i := range 10 {
			tn.broadcast(tn.rng.IntN(netNodes), fmt.Sprint("m", i))
			tn.run(time.Duration(tn.rng.IntN(300)) * time.Millisecond)
		}
		edges := tn.eagerEdges()
		tn.cut(edges[0][0], edges[0][1])
		tn.broadcast(edges[0][0], "after cut")
		tn.run(settle)
		return tn.trace.Sum(nil)
	}
	a, b := run(11), run(11)
	if string(a) != string(b) {
		t.Fatalf("same seed, different traces: %x vs %x", a, b)
	}
	if c := run(12); string(a) == string(c) {
		t.Fatal("different seeds gave the same trace: the trace records nothing")
	}
}

func TestNetworkMalformedCounted(t *testing.T) {
	tn := newTestNet(t, 5, 10, 3, DefaultConfig())
	var from, to int
	for k := range tn.links {
		from, to = k[0], k[1]
		break
	}
	junk := [][]byte{nil, {0}, {byte(TypeGossip), 1}, {byte(TypeIHave), 0, 0}, {byte(TypeGraft), 7}, {byte(TypePrune), 1}}
	for _, b := range junk {
		tn.push(&event{at: tn.now, node: to, from: from, msg: b})
	}
	tn.run(time.Second)
	if got := tn.nodes[to].Stats().Drops.Malformed; got != uint64(len(junk)) {
		t.Fatalf("Malformed = %d, want %d", got, len(junk))
	}
	id := tn.broadcast(from, "still works")
	tn.run(settle)
	tn.checkDelivered(id)
}
