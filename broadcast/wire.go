package broadcast

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Wire limits. A message longer than MaxMessageSize is refused before it is
// parsed; the others bound single fields.
const (
	// MaxTopicLen bounds a topic name in bytes (at least 1).
	MaxTopicLen = 64
	// MaxPayload bounds a GOSSIP payload in bytes: 64 KiB. Config.MaxPayload
	// may lower it, never raise it.
	MaxPayload = 64 << 10
	// MaxIHaveBatch bounds the announcements in one IHAVE message.
	// Config.MaxIHaveBatch may lower it.
	MaxIHaveBatch = 1024
	// MaxMessageSize bounds a whole encoded message: 70 KiB, room for the
	// largest GOSSIP (gossipHeaderLen + MaxTopicLen + MaxPayload) and the
	// largest IHAVE with slack to spare.
	MaxMessageSize = 70 << 10
)

// Field sizes.
const (
	roundLen        = 2
	seqLen          = 8
	payloadLenLen   = 4
	ihaveCountLen   = 2
	announcementLen = MessageIDLen + roundLen
	// gossipHeaderLen is a GOSSIP without its topic and payload bytes.
	gossipHeaderLen = 1 + roundLen + identity.IDLen + seqLen + 1 + payloadLenLen
	// ihaveHeaderLen is an IHAVE without its announcements.
	ihaveHeaderLen = 1 + ihaveCountLen
	// graftLinkLen is a GRAFT that asks for no message.
	graftLinkLen = 2
	// graftIDLen is a GRAFT that asks for one message.
	graftIDLen = graftLinkLen + announcementLen
	pruneLen   = 1
)

// The largest encodings fit in MaxMessageSize.
var (
	_ [MaxMessageSize - (gossipHeaderLen + MaxTopicLen + MaxPayload)]struct{}
	_ [MaxMessageSize - (ihaveHeaderLen + MaxIHaveBatch*announcementLen)]struct{}
)

// MsgType is the first byte of every message.
type MsgType byte

// Message types.
const (
	TypeGossip MsgType = 1 // a payload, eagerly pushed
	TypeIHave  MsgType = 2 // announcements of payloads, lazily pushed
	TypeGraft  MsgType = 3 // "make this link eager (and send me that message)"
	TypePrune  MsgType = 4 // "make this link lazy"
)

func (t MsgType) String() string {
	switch t {
	case TypeGossip:
		return "GOSSIP"
	case TypeIHave:
		return "IHAVE"
	case TypeGraft:
		return "GRAFT"
	case TypePrune:
		return "PRUNE"
	default:
		return fmt.Sprintf("type %d", byte(t))
	}
}

// Errors from the codec and from Broadcast.
var (
	ErrMalformed       = errors.New("broadcast: malformed message")
	ErrTooLarge        = errors.New("broadcast: message too large")
	ErrBadTopic        = errors.New("broadcast: bad topic")
	ErrPayloadTooLarge = errors.New("broadcast: payload too large")
)

// Message is one of Gossip, IHave, Graft or Prune.
type Message interface {
	Type() MsgType
}

// Gossip carries a payload. Round is the number of overlay hops the message
// will have travelled when the receiver gets it: the origin sends round 1.
type Gossip struct {
	Round   uint16
	Origin  identity.NodeID
	Seq     uint64
	Topic   string
	Payload []byte
}

// ID returns the message's MessageID, computed from its content.
func (g Gossip) ID() MessageID { return ComputeMessageID(g.Origin, g.Seq, g.Topic, g.Payload) }

// Announcement names one message a lazy peer could send: Round is the round
// the receiver would be at if it got the message from the announcer.
type Announcement struct {
	ID    MessageID
	Round uint16
}

// IHave announces 1..MaxIHaveBatch messages.
type IHave struct {
	Announcements []Announcement
}

// Graft asks the receiver to make the link eager. With HasID, it also asks
// for the message ID, which was announced at Round. Without it (the tree
// optimisation's GRAFT, the paper's GRAFT(null)) it asks for nothing.
type Graft struct {
	HasID bool
	ID    MessageID
	Round uint16
}

// Prune asks the receiver to make the link lazy.
type Prune struct{}

// Type implements Message.
func (Gossip) Type() MsgType { return TypeGossip }

