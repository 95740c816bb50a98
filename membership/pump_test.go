package membership

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// A tiny deterministic message pump: the driver contract of the package
// doc, with instant delivery. Sends go into one FIFO queue; Connect
// succeeds at once if the peer is alive and fails otherwise; Disconnect
// closes the link and tells the other end (after what was sent before
// it); SetTimer goes into a heap that the clock walks through once the
// queue is empty.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type pumpKind int

const (
	evDeliver pumpKind = iota
	evConnected
	evConnectFailed
	evDisconnected
)

type pumpEvent struct {
	kind pumpKind
	node int // who handles it
	peer int // the other end
	msg  []byte
}

type pumpTimer struct {
	at    time.Time
	seq   uint64
	node  int
	timer Timer
}

type timerHeap []pumpTimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(pumpTimer)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type pumpNode struct {
	m     *Machine
	alive bool
}

type cluster struct {
	t       testing.TB
	cfg     Config
	now     time.Time
	nodes   []*pumpNode
	byID    map[identity.NodeID]int
	queue   []pumpEvent
	timers  timerHeap
	tseq    uint64
	links   map[[2]int]bool
	loss    float64    // chance a Send is lost
	lossR   *rand.Rand // the pump's own randomness (loss)
	trace   []string   // every output, when tracing
	tracing bool
	// unlinked counts Sends, by type, with no link between the two ends:
	// the driver contract allows them (a short-lived connection), and the
	// machine makes them only in races: two neighbours dropping each
	// other at once (each DISCONNECT crosses the other's close), or a
	// one-shot SHUFFLE_REPLY closing the link another request was using.
	unlinked map[MsgType]int
	steps    int
}

func pair(a, b int) [2]int { return [2]int{min(a, b), max(a, b)} }

