package membership

import (
	"errors"
	"fmt"
)

// MsgType is the first byte of every message.
type MsgType uint8

// Message types. The values are the wire encoding.
const (
	MsgJoin           MsgType = 1 // a new node asks its contact to let it in
	MsgForwardJoin    MsgType = 2 // the random walk that spreads a JOIN
	MsgNeighbor       MsgType = 3 // a request to enter the receiver's active view
	MsgNeighborAccept MsgType = 4 // yes to NEIGHBOR, and to JOIN
	MsgNeighborReject MsgType = 5 // no to NEIGHBOR
	MsgDisconnect     MsgType = 6 // the sender dropped the receiver from its active view
	MsgShuffle        MsgType = 7 // a random walk carrying a sample of the origin's views
	MsgShuffleReply   MsgType = 8 // the end of a SHUFFLE walk answers the origin
)

func (t MsgType) String() string {
	switch t {
	case MsgJoin:
		return "JOIN"
	case MsgForwardJoin:
		return "FORWARD_JOIN"
	case MsgNeighbor:
		return "NEIGHBOR"
	case MsgNeighborAccept:
		return "NEIGHBOR_ACCEPT"
	case MsgNeighborReject:
		return "NEIGHBOR_REJECT"
	case MsgDisconnect:
		return "DISCONNECT"
	case MsgShuffle:
		return "SHUFFLE"
	case MsgShuffleReply:
		return "SHUFFLE_REPLY"
	default:
		return fmt.Sprintf("type(%d)", uint8(t))
	}
}

// Priority is the urgency of a NEIGHBOR request.
type Priority uint8

// Priorities. The values are the wire encoding.
const (
	// PriorityLow is accepted only into a free slot of the active view.
	PriorityLow Priority = 0
	// PriorityHigh is always accepted, dropping a random active member
	// if the view is full. A node asks with it when its own active view
	// is empty, and at the end of a FORWARD_JOIN walk.
	PriorityHigh Priority = 1
)

func (p Priority) String() string {
	switch p {
	case PriorityLow:
		return "low"
	case PriorityHigh:
		return "high"
	default:
		return fmt.Sprintf("priority(%d)", uint8(p))
	}
}

// Size limits of a message.
const (
	// MaxMessageSize bounds an encoded message. HandleMessage drops
	// anything longer unread.
	MaxMessageSize = 4096

	// MaxShufflePeers bounds the peer list of a SHUFFLE (not counting its
	// origin) and of a SHUFFLE_REPLY.
	MaxShufflePeers = 32

	// MaxTTL bounds the time to live of a FORWARD_JOIN or SHUFFLE walk,
	// and so Config.ARWL and Config.ShuffleTTL.
	MaxTTL = 16

	// maxEncodedLen is the largest message AppendMessage can produce: a
	// SHUFFLE of MaxShufflePeers full peers. A test holds it under
	// MaxMessageSize.
	maxEncodedLen = 1 + 1 + MaxPeerLen + 1 + MaxShufflePeers*MaxPeerLen
)

// Errors of the codec.
var (
	ErrMalformed = errors.New("membership: malformed message")
	ErrBadPeer   = errors.New("membership: bad peer")
)

// Message is one decoded message. Which fields a type uses:
//
//	type             TTL  Priority  Peer             Peers
//	JOIN                            the joiner
//	FORWARD_JOIN     yes            the new node
//	NEIGHBOR              yes       the requester
//	NEIGHBOR_ACCEPT
//	NEIGHBOR_REJECT
//	DISCONNECT
//	SHUFFLE          yes            the origin       sample (0..MaxShufflePeers)
//	SHUFFLE_REPLY                                    sample (0..MaxShufflePeers)
//
// Fields a type does not use must be zero.
type Message struct {
	Type     MsgType
	TTL      uint8
	Priority Priority
	Peer     Peer
	Peers    []Peer
}

// The fields each type carries.
const (
	fieldTTL = 1 << iota
	fieldPriority
	fieldPeer
	fieldPeers
)

func fieldsOf(t MsgType) (int, bool) {
	switch t {
	case MsgJoin:
		return fieldPeer, true
	case MsgForwardJoin:
		return fieldTTL | fieldPeer, true
	case MsgNeighbor:
		return fieldPriority | fieldPeer, true
	case MsgNeighborAccept, MsgNeighborReject, MsgDisconnect:
		return 0, true
	case MsgShuffle:
		return fieldTTL | fieldPeer | fieldPeers, true
	case MsgShuffleReply:
		return fieldPeers, true
	}
	return 0, false
}

