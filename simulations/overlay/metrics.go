package overlay

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/broadcast"
)

// bcast is what is measured of one broadcast. Its payload starts with its
// number k (4 bytes, big endian), which is how sends and deliveries are
// matched to it.
type bcast struct {
	k        int
	sender   int
	at       time.Duration
	measured bool
	live     int      // nodes alive (and joined) when it was sent
	got      []uint64 // bitset: nodes that delivered it
	n        int      // nodes that delivered it (the paper's n)
	eligible int      // of those, nodes alive when it was sent
	dups     int      // Deliver outputs beyond the first per node
	m        int      // GOSSIP (payload) messages sent for it
	ldh      int      // largest Hops
	times    []uint32 // delivery delays, in microseconds
	last     time.Duration
}

// originate sends broadcast number k from the fixed sender or a random
// live node.
func (s *Sim) originate(k int, measured bool) {
	sender := s.sender
	if sender < 0 || !s.eng.Alive(sender) {
		sender = s.randomLive(-1)
	}
	now := s.eng.Now()
	b := &bcast{k: k, sender: sender, at: now, measured: measured, got: make([]uint64, (len(s.nodes)+63)/64)}
	for i := range s.nodes {
		if s.eng.Alive(i) && s.joinT[i] <= now {
			b.live++
		}
	}
	for len(s.bcasts) <= k {
		s.bcasts = append(s.bcasts, nil)
	}
	s.bcasts[k] = b
	payload := make([]byte, s.sc.Payload)
	binary.BigEndian.PutUint32(payload, uint32(k))
	if err := s.nodes[sender].broadcast(payload); err != nil {
		s.buildErr = err
	}
}

// payloadBroadcast returns the broadcast a payload belongs to.
func (s *Sim) payloadBroadcast(p []byte) *bcast {
	if len(p) < 4 {
		return nil
	}
	k := int(binary.BigEndian.Uint32(p))
	if k >= len(s.bcasts) {
		return nil
	}
	return s.bcasts[k]
}

// countSend counts a broadcast message on its way out: GOSSIPs (payload
// messages) count towards their broadcast's m.
func (s *Sim) countSend(msg []byte) {
	if len(msg) == 0 || broadcast.MsgType(msg[0]) != broadcast.TypeGossip {
		return
	}
	m, err := broadcast.ParseMessage(msg)
	if err != nil {
		return
	}
	g, ok := m.(broadcast.Gossip)
	if !ok || g.Topic != topic {
		return
	}
	if b := s.payloadBroadcast(g.Payload); b != nil {
		b.m++
	}
}

// delivered records a Deliver at node i.
func (s *Sim) delivered(i int, d broadcast.Deliver) {
	b := s.payloadBroadcast(d.Payload)
	if b == nil || d.Topic != topic {
		return
	}
	w, bit := i/64, uint64(1)<<(i%64)
	if b.got[w]&bit != 0 {
		b.dups++
		return
	}
	b.got[w] |= bit
	b.n++
	now := s.eng.Now()
	if s.born[i] <= b.at && s.joinT[i] <= b.at {
		b.eligible++
	}
	b.ldh = max(b.ldh, d.Hops)
	b.times = append(b.times, uint32(min((now-b.at)/time.Microsecond, 1<<32-1)))
	b.last = max(b.last, now)
}

// BroadcastResult is what one broadcast achieved.
type BroadcastResult struct {
	K        int     `json:"k"`
	Sender   int     `json:"sender"`
	AtSec    float64 `json:"at_seconds"`
	Measured bool    `json:"measured"` // after the failure (not a warm-up)
	Live     int     `json:"live"`
	// Delivered is the paper's n: nodes that delivered it.
	Delivered   int     `json:"delivered"`
	Reliability float64 `json:"reliability"` // delivered among Live / Live
	// PayloadMsgs is the paper's m: GOSSIP messages sent for it.
	PayloadMsgs int     `json:"payload_msgs"`
	RMR         float64 `json:"rmr"` // m/(n-1) - 1
	LDH         int     `json:"ldh"` // largest delivery hop count
	// LastMs is when the last node delivered it, after it was sent.
	LastMs     float64 `json:"last_delivery_ms"`
	Duplicates int     `json:"duplicates"`
	// delays are the delivery delays, sorted, for the report.
	delays []uint32
}

