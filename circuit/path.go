package circuit

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Path selection. A circuit is a chain of links that already exist: a
// relay forwards only over links it holds, so a path is a walk in the
// graph the signed records describe, where each node's record lists the
// links it holds (its active-view neighbours and its home relays). The
// same code chooses paths in the node and in the simulator.

// DefaultRelays is how many relays a circuit has unless asked otherwise:
// one. A circuit exists to reach a node no direct path reaches, and one
// relay that holds a link to the target does that. The threat model
// (package doc) promises no anonymity, and a single relay learns only
// that its two neighbours talk, never the payload; each further relay
// adds a link of latency and costs about a quarter of the throughput
// (BenchmarkCircuitThroughput), and is one more node that can fail. Ask
// for two or more when no single relay may learn both ends.
const DefaultRelays = 1

// MaxRelays is the most relays a path may have: MaxHops less the target.
const MaxRelays = MaxHops - 1

// ErrNoPath: no chain of known links reaches the target with the relays
// asked for.
var ErrNoPath = errors.New("circuit: no relay path")

// Candidate is what path selection knows of one node, from its record.
type Candidate struct {
	ID       NodeID
	OnionKey [32]byte // zero: the node cannot be a hop
	Inbound  bool     // takes inbound connections, so anyone can reach it
	Relay    bool     // announces the relay role
	// Capacity and Load are the relay's announced circuits, most and now;
	// a zero Capacity says nothing of load.
	Capacity, Load uint32
	// Links are the nodes it holds links with.
	Links []NodeID
}

// overloaded reports a relay at nine tenths of its announced capacity or
// more.
func (c *Candidate) overloaded() bool {
	return c.Capacity > 0 && uint64(c.Load)*10 >= uint64(c.Capacity)*9
}

// loadShare is Load/Capacity, 0 when unknown.
func (c *Candidate) loadShare() float64 {
	if c.Capacity == 0 {
		return 0
	}
	return float64(c.Load) / float64(c.Capacity)
}

// Graph is the link graph of a set of candidates. Links are taken both
// ways: a node that names another as neighbour or home relay holds a link
// to it, so the other does too. Build one with NewGraph; it is read-only
// after, and safe for concurrent use.
type Graph struct {
	nodes map[NodeID]*Candidate
	adj   map[NodeID][]NodeID
}

// NewGraph indexes cands. A later candidate with an ID seen before
// replaces the earlier one.
func NewGraph(cands []Candidate) *Graph {
	g := &Graph{nodes: make(map[NodeID]*Candidate, len(cands)), adj: make(map[NodeID][]NodeID, len(cands))}
	for i := range cands {
		g.nodes[cands[i].ID] = &cands[i]
	}
	for id, c := range g.nodes {
		for _, l := range c.Links {
			if l == id {
				continue
			}
			g.adj[id] = append(g.adj[id], l)
			g.adj[l] = append(g.adj[l], id)
		}
	}
	for id, a := range g.adj {
		slices.SortFunc(a, func(x, y NodeID) int { return slices.Compare(x[:], y[:]) })
		g.adj[id] = slices.Compact(a)
	}
	return g
}

// Len returns the number of candidates.
func (g *Graph) Len() int { return len(g.nodes) }

// Candidate returns the candidate with id.
func (g *Graph) Candidate(id NodeID) (Candidate, bool) {
	c, ok := g.nodes[id]
	if !ok {
		return Candidate{}, false
	}
	return *c, true
}

// PathQuery asks for a relay path from Self to Target.
type PathQuery struct {
	Self, Target NodeID
	// MinRelays is the fewest relays wanted (0 means DefaultRelays). A
	// path with more, up to MaxRelays, is taken only when none with
	// fewer exists: the target may be reachable only through a NAT-bound
	// neighbour of it, behind a relay of its own.
	MinRelays int
	// Linked reports whether Self holds a direct link to a node now; nil
	// means none. The first relay must be linked or take inbound
	// connections.
	Linked func(NodeID) bool
	// Avoid reports nodes not to use, such as relays that failed or
	// refused lately; nil avoids none.
	Avoid func(NodeID) bool
	// Rand breaks ties, so load spreads over equal relays; nil breaks
	// them by ID.
	Rand *rand.Rand
}

// fanout bounds the candidates tried at each step of the search, so a
// query costs at most fanout^MaxRelays steps however large the graph.
const fanout = 8

