package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Circuits (package circuit) are set up hop by hop on streams to the
// reserved service CircuitService: the previous hop opens a stream to the
// next one and sends CREATE; the next hop answers on the same stream with
// CREATED or REFUSED, and either side may later send DESTROY. Each
// message is one frame: a 2-byte big-endian length (1..MaxCircuitMessage),
// then
//
//	CREATE  | 1 | circuit ID (4) | onion (CircuitOnionSize) |
//	CREATED | 2 | circuit ID (4) | confirmation (MinCircuitConfirm..MaxCircuitConfirm) |
//	REFUSED | 3 | circuit ID (4) | reason (1) |
//	DESTROY | 4 | circuit ID (4) | reason (1) |
//
// A circuit ID is big endian and never 0; it is chosen by the sender of
// CREATE and names the circuit on that one hop link only. The
// confirmation is the terminal's setup confirmation, a backward data
// packet (circuit.Terminal.Created) with each relay's layer applied. A
// reason is any nonzero byte: the Reason constants below, or one a newer
// node added, which ReasonString names by number.
//
// Data travels in QUIC DATAGRAM frames on each hop link, one circuit
// packet per datagram, with no length prefix:
//
//	| CircuitDataType (1) | circuit ID (4) | packet (MinCircuitPacket..MaxCircuitPacket) |
//
// The circuit ID is the one the receiving side knows the circuit by on
// that link, so the same packet carries a different ID on every hop.
//
// One other datagram travels on links: the one byte LinkNudge, sent on
// every link when the sender's local address changed, so that the peer
// sees a packet from the new address and moves the link there (RFC 9000
// §9.3) before a circuit needs it. It carries nothing and is dropped.

// CircuitService is the service setup streams are opened to.
const CircuitService = "mycelium.circuit"

// Circuit setup message types.
const (
	CircuitCreate  = 1
	CircuitCreated = 2
	CircuitRefused = 3
	CircuitDestroy = 4
)

// Sizes of circuit messages. CircuitOnionSize must equal
// circuit.OnionSize (32 + 16 + 5*128); wire does not import circuit, so
// the equality is asserted where both are imported.
const (
	// CircuitOnionSize is the size of the onion in a CREATE.
	CircuitOnionSize = 688
	// MinCircuitConfirm and MaxCircuitConfirm bound the confirmation in a
	// CREATED.
	MinCircuitConfirm = 16
	MaxCircuitConfirm = 64
	// MaxCircuitMessage bounds a setup frame: a CREATE is the largest.
	MaxCircuitMessage = 1 + 4 + CircuitOnionSize
	// MinCircuitPacket and MaxCircuitPacket bound the packet of a data
	// datagram: circuit.Overhead and circuit.Overhead+circuit.MaxPayload.
	MinCircuitPacket = 32
	MaxCircuitPacket = MinCircuitPacket + 1400
	// CircuitDataHeader is what a data datagram adds to its packet: the
	// type byte and the circuit ID.
	CircuitDataHeader = 5
	// MaxCircuitData bounds a whole data datagram.
	MaxCircuitData = CircuitDataHeader + MaxCircuitPacket
)

// CircuitDataType is the first byte of a circuit data datagram.
const CircuitDataType = 0xC1

// LinkNudge is the whole of a nudge datagram (see above).
const LinkNudge = 0xC2

// IsLinkNudge reports whether the datagram d is a nudge.
func IsLinkNudge(d []byte) bool { return len(d) == 1 && d[0] == LinkNudge }