func (b *bcast) result() BroadcastResult {
	r := BroadcastResult{
		K: b.k, Sender: b.sender, AtSec: b.at.Seconds(), Measured: b.measured, Live: b.live,
		Delivered: b.n, PayloadMsgs: b.m, LDH: b.ldh, Duplicates: b.dups,
	}
	if b.live > 0 {
		r.Reliability = float64(b.eligible) / float64(b.live)
	}
	if b.n > 1 {
		r.RMR = float64(b.m)/float64(b.n-1) - 1
	}
	if b.n > 0 {
		r.LastMs = float64(b.last-b.at) / float64(time.Millisecond)
	}
	r.delays = slices.Clone(b.times)
	slices.Sort(r.delays)
	return r
}

// Overlay is the shape of the live overlay: its active-view graph.
type Overlay struct {
	Live       int  `json:"live"`
	Components int  `json:"components"`
	Connected  bool `json:"connected"` // one component
	// Largest is the share of live nodes in the largest component.
	Largest float64 `json:"largest_component"`
	// Degree[d] is the number of live nodes with d peers in their active view.
	Degree []int `json:"degree_histogram"`
	// Islands lists the nodes of every component but the largest (at most
	// maxIslands of them), smallest index first: the nodes to look at when
	// the overlay is not connected.
	Islands [][]int `json:"islands,omitempty"`
}

const maxIslands = 20

// components measures the live active-view graph: an edge for each live
// peer in a live node's active view, taken as undirected.
func (s *Sim) components() Overlay {
	n := len(s.nodes)
	uf := newUnionFind(n)
	var o Overlay
	for i, nd := range s.nodes {
		if !s.eng.Alive(i) {
			continue
		}
		o.Live++
		act := nd.mem.Active()
		for len(o.Degree) <= len(act) {
			o.Degree = append(o.Degree, 0)
		}
		o.Degree[len(act)]++
		for _, p := range act {
			if j, ok := s.byID[p.ID]; ok && s.eng.Alive(int(j)) {
				uf.union(i, int(j))
			}
		}
	}
	size := map[int32]int{}
	for i := range s.nodes {
		if s.eng.Alive(i) {
			size[uf.find(i)]++
		}
	}
	o.Components = len(size)
	o.Connected = o.Components == 1
	var bestRoot int32 = -1
	best := 0
	for i := range s.nodes { // in index order, so ties go the same way every run
		if r := uf.find(i); s.eng.Alive(i) && size[r] > best {
			best, bestRoot = size[r], r
		}
	}
	if o.Live > 0 {
		o.Largest = float64(best) / float64(o.Live)
	}
	if o.Components > 1 {
		at := map[int32]int{}
		for i := range s.nodes {
			r := uf.find(i)
			if !s.eng.Alive(i) || r == bestRoot {
				continue
			}
			k, ok := at[r]
			if !ok {
				if len(o.Islands) == maxIslands {
					continue
				}
				k = len(o.Islands)
				at[r] = k
				o.Islands = append(o.Islands, nil)
			}
			o.Islands[k] = append(o.Islands[k], i)
		}
	}
	return o
}

type unionFind struct{ parent, rank []int32 }

func newUnionFind(n int) *unionFind {
	u := &unionFind{parent: make([]int32, n), rank: make([]int32, n)}
	for i := range u.parent {
		u.parent[i] = int32(i)
	}
	return u
}

func (u *unionFind) find(i int) int32 {
	x := int32(i)
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]]
		x = u.parent[x]
	}
	return x
}

func (u *unionFind) union(a, b int) {
	ra, rb := u.find(a), u.find(b)
	if ra == rb {
		return
	}
	if u.rank[ra] < u.rank[rb] {
		ra, rb = rb, ra
	}
	u.parent[rb] = ra
	if u.rank[ra] == u.rank[rb] {
		u.rank[ra]++
	}
}
