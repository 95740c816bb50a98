package relay

import (
	crand "crypto/rand"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mycelium-net/mycelium/circuit"
	"github.com/mycelium-net/mycelium/internal/wire"
)

// Table holds the circuits a node carries: relayed ones and, so that
// they share the limits and the circuit IDs of each link, the ones that
// start or end here. It is safe for concurrent use. Lookups take a read
// lock; AllowForward and AllowBackward take only their circuit's lock
// for that direction.
type Table struct {
	res      Resources
	allow    map[NodeID]struct{}
	rate     int64 // nano-bytes per nanosecond: BytesPerSecond
	burst    int64 // bytes
	capacity int64 // nano-bytes: Burst * 1e9
	fillNs   int64 // nanoseconds for an empty bucket to fill

	mu       sync.RWMutex
	byPrev   map[linkKey]*Circuit // relays and terminals
	byNext   map[linkKey]*Circuit // relays and initiators
	perPrev  map[NodeID]int       // circuits each previous hop has open
	count    [KindInitiator + 1]int
	mem      int64
	draining bool
	deadline time.Time // when draining circuits are torn down
	randID   func() uint32
	opened   uint64
	refused  [256]uint64
	closed   [256]uint64
	retired  [2]Flow // the flows of closed circuits, forward and backward
}

// linkKey names a circuit on one link: the peer and the circuit ID.
type linkKey struct {
	peer NodeID
	cid  uint32
}

// maxIDTries bounds the draws for a free circuit ID toward one peer.
// With at most MaxCircuits IDs in use out of 2^32, 64 draws all hitting
// used IDs does not happen in practice.
const maxIDTries = 64

