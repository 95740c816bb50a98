package membership

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Resource limits on what peers can make a Machine hold, beyond its views.
const (
	// MaxPendingRequests bounds the JOIN and NEIGHBOR requests waiting for
	// a reply. Repair asks for at most the free slots of the active view;
	// the rest of the room is for FORWARD_JOIN walks ending here. A walk
	// that finds no room leaves the new node in the passive view.
	MaxPendingRequests = 16

	// MaxOneShotLinks bounds the links opened only to deliver a
	// SHUFFLE_REPLY. A reply past it is dropped.
	MaxOneShotLinks = 16

	// MaxQueuedPerLink bounds the replies waiting for one link to come up.
	MaxQueuedPerLink = 4
)

// Machine is one node's HyParView state machine. It is not safe for
// concurrent use: one driver goroutine (or the simulator) owns it.
type Machine struct {
	self Peer
	cfg  Config
	rng  *rand.Rand

	active  view
	passive view

	// pending holds our JOIN and NEIGHBOR requests awaiting a reply, by
	// peer. Every entry has an entry in links, or its peer is active.
	pending map[identity.NodeID]*request
	// links holds the links this machine asked for and has not yet handed
	// to the active view or closed. Active peers' links are not in it.
	links map[identity.NodeID]*link
	// rejected holds peers that refused us (NEIGHBOR_REJECT, DISCONNECT)
	// since the last shuffle tick; repair does not ask them again before.
	rejected map[identity.NodeID]struct{}

	// join is the JOIN in progress, if any.
	join struct {
		on      bool
		contact Peer
		seq     uint64
		tries   int // JOINs sent again so far; the wait doubles with each
	}
	contact    Peer // the last contact given to Join, for a rejoin when alone
	hasContact bool

	// starved counts shuffle ticks in a row that found the active view
	// neither empty nor full; at StarveTicks*starveBackoff the next
	// NEIGHBOR goes out with high priority (escalate). isolated counts
	// those that found the passive view not full; at
	// StarveTicks*isolatedBackoff the contact is asked (see checkStarved).
	starved         int
	starveBackoff   int
	escalate        bool
	isolated        int
	isolatedBackoff int
	probeOut        bool // a contact probe's SHUFFLE is out (see probeContact)

	shuffleArmed bool
	shuffleSeq   uint64
	// shuffleSent are the peers our outstanding SHUFFLE carried; a reply
	// evicts them first. shuffleOut says a reply is awaited.
	shuffleSent []identity.NodeID
	shuffleOut  bool

	seq   uint64 // last sequence number handed to a request or timer
	now   time.Time
	out   []Output
	stats Stats
}

// request is a JOIN or NEIGHBOR of ours awaiting its reply.
type request struct {
	peer  Peer
	join  bool   // a JOIN to our contact, not a NEIGHBOR
	walk  bool   // a NEIGHBOR at the end of a FORWARD_JOIN walk: always high priority
	force bool   // a NEIGHBOR from a node that seems isolated (see onProbeReply): high priority
	seq   uint64 // matches the request's timer
	sent  bool   // the message is out; we wait for the reply
	high  bool   // a NEIGHBOR sent with high priority
}

// queued is an encoded one-shot message (a SHUFFLE_REPLY, or the SHUFFLE
// of a contact probe) waiting for its link.
type queued struct {
	typ MsgType
	b   []byte
}

// link is a link this machine asked for with Connect.
type link struct {
	peer  Peer
	up    bool     // HandleConnected came
	queue []queued // one-shot messages to send once it is up
}

// New returns a machine for the node self. It emits nothing until Join or
// a message arrives: a node that nobody joins and that joins nobody stays
// silent.
func New(self Peer, cfg Config, rng *rand.Rand) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := self.validate(); err != nil {
		return nil, fmt.Errorf("%w: self: %w", ErrBadConfig, err)
	}
	if rng == nil {
		return nil, fmt.Errorf("%w: nil rand", ErrBadConfig)
	}
	return &Machine{
		self:     self.clone(),
		cfg:      cfg,
		rng:      rng,
		active:   view{max: cfg.ActiveSize},
		passive:  view{max: cfg.PassiveSize},
		pending:  make(map[identity.NodeID]*request),
		links:    make(map[identity.NodeID]*link),
		rejected: make(map[identity.NodeID]struct{}),

		starveBackoff:   1,
		isolatedBackoff: 1,
	}, nil
}