// Reasons in a REFUSED or DESTROY. Zero is no reason and never sent.
const (
	// ReasonNone is the zero value: no refusal. It is not valid on the
	// wire.
	ReasonNone = 0
	// ReasonCapacity: the relay carries its maximum number of circuits.
	ReasonCapacity = 1
	// ReasonPeerLimit: the previous hop already has its maximum number
	// of circuits through this relay.
	ReasonPeerLimit = 2
	// ReasonNotAllowed: the previous hop is not on the relay's
	// allow-list.
	ReasonNotAllowed = 3
	// ReasonDraining: the relay is shutting down and takes no new
	// circuits; in a DESTROY, its drain time ran out.
	ReasonDraining = 4
	// ReasonNoRoute: the relay has no link to the next hop, or lost it.
	ReasonNoRoute = 5
	// ReasonBadOnion: the onion did not peel (bad MAC, malformed block).
	ReasonBadOnion = 6
	// ReasonReplay: the onion was already seen, or was created too long
	// ago (or too far ahead).
	ReasonReplay = 7
	// ReasonIdle: no packet passed either way for the idle timeout.
	ReasonIdle = 8
	// ReasonClosed: an end, or the hop sending it, closed the circuit.
	ReasonClosed = 9
	// ReasonMemory: admitting the circuit would exceed the relay's
	// memory bound.
	ReasonMemory = 10
	// ReasonDuplicateID: the previous hop used a circuit ID it already
	// has open on this link.
	ReasonDuplicateID = 11
)

// reasonNames are the stable short names of the known reasons.
var reasonNames = [...]string{
	ReasonNone:        "none",
	ReasonCapacity:    "capacity",
	ReasonPeerLimit:   "peer-limit",
	ReasonNotAllowed:  "not-allowed",
	ReasonDraining:    "draining",
	ReasonNoRoute:     "no-route",
	ReasonBadOnion:    "bad-onion",
	ReasonReplay:      "replay",
	ReasonIdle:        "idle",
	ReasonClosed:      "closed",
	ReasonMemory:      "memory",
	ReasonDuplicateID: "duplicate-id",
}

// ReasonString returns a short stable name for r, such as "capacity";
// an unknown reason is named "reason-" and its number.
func ReasonString(r byte) string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason-" + strconv.Itoa(int(r))
}

// ErrBadCircuit is returned for a malformed circuit message or data
// datagram.
var ErrBadCircuit = errors.New("wire: bad circuit message")

// CircuitMsg is one decoded setup message.
type CircuitMsg struct {
	Type    byte
	ID      uint32 // every type; never 0
	Onion   []byte // CREATE: CircuitOnionSize bytes
	Confirm []byte // CREATED: MinCircuitConfirm..MaxCircuitConfirm bytes
	Reason  byte   // REFUSED, DESTROY: nonzero
}

// AppendCircuitMsg appends m as one frame. It checks the sizes and values
// ParseCircuitMsg checks, so what it encodes always parses.
func AppendCircuitMsg(b []byte, m CircuitMsg) ([]byte, error) {
	if m.ID == 0 {
		return b, fmt.Errorf("%w: circuit ID 0", ErrBadCircuit)
	}
	var tail []byte
	switch m.Type {
	case CircuitCreate:
		if len(m.Onion) != CircuitOnionSize {
			return b, fmt.Errorf("%w: onion of %d bytes, want %d", ErrBadCircuit, len(m.Onion), CircuitOnionSize)
		}
		tail = m.Onion
	case CircuitCreated:
		if len(m.Confirm) < MinCircuitConfirm || len(m.Confirm) > MaxCircuitConfirm {
			return b, fmt.Errorf("%w: confirmation of %d bytes, want %d..%d", ErrBadCircuit, len(m.Confirm), MinCircuitConfirm, MaxCircuitConfirm)
		}
		tail = m.Confirm
	case CircuitRefused, CircuitDestroy:
		if m.Reason == ReasonNone {
			return b, fmt.Errorf("%w: reason 0", ErrBadCircuit)
		}
		tail = []byte{m.Reason}
	default:
		return b, fmt.Errorf("%w: type %d", ErrBadCircuit, m.Type)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(1+4+len(tail)))
	b = append(b, m.Type)
	b = binary.BigEndian.AppendUint32(b, m.ID)
	return append(b, tail...), nil
}