// NewTable returns an empty table bounded by res.
//
// Circuit IDs toward a next hop are drawn at random (ChaCha8 seeded
// from crypto/rand), nonzero and not in use toward that peer. Random
// rather than counted, so that the next hop cannot tell from the IDs how
// many circuits we have built toward it or in what order.
func NewTable(res Resources) (*Table, error) {
	if err := res.Validate(); err != nil {
		return nil, err
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (Go 1.24+)
	rng := rand.NewChaCha8(seed)
	t := &Table{
		res:      res,
		rate:     int64(res.BytesPerSecond),
		burst:    int64(res.Burst),
		capacity: int64(res.Burst) * 1e9,
		byPrev:   make(map[linkKey]*Circuit),
		byNext:   make(map[linkKey]*Circuit),
		perPrev:  make(map[NodeID]int),
		randID:   func() uint32 { return uint32(rng.Uint64()) },
	}
	t.fillNs = (t.capacity + t.rate - 1) / t.rate
	if len(res.Allow) > 0 {
		t.allow = make(map[NodeID]struct{}, len(res.Allow))
		for _, id := range res.Allow {
			t.allow[id] = struct{}{}
		}
	}
	t.res.Allow = nil // the map is the copy in use
	return t, nil
}

// Open admits a circuit to relay: prev opened it toward us with
// prevCID, and its onion names next as the next hop. It returns the
// circuit, with a new NextCID to send the CREATE to next with, or a
// wire.Reason constant to send back in a REFUSED. It checks, in order:
// draining, the allow-list, memory, capacity, the per-peer limit, then
// that prevCID is not already open from prev (ReasonDuplicateID). A zero
// prevCID or next, prev equal to the zero ID, or nil keys are refused
// with ReasonBadOnion, since no peeled onion gives them.
func (t *Table) Open(now time.Time, prev NodeID, prevCID uint32, next NodeID, keys *circuit.RelayKeys) (*Circuit, byte) {
	c := &Circuit{Kind: KindRelay, Prev: prev, PrevCID: prevCID, Next: next, Keys: keys}
	if prevCID == 0 || prev == (NodeID{}) || next == (NodeID{}) || keys == nil {
		return t.refuse(wire.ReasonBadOnion)
	}
	return t.admit(now, c)
}

// OpenTerminal admits a circuit that ends here: prev opened it with
// prevCID and term is our end from circuit.Peel. The allow-list and the
// rate limit do not apply; draining, memory, capacity, the per-peer
// limit and the duplicate check do, in that order. A zero prevCID or
// prev, or a nil term, is refused with ReasonBadOnion.
func (t *Table) OpenTerminal(now time.Time, prev NodeID, prevCID uint32, term *circuit.Terminal) (*Circuit, byte) {
	c := &Circuit{Kind: KindTerminal, Prev: prev, PrevCID: prevCID, Term: term}
	if prevCID == 0 || prev == (NodeID{}) || term == nil {
		return t.refuse(wire.ReasonBadOnion)
	}
	return t.admit(now, c)
}

// OpenInitiator admits a circuit we start toward next, the first hop of
// init's path, and gives it the NextCID to send the CREATE with.
// Draining, memory and capacity apply; the allow-list, the per-peer
// limit and the rate limit do not. A zero next or nil init is refused
// with ReasonBadOnion.
func (t *Table) OpenInitiator(now time.Time, next NodeID, init *circuit.Initiator) (*Circuit, byte) {
	c := &Circuit{Kind: KindInitiator, Next: next, Init: init}
	if next == (NodeID{}) || init == nil {
		return t.refuse(wire.ReasonBadOnion)
	}
	return t.admit(now, c)
}

// refuse counts a refusal for reason and returns it.
func (t *Table) refuse(reason byte) (*Circuit, byte) {
	t.mu.Lock()
	t.refused[reason]++
	t.mu.Unlock()
	return nil, reason
}

// admit checks the limits for c, gives it a NextCID if it has a next
// hop, and adds it to the table.
func (t *Table) admit(now time.Time, c *Circuit) (*Circuit, byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.check(c); r != 0 {
		t.refused[r]++
		return nil, r
	}
	if c.Next != (NodeID{}) {
		cid, ok := t.allocID(c.Next)
		if !ok {
			t.refused[wire.ReasonCapacity]++
			return nil, wire.ReasonCapacity
		}
		c.NextCID = cid
		t.byNext[linkKey{c.Next, cid}] = c
	}
	if c.PrevCID != 0 {
		t.byPrev[linkKey{c.Prev, c.PrevCID}] = c
		t.perPrev[c.Prev]++
	}
	c.table, c.opened = t, now
	c.fwd.tokens, c.bwd.tokens = t.capacity, t.capacity
	t.count[c.Kind]++
	t.mem += costOf(c.Kind)
	t.opened++
	return c, 0
}

// check returns why c may not be admitted, or 0. Called with t.mu held.
func (t *Table) check(c *Circuit) byte {
	hasPrev := c.PrevCID != 0
	switch {
	case t.draining:
		return wire.ReasonDraining
	case c.Kind == KindRelay && t.allow != nil && !t.allowed(c.Prev):
		return wire.ReasonNotAllowed
	case t.mem+costOf(c.Kind) > t.res.MaxMemory:
		return wire.ReasonMemory
	case t.total() >= t.res.MaxCircuits:
		return wire.ReasonCapacity
	case hasPrev && t.perPrev[c.Prev] >= t.res.MaxCircuitsPerPeer:
		return wire.ReasonPeerLimit
	}
	if _, dup := t.byPrev[linkKey{c.Prev, c.PrevCID}]; hasPrev && dup {
		return wire.ReasonDuplicateID
	}
	return 0
}

// allowed reports whether prev is on the allow-list.
func (t *Table) allowed(prev NodeID) bool {
	_, ok := t.allow[prev]
	return ok
}

// total returns how many circuits the table holds.
func (t *Table) total() int {
	return t.count[KindRelay] + t.count[KindTerminal] + t.count[KindInitiator]
}

// allocID draws a nonzero circuit ID not in use toward next.
func (t *Table) allocID(next NodeID) (uint32, bool) {
	for range maxIDTries {
		id := t.randID()
		if id == 0 {
			continue
		}
		if _, used := t.byNext[linkKey{next, id}]; !used {
			return id, true
		}
	}
	return 0, false
}

// FromPrev returns the circuit prev knows as prevCID (a relayed one or
// one ending here), or nil: the lookup for a forward datagram.
func (t *Table) FromPrev(prev NodeID, prevCID uint32) *Circuit {
	t.mu.RLock()
	c := t.byPrev[linkKey{prev, prevCID}]
	t.mu.RUnlock()
	return c
}

// FromNext returns the circuit next knows as nextCID (a relayed one or
// one we started), or nil: the lookup for a backward datagram.
func (t *Table) FromNext(next NodeID, nextCID uint32) *Circuit {
	t.mu.RLock()
	c := t.byNext[linkKey{next, nextCID}]
	t.mu.RUnlock()
	return c
}