func newCluster(t testing.TB, n int, cfg Config, seed uint64) *cluster {
	c := &cluster{
		t: t, cfg: cfg, now: t0,
		byID:     make(map[identity.NodeID]int),
		links:    make(map[[2]int]bool),
		unlinked: make(map[MsgType]int),
		lossR:    rand.New(rand.NewPCG(seed, 0xfeed)),
	}
	for i := range n {
		m, err := New(testPeer(i+1), cfg, rand.New(rand.NewPCG(seed, uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, &pumpNode{m: m, alive: true})
		c.byID[m.self.ID] = i
	}
	return c
}

func (c *cluster) id(i int) identity.NodeID { return c.nodes[i].m.self.ID }

// perform carries out node i's outputs in order.
func (c *cluster) perform(i int, outs []Output) {
	for _, o := range outs {
		if c.tracing {
			c.trace = append(c.trace, fmt.Sprintf("%v n%d %s", c.now.Sub(t0), i+1, describe(o)))
		}
		switch o := o.(type) {
		case Send:
			j, ok := c.byID[o.To.ID]
			if !ok || !c.nodes[j].alive {
				continue
			}
			if !c.links[pair(i, j)] {
				m, _ := ParseMessage(o.Msg)
				c.unlinked[m.Type]++
			}
			if c.loss > 0 && c.lossR.Float64() < c.loss {
				continue
			}
			c.queue = append(c.queue, pumpEvent{kind: evDeliver, node: j, peer: i, msg: o.Msg})
		case Connect:
			j, ok := c.byID[o.Peer.ID]
			if ok && c.nodes[j].alive {
				c.links[pair(i, j)] = true
				c.queue = append(c.queue, pumpEvent{kind: evConnected, node: i, peer: j})
			} else {
				c.queue = append(c.queue, pumpEvent{kind: evConnectFailed, node: i, peer: j})
			}
		case Disconnect:
			j, ok := c.byID[o.Peer]
			if ok && c.links[pair(i, j)] {
				delete(c.links, pair(i, j))
				c.queue = append(c.queue, pumpEvent{kind: evDisconnected, node: j, peer: i})
			}
		case SetTimer:
			if o.At.Before(c.now) {
				c.t.Fatalf("n%d set a timer in the past: %v", i+1, o)
			}
			c.tseq++
			heap.Push(&c.timers, pumpTimer{at: o.At, seq: c.tseq, node: i, timer: o.Timer})
		case NeighborUp, NeighborDown:
		default:
			c.t.Fatalf("unknown output %T", o)
		}
	}
}

func (c *cluster) dispatch(ev pumpEvent) {
	n := c.nodes[ev.node]
	if !n.alive {
		return
	}
	c.steps++
	if c.steps > 5_000_000 {
		c.t.Fatal("pump: too many steps; a message storm?")
	}
	var outs []Output
	switch ev.kind {
	case evDeliver:
		outs = n.m.HandleMessage(c.now, c.id(ev.peer), ev.msg)
	case evConnected:
		outs = n.m.HandleConnected(c.now, c.id(ev.peer))
	case evConnectFailed:
		outs = n.m.HandleConnectFailed(c.now, c.id(ev.peer))
	case evDisconnected:
		outs = n.m.HandleDisconnected(c.now, c.id(ev.peer))
	}
	c.perform(ev.node, outs)
}

// quiet delivers everything in the queue, without moving the clock.
func (c *cluster) quiet() {
	for len(c.queue) > 0 {
		ev := c.queue[0]
		c.queue = c.queue[1:]
		c.dispatch(ev)
	}
}

// run moves the clock forward by d, firing timers in order.
func (c *cluster) run(d time.Duration) {
	end := c.now.Add(d)
	c.quiet()
	for len(c.timers) > 0 && !c.timers[0].at.After(end) {
		pt := heap.Pop(&c.timers).(pumpTimer)
		c.now = pt.at
		if c.nodes[pt.node].alive {
			c.steps++
			c.perform(pt.node, c.nodes[pt.node].m.HandleTimer(c.now, pt.timer))
		}
		c.quiet()
	}
	c.now = end
}

func (c *cluster) join(i, contact int) {
	c.perform(i, c.nodes[i].m.Join(c.now, c.nodes[contact].m.Self()))
	c.quiet()
}

// kill crashes node i: its links break and each peer learns.
func (c *cluster) kill(i int) {
	c.nodes[i].alive = false
	for _, l := range c.sortedLinks() {
		if l[0] != i && l[1] != i {
			continue
		}
		delete(c.links, l)
		other := l[0] + l[1] - i
		c.queue = append(c.queue, pumpEvent{kind: evDisconnected, node: other, peer: i})
	}
}

func (c *cluster) sortedLinks() [][2]int {
	var ls [][2]int
	for l := range c.links {
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	return ls
}

// check asserts the invariants of a quiet overlay: bounded views, no
// self, no duplicate, no peer in both views, symmetric active views over
// live nodes, exactly one link per active pair and no other link, and a
// connected active graph.
func (c *cluster) check() {
	c.t.Helper()
	alive := 0
	for i, n := range c.nodes {
		if !n.alive {
			continue
		}
		alive++
		act, pas := n.m.Active(), n.m.Passive()
		if len(act) > c.cfg.ActiveSize || len(pas) > c.cfg.PassiveSize {
			c.t.Errorf("n%d: views of %d and %d peers exceed %d and %d", i+1, len(act), len(pas), c.cfg.ActiveSize, c.cfg.PassiveSize)
		}
		if len(act) == 0 {
			c.t.Errorf("n%d has no neighbour", i+1)
		}
		seen := map[identity.NodeID]string{}
		for _, p := range act {
			seen[p.ID] = "active"
		}
		for _, p := range pas {
			if seen[p.ID] != "" {
				c.t.Errorf("n%d holds %s twice (passive and %s)", i+1, name(p.ID), seen[p.ID])
			}
			seen[p.ID] = "passive"
		}
		if seen[n.m.self.ID] != "" {
			c.t.Errorf("n%d holds itself", i+1)
		}
		if len(seen) != len(act)+len(pas) {
			c.t.Errorf("n%d: duplicate entries", i+1)
		}
		for _, p := range act {
			j := c.byID[p.ID]
			if !c.nodes[j].alive {
				c.t.Errorf("n%d keeps dead n%d active", i+1, j+1)
				continue
			}
			if !c.nodes[j].m.active.has(n.m.self.ID) {
				c.t.Errorf("asymmetric: n%d has n%d active, not the other way", i+1, j+1)
			}
			if !c.links[pair(i, j)] {
				c.t.Errorf("n%d and n%d are neighbours with no link", i+1, j+1)
			}
		}
		if len(n.m.pending) != 0 || len(n.m.links) != 0 {
			c.t.Errorf("n%d: %d requests and %d links outstanding in a quiet overlay", i+1, len(n.m.pending), len(n.m.links))
		}
	}
	for _, l := range c.sortedLinks() {
		a, b := c.nodes[l[0]], c.nodes[l[1]]
		if !a.m.active.has(b.m.self.ID) || !b.m.active.has(a.m.self.ID) {
			c.t.Errorf("link n%d–n%d is open but they are not neighbours", l[0]+1, l[1]+1)
		}
	}
	// Connectivity over the active views.
	start := slices.IndexFunc(c.nodes, func(n *pumpNode) bool { return n.alive })
	if start < 0 {
		return
	}
	reached := map[int]bool{start: true}
	stack := []int{start}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range c.nodes[i].m.active.peers {
			if j := c.byID[p.ID]; !reached[j] && c.nodes[j].alive {
				reached[j] = true
				stack = append(stack, j)
			}
		}
	}
	if len(reached) != alive {
		c.t.Errorf("active graph is split: %d of %d live nodes reachable from n%d", len(reached), alive, start+1)
	}
}

// degrees returns the histogram of active view sizes over live nodes.
func (c *cluster) degrees() map[int]int {
	h := map[int]int{}
	for _, n := range c.nodes {
		if n.alive {
			h[len(n.m.active.peers)]++
		}
	}
	return h
}

// name shortens test IDs to "n<k>".
func name(id identity.NodeID) string {
	if id[31] == 0x5a && id[2] == 0 {
		return fmt.Sprintf("n%d", int(id[0])<<8|int(id[1]))
	}
	return id.Short()
}

// describe renders one output for traces and exact-output assertions.
func describe(o Output) string {
	switch o := o.(type) {
	case Send:
		m, err := ParseMessage(o.Msg)
		if err != nil {
			return fmt.Sprintf("Send(%s ?%x)", name(o.To.ID), o.Msg)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "Send(%s %v", name(o.To.ID), m.Type)
		switch m.Type {
		case MsgForwardJoin:
			fmt.Fprintf(&b, " ttl=%d %s", m.TTL, name(m.Peer.ID))
		case MsgNeighbor:
			fmt.Fprintf(&b, " %v", m.Priority)
		case MsgShuffle:
			fmt.Fprintf(&b, " ttl=%d origin=%s n=%d", m.TTL, name(m.Peer.ID), len(m.Peers))
		case MsgShuffleReply:
			fmt.Fprintf(&b, " n=%d", len(m.Peers))
		}
		return b.String() + ")"
	case Connect:
		return "Connect(" + name(o.Peer.ID) + ")"
	case Disconnect:
		return "Disconnect(" + name(o.Peer) + ")"
	case SetTimer:
		if o.Timer.Kind == TimerShuffle {
			return "SetTimer(shuffle)"
		}
		return fmt.Sprintf("SetTimer(%v %s +%v)", o.Timer.Kind, name(o.Timer.Peer), o.At.Sub(t0))
	case NeighborUp:
		return "NeighborUp(" + name(o.Peer.ID) + ")"
	case NeighborDown:
		return "NeighborDown(" + name(o.Peer) + ")"
	}
	return fmt.Sprintf("%T", o)
}