// Type implements Message.
func (IHave) Type() MsgType { return TypeIHave }

// Type implements Message.
func (Graft) Type() MsgType { return TypeGraft }

// Type implements Message.
func (Prune) Type() MsgType { return TypePrune }

// ValidateTopic reports whether topic may name a broadcast topic: 1 to
// MaxTopicLen bytes of printable ASCII other than space (0x21..0x7e).
func ValidateTopic(topic string) error {
	if len(topic) == 0 || len(topic) > MaxTopicLen {
		return fmt.Errorf("%w: %d bytes, want 1..%d", ErrBadTopic, len(topic), MaxTopicLen)
	}
	for i := 0; i < len(topic); i++ {
		if c := topic[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: byte %d is 0x%02x, want printable ASCII without space", ErrBadTopic, i, c)
		}
	}
	return nil
}

// AppendMessage appends the encoding of m to b. It refuses messages that
// ParseMessage would refuse, so whatever it returns parses back to m.
func AppendMessage(b []byte, m Message) ([]byte, error) {
	switch m := m.(type) {
	case Gossip:
		return appendGossip(b, &m)
	case *Gossip:
		if m != nil {
			return appendGossip(b, m)
		}
	case IHave:
		return appendIHave(b, &m)
	case *IHave:
		if m != nil {
			return appendIHave(b, m)
		}
	case Graft:
		return appendGraft(b, &m)
	case *Graft:
		if m != nil {
			return appendGraft(b, m)
		}
	case Prune, *Prune:
		return append(b, byte(TypePrune)), nil
	}
	return b, fmt.Errorf("%w: no message (%T)", ErrMalformed, m)
}

func appendGossip(b []byte, g *Gossip) ([]byte, error) {
	if g.Round == 0 {
		return b, fmt.Errorf("%w: round 0", ErrMalformed)
	}
	if g.Origin.IsZero() {
		return b, fmt.Errorf("%w: zero origin", ErrMalformed)
	}
	if err := ValidateTopic(g.Topic); err != nil {
		return b, err
	}
	if len(g.Payload) > MaxPayload {
		return b, fmt.Errorf("%w: %d bytes, at most %d", ErrPayloadTooLarge, len(g.Payload), MaxPayload)
	}
	b = append(b, byte(TypeGossip))
	b = binary.BigEndian.AppendUint16(b, g.Round)
	b = append(b, g.Origin[:]...)
	b = binary.BigEndian.AppendUint64(b, g.Seq)
	b = append(b, byte(len(g.Topic)))
	b = append(b, g.Topic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(g.Payload)))
	return append(b, g.Payload...), nil
}

func appendIHave(b []byte, h *IHave) ([]byte, error) {
	n := len(h.Announcements)
	if n == 0 || n > MaxIHaveBatch {
		return b, fmt.Errorf("%w: %d announcements, want 1..%d", ErrMalformed, n, MaxIHaveBatch)
	}
	b = append(b, byte(TypeIHave))
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, a := range h.Announcements {
		if a.Round == 0 {
			return b, fmt.Errorf("%w: announcement with round 0", ErrMalformed)
		}
		b = append(b, a.ID[:]...)
		b = binary.BigEndian.AppendUint16(b, a.Round)
	}
	return b, nil
}

func appendGraft(b []byte, g *Graft) ([]byte, error) {
	if !g.HasID {
		if g.ID != (MessageID{}) || g.Round != 0 {
			return b, fmt.Errorf("%w: link-only GRAFT with an ID or round", ErrMalformed)
		}
		return append(b, byte(TypeGraft), 0), nil
	}
	if g.Round == 0 {
		return b, fmt.Errorf("%w: GRAFT with round 0", ErrMalformed)
	}
	b = append(b, byte(TypeGraft), 1)
	b = append(b, g.ID[:]...)
	return binary.BigEndian.AppendUint16(b, g.Round), nil
}

// ParseMessage decodes one whole message. It refuses trailing bytes, so the
// encoding of a parsed message is the input again. A GOSSIP payload aliases
// b; copy it to keep it past b's lifetime.
func ParseMessage(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	switch MsgType(b[0]) {
	case TypeGossip:
		return parseGossip(b)
	case TypeIHave:
		return parseIHave(b)
	case TypeGraft:
		return parseGraft(b)
	case TypePrune:
		if len(b) != pruneLen {
			return nil, fmt.Errorf("%w: PRUNE of %d bytes, want %d", ErrMalformed, len(b), pruneLen)
		}
		return Prune{}, nil
	default:
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, b[0])
	}
}