// AppendMessage appends the encoding of m to b. It refuses a message that
// ParseMessage would refuse, so what it produces always parses back to m.
func AppendMessage(b []byte, m Message) ([]byte, error) {
	f, ok := fieldsOf(m.Type)
	if !ok {
		return b, fmt.Errorf("%w: unknown type %d", ErrMalformed, uint8(m.Type))
	}
	switch {
	case f&fieldTTL == 0 && m.TTL != 0,
		f&fieldPriority == 0 && m.Priority != 0,
		f&fieldPeer == 0 && (!m.Peer.ID.IsZero() || len(m.Peer.Addrs) > 0 || m.Peer.NoInbound),
		f&fieldPeers == 0 && len(m.Peers) > 0:
		return b, fmt.Errorf("%w: %v carries a field it has no room for", ErrMalformed, m.Type)
	}
	if f&fieldTTL != 0 && m.TTL > MaxTTL {
		return b, fmt.Errorf("%w: TTL %d, at most %d", ErrMalformed, m.TTL, MaxTTL)
	}
	if f&fieldPriority != 0 && m.Priority > PriorityHigh {
		return b, fmt.Errorf("%w: %v", ErrMalformed, m.Priority)
	}
	if f&fieldPeer != 0 {
		if err := m.Peer.validate(); err != nil {
			return b, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	if f&fieldPeers != 0 {
		if len(m.Peers) > MaxShufflePeers {
			return b, fmt.Errorf("%w: %d peers, at most %d", ErrMalformed, len(m.Peers), MaxShufflePeers)
		}
		for _, p := range m.Peers {
			if err := p.validate(); err != nil {
				return b, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
		}
	}

	b = append(b, byte(m.Type))
	if f&fieldTTL != 0 {
		b = append(b, m.TTL)
	}
	if f&fieldPriority != 0 {
		b = append(b, byte(m.Priority))
	}
	if f&fieldPeer != 0 {
		b = appendPeer(b, m.Peer)
	}
	if f&fieldPeers != 0 {
		b = append(b, byte(len(m.Peers)))
		for _, p := range m.Peers {
			b = appendPeer(b, p)
		}
	}
	return b, nil
}

// ParseMessage decodes one whole message. Every error wraps ErrMalformed.
// A message that parses has exactly one encoding: AppendMessage gives back
// the same bytes.
func ParseMessage(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessageSize {
		return m, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(b), MaxMessageSize)
	}
	if len(b) == 0 {
		return m, fmt.Errorf("%w: empty", ErrMalformed)
	}
	m.Type = MsgType(b[0])
	f, ok := fieldsOf(m.Type)
	if !ok {
		return Message{}, fmt.Errorf("%w: unknown type %d", ErrMalformed, b[0])
	}
	b = b[1:]
	if f&fieldTTL != 0 {
		if len(b) < 1 {
			return Message{}, fmt.Errorf("%w: %v: truncated TTL", ErrMalformed, m.Type)
		}
		m.TTL, b = b[0], b[1:]
		if m.TTL > MaxTTL {
			return Message{}, fmt.Errorf("%w: %v: TTL %d, at most %d", ErrMalformed, m.Type, m.TTL, MaxTTL)
		}
	}
	if f&fieldPriority != 0 {
		if len(b) < 1 {
			return Message{}, fmt.Errorf("%w: %v: truncated priority", ErrMalformed, m.Type)
		}
		m.Priority, b = Priority(b[0]), b[1:]
		if m.Priority > PriorityHigh {
			return Message{}, fmt.Errorf("%w: %v: %v", ErrMalformed, m.Type, m.Priority)
		}
	}
	var err error
	if f&fieldPeer != 0 {
		if m.Peer, b, err = parsePeer(b); err != nil {
			return Message{}, fmt.Errorf("%v: %w", m.Type, err)
		}
	}
	if f&fieldPeers != 0 {
		if len(b) < 1 {
			return Message{}, fmt.Errorf("%w: %v: truncated peer count", ErrMalformed, m.Type)
		}
		n := int(b[0])
		b = b[1:]
		if n > MaxShufflePeers {
			return Message{}, fmt.Errorf("%w: %v: %d peers, at most %d", ErrMalformed, m.Type, n, MaxShufflePeers)
		}
		if n > 0 {
			m.Peers = make([]Peer, 0, n)
		}
		for range n {
			var p Peer
			if p, b, err = parsePeer(b); err != nil {
				return Message{}, fmt.Errorf("%v: %w", m.Type, err)
			}
			m.Peers = append(m.Peers, p)
		}
	}
	if len(b) != 0 {
		return Message{}, fmt.Errorf("%w: %v: %d trailing bytes", ErrMalformed, m.Type, len(b))
	}
	return m, nil
}
