package broadcast

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Machine is one node's Plumtree state. It is not safe for concurrent use:
// one driver goroutine (or the simulator) owns it and calls its Handle
// methods with non-decreasing times.
type Machine struct {
	self identity.NodeID
	cfg  Config

	eager map[identity.NodeID]struct{}
	lazy  map[identity.NodeID]struct{}

	cache   *msgCache
	missing map[MessageID]*missingMsg
	// pending holds each peer's queued IHAVE announcements.
	pending map[identity.NodeID][]Announcement
	// recent is a ring of the last CatchUpMax messages received, for the
	// catch-up IHAVE to a new neighbour; next is where the next goes.
	recent     []recentMsg
	recentNext int

	gen      uint64 // last timer generation handed out
	flushGen uint64 // generation of the armed flush timer, 0 if none
	sweepGen uint64 // generation of the armed sweep timer, 0 if none
	lastSeq  uint64
	stats    Stats
}

// recentMsg is a message received at a time, for catch-up.
type recentMsg struct {
	id MessageID
	at time.Time
}

// New returns a Machine for the node self. New calls cfg.Validate.
//
// rng would be the Machine's only source of randomness, but Plumtree as
// implemented here makes no random choice (the eager set follows the
// overlay, and GRAFTs go to announcers in order of arrival), so it is
// unused and may be nil. It stays in the signature so that every protocol
// machine is built alike and a later randomised choice stays seeded.
func New(self identity.NodeID, cfg Config, rng *rand.Rand) (*Machine, error) {
	if self.IsZero() {
		return nil, fmt.Errorf("%w: zero node ID", ErrBadConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Machine{
		self:    self,
		cfg:     cfg,
		eager:   make(map[identity.NodeID]struct{}),
		lazy:    make(map[identity.NodeID]struct{}),
		cache:   newMsgCache(cfg),
		missing: make(map[MessageID]*missingMsg),
		pending: make(map[identity.NodeID][]Announcement),
	}, nil
}

// Self returns the node this Machine runs for.
func (m *Machine) Self() identity.NodeID { return m.self }

// Config returns the Machine's configuration.
func (m *Machine) Config() Config { return m.cfg }

// Broadcast originates a message on topic. The origin delivers it to
// itself first (a Deliver with Hops 0 and From self), then pushes it to its
// eager peers and queues announcements for its lazy ones. It fails only for
// a bad topic (ErrBadTopic) or a payload over Config.MaxPayload
// (ErrPayloadTooLarge). The payload is copied.
//
// The sequence number that goes into the ID is max(last+1, now in Unix
// nanoseconds), so a node that restarts with a sane clock does not reuse
// one, and the same virtual time gives the same IDs.
func (m *Machine) Broadcast(now time.Time, topic string, payload []byte) (MessageID, []Output, error) {
	if err := ValidateTopic(topic); err != nil {
		return MessageID{}, nil, err
	}
	if len(payload) > m.cfg.MaxPayload {
		return MessageID{}, nil, fmt.Errorf("%w: %d bytes, at most %d", ErrPayloadTooLarge, len(payload), m.cfg.MaxPayload)
	}
	seq := m.lastSeq + 1
	if ns := now.UnixNano(); ns > 0 && uint64(ns) > seq {
		seq = uint64(ns)
	}
	m.lastSeq = seq
	g := Gossip{Round: 1, Origin: m.self, Seq: seq, Topic: topic, Payload: bytes.Clone(payload)}
	if g.Payload == nil {
		g.Payload = []byte{}
	}
	id := g.ID()
	m.stats.Broadcasts++
	return id, m.accept(now, nil, id, &g, m.self, 0), nil
}

// HandleNeighborUp adds peer as an eager push peer (Algorithm 1,
// NeighborUp). A peer already known becomes eager. A peer that was not a
// neighbour is sent a catch-up IHAVE (Config.CatchUpWindow).
func (m *Machine) HandleNeighborUp(now time.Time, peer identity.NodeID) []Output {
	if peer == m.self || peer.IsZero() {
		return nil
	}
	known := m.isNeighbor(peer)
	delete(m.lazy, peer)
	m.eager[peer] = struct{}{}
	if known {
		return nil
	}
	return m.catchUp(now, nil, peer)
}

// remember notes a message just received for later catch-ups.
func (m *Machine) remember(now time.Time, id MessageID) {
	if m.cfg.CatchUpMax == 0 || m.cfg.CatchUpWindow == 0 {
		return
	}
	if len(m.recent) < m.cfg.CatchUpMax {
		m.recent = append(m.recent, recentMsg{id, now})
		return
	}
	m.recent[m.recentNext] = recentMsg{id, now}
	m.recentNext = (m.recentNext + 1) % len(m.recent)
}

// catchUp announces to peer, newest first, the messages received within
// CatchUpWindow that are still cached. The peer grafts those it lacks
// after MissingTimeout, as for any IHAVE.
func (m *Machine) catchUp(now time.Time, out []Output, peer identity.NodeID) []Output {
	var anns []Announcement
	for i := range m.recent {
		r := m.recent[(m.recentNext-1-i+2*len(m.recent))%len(m.recent)]
		if now.Sub(r.at) > m.cfg.CatchUpWindow {
			break
		}
		if e, ok := m.cache.get(now, r.id); ok {
			anns = append(anns, Announcement{ID: r.id, Round: nextRound(e.hops)})
		}
	}
	if len(anns) == 0 {
		return out
	}
	m.stats.CatchUps++
	return m.sendIHave(out, peer, anns)
}

// HandleNeighborDown forgets peer: it leaves both sets, its queued
// announcements are dropped, and its announcements to this node are
// forgotten, so no GRAFT goes to it (Algorithm 1, NeighborDown).
func (m *Machine) HandleNeighborDown(now time.Time, peer identity.NodeID) []Output {
	delete(m.eager, peer)
	delete(m.lazy, peer)
	delete(m.pending, peer)
	for _, mm := range m.missing {
		mm.drop(peer)
	}
	return nil
}

// Eager returns the eager push peers, sorted.
func (m *Machine) Eager() []identity.NodeID { return sortedPeers(m.eager) }

// Lazy returns the lazy push peers, sorted.
func (m *Machine) Lazy() []identity.NodeID { return sortedPeers(m.lazy) }

func (m *Machine) isNeighbor(p identity.NodeID) bool {
	_, e := m.eager[p]
	_, l := m.lazy[p]
	return e || l
}

func (m *Machine) makeEager(p identity.NodeID) {
	delete(m.lazy, p)
	m.eager[p] = struct{}{}
}

func (m *Machine) makeLazy(p identity.NodeID) {
	delete(m.eager, p)
	m.lazy[p] = struct{}{}
}

func sortedPeers[V any](set map[identity.NodeID]V) []identity.NodeID {
	out := make([]identity.NodeID, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.SortFunc(out, compareIDs)
	return out
}

func compareIDs(a, b identity.NodeID) int { return bytes.Compare(a[:], b[:]) }

// nextGen hands out a timer generation; 0 is never used.
func (m *Machine) nextGen() uint64 {
	m.gen++
	return m.gen
}

// send appends a Send of an encoded message to out and counts it.
func (m *Machine) send(out []Output, to identity.NodeID, msg Message, enc []byte) []Output {
	switch msg := msg.(type) {
	case *Gossip:
		m.stats.GossipOut++
		m.stats.PayloadBytesOut += uint64(len(msg.Payload))
	case *IHave:
		m.stats.IHaveOut++
		m.stats.AnnouncementsOut += uint64(len(msg.Announcements))
	case *Graft:
		m.stats.GraftOut++
	case Prune:
		m.stats.PruneOut++
	}
	return append(out, Send{To: to, Msg: enc})
}

// encode encodes a message the Machine built itself, which is valid by
// construction.
func encode(msg Message) []byte {
	b, err := AppendMessage(nil, msg)
	if err != nil {
		panic(fmt.Sprintf("broadcast: encoding own %v: %v", msg.Type(), err))
	}
	return b
}

var pruneMsg = []byte{byte(TypePrune)}

func (m *Machine) sendPrune(out []Output, to identity.NodeID) []Output {
	return m.send(out, to, Prune{}, pruneMsg)
}

func (m *Machine) sendGraft(out []Output, to identity.NodeID, g *Graft) []Output {
	return m.send(out, to, g, encode(g))
}

// sendGossip sends the cached message id to one peer, at this node's round
// plus one.
func (m *Machine) sendGossip(out []Output, to identity.NodeID, e *cacheEntry) []Output {
	g := &Gossip{Round: nextRound(e.hops), Origin: e.origin, Seq: e.seq, Topic: e.topic, Payload: e.payload}
	return m.send(out, to, g, encode(g))
}

// nextRound is the round a peer is at when it gets a message from a node
// at hops, saturating at the wire's limit.
func nextRound(hops uint16) uint16 {
	if hops == ^uint16(0) {
		return hops
	}
	return hops + 1
}