func parseGossip(b []byte) (Message, error) {
	if len(b) < gossipHeaderLen {
		return nil, fmt.Errorf("%w: GOSSIP of %d bytes, at least %d", ErrMalformed, len(b), gossipHeaderLen)
	}
	var g Gossip
	p := 1
	g.Round = binary.BigEndian.Uint16(b[p:])
	p += roundLen
	copy(g.Origin[:], b[p:])
	p += identity.IDLen
	g.Seq = binary.BigEndian.Uint64(b[p:])
	p += seqLen
	tl := int(b[p])
	p++
	if g.Round == 0 {
		return nil, fmt.Errorf("%w: GOSSIP round 0", ErrMalformed)
	}
	if g.Origin.IsZero() {
		return nil, fmt.Errorf("%w: GOSSIP from the zero origin", ErrMalformed)
	}
	if len(b) < gossipHeaderLen+tl {
		return nil, fmt.Errorf("%w: GOSSIP topic truncated", ErrMalformed)
	}
	g.Topic = string(b[p : p+tl])
	p += tl
	if err := ValidateTopic(g.Topic); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	pl := binary.BigEndian.Uint32(b[p:])
	p += payloadLenLen
	if pl > MaxPayload {
		return nil, fmt.Errorf("%w: GOSSIP payload of %d bytes, at most %d", ErrTooLarge, pl, MaxPayload)
	}
	if uint64(len(b)-p) != uint64(pl) {
		return nil, fmt.Errorf("%w: GOSSIP payload length %d, %d bytes follow", ErrMalformed, pl, len(b)-p)
	}
	g.Payload = b[p:len(b):len(b)]
	return g, nil
}

func parseIHave(b []byte) (Message, error) {
	if len(b) < ihaveHeaderLen {
		return nil, fmt.Errorf("%w: IHAVE of %d bytes", ErrMalformed, len(b))
	}
	n := int(binary.BigEndian.Uint16(b[1:]))
	if n == 0 || n > MaxIHaveBatch {
		return nil, fmt.Errorf("%w: IHAVE with %d announcements, want 1..%d", ErrMalformed, n, MaxIHaveBatch)
	}
	if len(b) != ihaveHeaderLen+n*announcementLen {
		return nil, fmt.Errorf("%w: IHAVE of %d bytes, want %d for %d announcements", ErrMalformed, len(b), ihaveHeaderLen+n*announcementLen, n)
	}
	h := IHave{Announcements: make([]Announcement, n)}
	p := ihaveHeaderLen
	for i := range h.Announcements {
		a := &h.Announcements[i]
		copy(a.ID[:], b[p:])
		a.Round = binary.BigEndian.Uint16(b[p+MessageIDLen:])
		if a.Round == 0 {
			return nil, fmt.Errorf("%w: IHAVE announcement %d with round 0", ErrMalformed, i)
		}
		p += announcementLen
	}
	return h, nil
}

func parseGraft(b []byte) (Message, error) {
	if len(b) < graftLinkLen {
		return nil, fmt.Errorf("%w: GRAFT of %d bytes", ErrMalformed, len(b))
	}
	switch b[1] {
	case 0:
		if len(b) != graftLinkLen {
			return nil, fmt.Errorf("%w: link-only GRAFT of %d bytes, want %d", ErrMalformed, len(b), graftLinkLen)
		}
		return Graft{}, nil
	case 1:
		if len(b) != graftIDLen {
			return nil, fmt.Errorf("%w: GRAFT of %d bytes, want %d", ErrMalformed, len(b), graftIDLen)
		}
		g := Graft{HasID: true}
		copy(g.ID[:], b[2:])
		g.Round = binary.BigEndian.Uint16(b[2+MessageIDLen:])
		if g.Round == 0 {
			return nil, fmt.Errorf("%w: GRAFT round 0", ErrMalformed)
		}
		return g, nil
	default:
		return nil, fmt.Errorf("%w: GRAFT flag %d, want 0 or 1", ErrMalformed, b[1])
	}
}
