package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Hole-punch coordination travels on streams to the reserved service
// PunchService: the dialer A asks a node R that both it and the target B
// are connected to; R passes A's CONNECT to B on a stream of its own and
// relays the frames that follow between the two streams. Each message is
// one frame: a 2-byte big-endian length (1..MaxPunchMessage), then
//
//	CONNECT  | 1 | node ID (32) | n (1, ≤ MaxPunchCandidates) | n × address |
//	SYNC     | 2 |
//	REFUSED  | 3 | reason (1) |
//
// An address is | family 4 or 6 (1) | IP (4 or 16) | port (2, big endian) |.
// In A's CONNECT to R the ID is the target's; R replaces it with A's (the
// origin it authenticated) before passing it on; B's CONNECT answer
// carries B's own ID.

// PunchService is the service a dialer asks a coordinating node on;
// PunchTargetService the one the coordinating node passes the request to
// the target on.
const (
	PunchService       = "mycelium.punch"
	PunchTargetService = "mycelium.punch.target"
)

// Punch message types.
const (
	PunchConnect = 1
	PunchSync    = 2
	PunchRefused = 3
)

// Reasons in a REFUSED.
const (
	RefusedNoPeer  = 1 // R holds no connection to the target
	RefusedNoPunch = 2 // the target's NAT and ours cannot punch (nat.CanPunch)
	RefusedBusy    = 3 // too many punches at once
)

// MaxPunchCandidates bounds the addresses of a CONNECT; MaxPunchMessage
// bounds a frame.
const (
	MaxPunchCandidates = 8
	MaxPunchMessage    = 1 + 32 + 1 + MaxPunchCandidates*19
)

// PunchOpener is the whole payload of an opener: a raw packet a punching
// node sends from its QUIC socket, with a small time to live, to each of
// the peer's candidates before the simultaneous dial. It is meant to open
// the sender's own NAT and die in the network before the peer's NAT; one
// that arrives says the time to live was too large for that path. Its
// first byte is 0, so quic-go hands it to the non-QUIC reader, and at 9
// bytes it cannot be a STUN message (20-byte header). Read-only.
var PunchOpener = []byte("\x00myc-open")

// IsPunchOpener reports whether b is an opener.
func IsPunchOpener(b []byte) bool { return string(b) == string(PunchOpener) }

// ErrBadPunch is returned for a malformed punch message.
var ErrBadPunch = errors.New("wire: bad punch message")

// PunchMsg is one decoded punch message.
type PunchMsg struct {
	Type       byte
	ID         [32]byte         // CONNECT
	Candidates []netip.AddrPort // CONNECT
	Reason     byte             // REFUSED
}

// AppendPunch appends m as one frame.
func AppendPunch(b []byte, m PunchMsg) ([]byte, error) {
	var body []byte
	switch m.Type {
	case PunchConnect:
		if len(m.Candidates) > MaxPunchCandidates {
			return b, fmt.Errorf("%w: %d candidates, at most %d", ErrBadPunch, len(m.Candidates), MaxPunchCandidates)
		}
		body = append(body, PunchConnect)
		body = append(body, m.ID[:]...)
		body = append(body, byte(len(m.Candidates)))
		for _, a := range m.Candidates {
			var err error
			if body, err = appendAddr(body, a); err != nil {
				return b, fmt.Errorf("%w: candidate: %w", ErrBadPunch, err)
			}
		}
	case PunchSync:
		body = []byte{PunchSync}
	case PunchRefused:
		body = []byte{PunchRefused, m.Reason}
	default:
		return b, fmt.Errorf("%w: type %d", ErrBadPunch, m.Type)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...), nil
}

// ParsePunch decodes one message body (a frame without its length).
func ParsePunch(body []byte) (PunchMsg, error) {
	bad := func(format string, a ...any) (PunchMsg, error) {
		return PunchMsg{}, fmt.Errorf("%w: "+format, append([]any{ErrBadPunch}, a...)...)
	}
	if len(body) == 0 || len(body) > MaxPunchMessage {
		return bad("%d bytes", len(body))
	}
	m := PunchMsg{Type: body[0]}
	rest := body[1:]
	switch m.Type {
	case PunchConnect:
		if len(rest) < 33 {
			return bad("short CONNECT")
		}
		copy(m.ID[:], rest[:32])
		n := int(rest[32])
		rest = rest[33:]
		if n > MaxPunchCandidates {
			return bad("%d candidates", n)
		}
		for range n {
			a, r, err := parseAddr(rest)
			if err != nil {
				return bad("candidate: %v", err)
			}
			m.Candidates = append(m.Candidates, a)
			rest = r
		}
	case PunchSync:
	case PunchRefused:
		if len(rest) != 1 {
			return bad("REFUSED of %d bytes", len(body))
		}
		m.Reason = rest[0]
		rest = nil
	default:
		return bad("type %d", m.Type)
	}
	if len(rest) != 0 {
		return bad("%d trailing bytes", len(rest))
	}
	return m, nil
}

// ReadPunch reads one frame from r and decodes it.
func ReadPunch(r io.Reader) (PunchMsg, error) {
	body, err := readFrame(r, MaxPunchMessage, ErrBadPunch)
	if err != nil {
		return PunchMsg{}, err
	}
	return ParsePunch(body)
}