// Select returns the relays of a path from q.Self to q.Target, in order
// from Self: the last one holds a link to the target, each one a link to
// the next, and the first is linked to Self or takes inbound connections.
// No node appears twice, and neither end is a relay. Among paths of the
// shortest length allowed it prefers a first relay Self is linked to,
// announced relays, and lower load, and it avoids relays at nine tenths
// of their capacity unless no other path exists. It returns ErrNoPath,
// with the reason, when there is none.
func (g *Graph) Select(q PathQuery) ([]NodeID, error) {
	minR := q.MinRelays
	if minR == 0 {
		minR = DefaultRelays
	}
	if minR < 1 || minR > MaxRelays {
		return nil, fmt.Errorf("%w: %d relays asked, want 1..%d", ErrBadArgument, minR, MaxRelays)
	}
	if q.Self == q.Target {
		return nil, fmt.Errorf("%w: a path to ourselves", ErrBadArgument)
	}
	if _, ok := g.nodes[q.Target]; !ok {
		return nil, fmt.Errorf("%w: the target has no record", ErrNoPath)
	}
	s := search{g: g, q: q}
	for _, allowFull := range []bool{false, true} {
		s.allowFull = allowFull
		for k := minR; k <= MaxRelays; k++ {
			s.path = s.path[:0]
			if s.walk(q.Target, k) {
				slices.Reverse(s.path)
				return slices.Clone(s.path), nil
			}
		}
	}
	return nil, fmt.Errorf("%w: no chain of %d to %d known links to %x", ErrNoPath, minR, MaxRelays, q.Target[:4])
}

// search walks back from the target to Self.
type search struct {
	g         *Graph
	q         PathQuery
	allowFull bool     // take relays at nine tenths of capacity
	path      []NodeID // relays from the target backward
}

// usable reports whether id may be a relay of this path.
func (s *search) usable(id NodeID) (*Candidate, bool) {
	if id == s.q.Self || id == s.q.Target || slices.Contains(s.path, id) {
		return nil, false
	}
	c, ok := s.g.nodes[id]
	if !ok || c.OnionKey == [32]byte{} {
		return nil, false
	}
	if s.q.Avoid != nil && s.q.Avoid(id) {
		return nil, false
	}
	if c.overloaded() && !s.allowFull {
		return nil, false
	}
	return c, true
}

// reachable reports whether Self can reach c as its first relay.
func (s *search) reachable(c *Candidate) bool {
	return c.Inbound || (s.q.Linked != nil && s.q.Linked(c.ID))
}

// walk extends the path by k more relays, the next one linked to from.
func (s *search) walk(from NodeID, k int) bool {
	type scored struct {
		c     *Candidate
		score float64
	}
	var cands []scored
	for _, id := range s.g.adj[from] {
		c, ok := s.usable(id)
		if !ok || (k == 1 && !s.reachable(c)) {
			continue
		}
		score := c.loadShare()
		if !c.Relay {
			score += 1
		}
		if k == 1 && s.q.Linked != nil && s.q.Linked(c.ID) {
			score -= 2 // no new connection needed
		}
		if s.q.Rand != nil {
			score += s.q.Rand.Float64() * 0.1
		}
		cands = append(cands, scored{c, score})
	}
	slices.SortStableFunc(cands, func(a, b scored) int { return cmp.Compare(a.score, b.score) })
	for _, sc := range cands[:min(len(cands), fanout)] {
		s.path = append(s.path, sc.c.ID)
		if k == 1 || s.walk(sc.c.ID, k-1) {
			return true
		}
		s.path = s.path[:len(s.path)-1]
	}
	return false
}

// PathAttempts is how many paths a dial tries before it gives up on
// circuits: after a failed path, every relay of it is avoided for the
// rest of the dial (the initiator cannot tell which hop failed).
const PathAttempts = 3

// HomeOrder returns, in the order a NAT-bound node should try them, the
// candidates that could be its home relays: nodes other than self that
// take inbound connections and publish an onion key, announced relays
// first, each group shuffled by rng (nil: by ID) so NAT-bound nodes
// spread over them.
func HomeOrder(cands []Candidate, self NodeID, rng *rand.Rand) []NodeID {
	var relays, others []NodeID
	for i := range cands {
		c := &cands[i]
		if c.ID == self || !c.Inbound || c.OnionKey == [32]byte{} {
			continue
		}
		if c.Relay {
			relays = append(relays, c.ID)
		} else {
			others = append(others, c.ID)
		}
	}
	for _, g := range [][]NodeID{relays, others} {
		slices.SortFunc(g, func(x, y NodeID) int { return slices.Compare(x[:], y[:]) })
		if rng != nil {
			rng.Shuffle(len(g), func(i, j int) { g[i], g[j] = g[j], g[i] })
		}
	}
	return append(relays, others...)
}