// ParseCircuitMsg decodes one message body (a frame without its length).
// Onion and Confirm alias body.
func ParseCircuitMsg(body []byte) (CircuitMsg, error) {
	bad := func(format string, a ...any) (CircuitMsg, error) {
		return CircuitMsg{}, fmt.Errorf("%w: "+format, append([]any{ErrBadCircuit}, a...)...)
	}
	if len(body) < 1+4 || len(body) > MaxCircuitMessage {
		return bad("%d bytes", len(body))
	}
	m := CircuitMsg{Type: body[0], ID: binary.BigEndian.Uint32(body[1:5])}
	rest := body[5:]
	if m.ID == 0 {
		return bad("circuit ID 0")
	}
	switch m.Type {
	case CircuitCreate:
		if len(rest) != CircuitOnionSize {
			return bad("onion of %d bytes, want %d", len(rest), CircuitOnionSize)
		}
		m.Onion = rest
	case CircuitCreated:
		if len(rest) < MinCircuitConfirm || len(rest) > MaxCircuitConfirm {
			return bad("confirmation of %d bytes, want %d..%d", len(rest), MinCircuitConfirm, MaxCircuitConfirm)
		}
		m.Confirm = rest
	case CircuitRefused, CircuitDestroy:
		if len(rest) != 1 {
			return bad("reason of %d bytes", len(rest))
		}
		if rest[0] == ReasonNone {
			return bad("reason 0")
		}
		m.Reason = rest[0]
	default:
		return bad("type %d", m.Type)
	}
	return m, nil
}

// ReadCircuitMsg reads one frame from r and decodes it. The message owns
// its bytes. A clean end before the frame is returned as io.EOF.
func ReadCircuitMsg(r io.Reader) (CircuitMsg, error) {
	body, err := readFrame(r, MaxCircuitMessage, ErrBadCircuit)
	if err != nil {
		return CircuitMsg{}, err
	}
	return ParseCircuitMsg(body)
}

// AppendCircuitData appends one data datagram carrying pkt on the
// circuit cid. It refuses a zero cid and a packet outside
// MinCircuitPacket..MaxCircuitPacket bytes.
func AppendCircuitData(b []byte, cid uint32, pkt []byte) ([]byte, error) {
	if cid == 0 {
		return b, fmt.Errorf("%w: circuit ID 0", ErrBadCircuit)
	}
	if len(pkt) < MinCircuitPacket || len(pkt) > MaxCircuitPacket {
		return b, fmt.Errorf("%w: packet of %d bytes, want %d..%d", ErrBadCircuit, len(pkt), MinCircuitPacket, MaxCircuitPacket)
	}
	b = append(b, CircuitDataType)
	b = binary.BigEndian.AppendUint32(b, cid)
	return append(b, pkt...), nil
}

// ParseCircuitData decodes one data datagram d. pkt aliases d, so a
// relay can apply its layer to pkt in place and then relabel d for the
// next link without copying: AppendCircuitData(d[:0], nextCID, pkt)
// rewrites only the ID.
func ParseCircuitData(d []byte) (cid uint32, pkt []byte, err error) {
	if len(d) < CircuitDataHeader+MinCircuitPacket || len(d) > MaxCircuitData {
		return 0, nil, fmt.Errorf("%w: datagram of %d bytes, want %d..%d", ErrBadCircuit, len(d), CircuitDataHeader+MinCircuitPacket, MaxCircuitData)
	}
	if d[0] != CircuitDataType {
		return 0, nil, fmt.Errorf("%w: datagram type %#x", ErrBadCircuit, d[0])
	}
	cid = binary.BigEndian.Uint32(d[1:CircuitDataHeader])
	if cid == 0 {
		return 0, nil, fmt.Errorf("%w: circuit ID 0", ErrBadCircuit)
	}
	return cid, d[CircuitDataHeader:], nil
}
