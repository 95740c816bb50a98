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
			ip := a.Addr().Unmap()
			switch {
			case ip.Is4():
				body = append(body, 4)
			case ip.Is6() && ip.Zone() == "":
				body = append(body, 6)
			default:
				return b, fmt.Errorf("%w: candidate %v", ErrBadPunch, a)
			}
			body = append(body, ip.AsSlice()...)
			body = binary.BigEndian.AppendUint16(body, a.Port())
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
			if len(rest) < 1 {
				return bad("truncated candidate")
			}
			l := 0
			switch rest[0] {
			case 4:
				l = 4
			case 6:
				l = 16
			default:
				return bad("family %d", rest[0])
			}
			if len(rest) < 1+l+2 {
				return bad("truncated candidate")
			}
			ip, _ := netip.AddrFromSlice(rest[1 : 1+l])
			if l == 16 && ip.Is4In6() {
				return bad("IPv4 in an IPv6 candidate")
			}
			port := binary.BigEndian.Uint16(rest[1+l:])
			if port == 0 || ip.IsUnspecified() {
				return bad("candidate %v:%d", ip, port)
			}
			m.Candidates = append(m.Candidates, netip.AddrPortFrom(ip, port))
			rest = rest[1+l+2:]
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
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return PunchMsg{}, err
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if n == 0 || n > MaxPunchMessage {
		return PunchMsg{}, fmt.Errorf("%w: frame of %d bytes", ErrBadPunch, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return PunchMsg{}, fmt.Errorf("%w: %w", ErrBadPunch, err)
	}
	return ParsePunch(body)
}