// Self returns the peer this machine speaks for.
func (m *Machine) Self() Peer { return m.self.clone() }

// SetSelf changes what this node tells others about itself (its addresses
// and NoInbound, as a NAT layer learns them) in messages sent from now on.
// The ID cannot change.
func (m *Machine) SetSelf(p Peer) error {
	if p.ID != m.self.ID {
		return fmt.Errorf("%w: SetSelf cannot change the node ID", ErrBadPeer)
	}
	if err := p.validate(); err != nil {
		return err
	}
	m.self = p.clone()
	return nil
}

// Active returns the active view, sorted by ID.
func (m *Machine) Active() []Peer { return m.active.sorted() }

// Passive returns the passive view, sorted by ID.
func (m *Machine) Passive() []Peer { return m.passive.sorted() }

// Stats returns the counters.
func (m *Machine) Stats() Stats { return m.stats }

// begin and end bracket every entry point: they fix the time and collect
// the outputs.
func (m *Machine) begin(now time.Time) { m.now, m.out = now, nil }

func (m *Machine) end() []Output {
	out := m.out
	m.out = nil
	return out
}

func (m *Machine) emit(o Output) { m.out = append(m.out, o) }

// send encodes msg and emits a Send to to.
func (m *Machine) send(to Peer, msg Message) {
	b, err := AppendMessage(nil, msg)
	if err != nil {
		m.stats.Drop.Encode++
		return
	}
	m.stats.Out.add(msg.Type)
	m.emit(Send{To: to.clone(), Msg: b})
}

func (m *Machine) nextSeq() uint64 {
	m.seq++
	return m.seq
}

func (m *Machine) setTimer(after time.Duration, t Timer) {
	m.emit(SetTimer{At: m.now.Add(after), Timer: t})
}

// HandleMessage handles one message from a peer. A message that is
// oversized or malformed, or that makes no sense from that sender, is
// dropped and counted in Stats; it never causes an error or a panic.
func (m *Machine) HandleMessage(now time.Time, from identity.NodeID, msg []byte) []Output {
	m.begin(now)
	if len(msg) > MaxMessageSize {
		m.stats.Drop.Oversized++
		return m.end()
	}
	if from == m.self.ID || from.IsZero() {
		m.stats.Drop.BadSender++
		return m.end()
	}
	dm, err := ParseMessage(msg)
	if err != nil {
		m.stats.Drop.Malformed++
		return m.end()
	}
	m.stats.In.add(dm.Type)
	switch dm.Type {
	case MsgJoin:
		m.onJoin(from, dm)
	case MsgForwardJoin:
		m.onForwardJoin(from, dm)
	case MsgNeighbor:
		m.onNeighbor(from, dm)
	case MsgNeighborAccept:
		m.onAccept(from)
	case MsgNeighborReject:
		m.onReject(from)
	case MsgDisconnect:
		m.onDisconnect(from)
	case MsgShuffle:
		m.onShuffle(from, dm)
	case MsgShuffleReply:
		m.onShuffleReply(from, dm)
	}
	return m.end()
}

// HandleTimer handles a timer that fell due. Stale timers are ignored.
func (m *Machine) HandleTimer(now time.Time, t Timer) []Output {
	m.begin(now)
	switch t.Kind {
	case TimerShuffle:
		if m.shuffleArmed && t.seq == m.shuffleSeq {
			m.onShuffleTick()
		}
	case TimerJoin:
		if m.join.on && t.seq == m.join.seq {
			m.onJoinTimeout()
		}
	case TimerNeighbor:
		if r := m.pending[t.Peer]; r != nil && !r.join && r.seq == t.seq {
			m.stats.NeighborTimeouts++
			m.requestFailed(r, true)
		}
	}
	return m.end()
}
