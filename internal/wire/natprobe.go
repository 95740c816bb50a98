package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// NAT filtering probes. A node behind a NAT learns how its NAT filters by
// having packets sent to its reflexive address from endpoints it has never
// sent to. It asks a node F it holds a connection to (NATProbeService);
// F picks a node D that fits and tells it to send (NATProbeSendService);
// D sends one STUN Binding request with the asker's transaction ID. Each
// message is one frame: a 2-byte big-endian length, then
//
//	REQUEST | 1 | mode (1) | tx (12) | target address | n (1, ≤ MaxProbeExclude) | n × address |
//	SEND    | 2 | tx (12) | target address |
//	REPLY   | 3 | status (1) | [sender address] |
//
// A REPLY with status ProbeSent may name the address the sender D sends
// from: the asker then avoids D as a STUN observer for a while, since a
// packet D sent unasked can leave state in the asker's NAT that changes
// how it maps the asker's own packets to D (a Linux conntrack collision).
//
// with addresses as in punch.go. Mode ProbeOtherIP asks for a sender whose
// IP is none of the excluded addresses' IPs; ProbeOtherPort for a sender
// on one of their IPs at a port not excluded.

// NAT probe services.
const (
	NATProbeService     = "mycelium.natprobe"
	NATProbeSendService = "mycelium.natprobe.send"
)

// NAT probe message types, modes and reply statuses.
const (
	ProbeRequest = 1
	ProbeSend    = 2
	ProbeReply   = 3

	ProbeOtherIP   = 1
	ProbeOtherPort = 2

	ProbeSent        = 0 // a sender was told to send
	ProbeNoCandidate = 1 // no connected node fits the mode
	ProbeRefused     = 2 // bad target, or rate limited
)

// MaxProbeExclude bounds the excluded addresses of a REQUEST.
const MaxProbeExclude = 32

// MaxProbeMessage bounds a NAT probe frame.
const MaxProbeMessage = 1 + 1 + 12 + 19 + 1 + MaxProbeExclude*19

// ErrBadProbe is returned for a malformed NAT probe message.
var ErrBadProbe = errors.New("wire: bad NAT probe message")

// ProbeMsg is one decoded NAT probe message.
type ProbeMsg struct {
	Type    byte
	Mode    byte             // REQUEST
	Tx      [12]byte         // REQUEST, SEND
	Target  netip.AddrPort   // REQUEST, SEND
	Exclude []netip.AddrPort // REQUEST
	Status  byte             // REPLY
	Sender  netip.AddrPort   // REPLY with ProbeSent: the sender's address, if known
}

// appendAddr appends one address: | family 4 or 6 | IP (4 or 16) |
// port (2, big endian) |. Callers wrap its error in their own sentinel.
func appendAddr(b []byte, a netip.AddrPort) ([]byte, error) {
	ip := a.Addr().Unmap()
	switch {
	case ip.Is4():
		b = append(b, 4)
	case ip.Is6() && ip.Zone() == "":
		b = append(b, 6)
	default:
		return b, fmt.Errorf("address %v", a)
	}
	b = append(b, ip.AsSlice()...)
	return binary.BigEndian.AppendUint16(b, a.Port()), nil
}

// parseAddr reads one address; it refuses port 0, unspecified and
// IPv4-in-IPv6 addresses.
func parseAddr(b []byte) (netip.AddrPort, []byte, error) {
	if len(b) < 1 {
		return netip.AddrPort{}, nil, errors.New("truncated address")
	}
	l := 0
	switch b[0] {
	case 4:
		l = 4
	case 6:
		l = 16
	default:
		return netip.AddrPort{}, nil, fmt.Errorf("family %d", b[0])
	}
	if len(b) < 1+l+2 {
		return netip.AddrPort{}, nil, errors.New("truncated address")
	}
	ip, _ := netip.AddrFromSlice(b[1 : 1+l])
	port := binary.BigEndian.Uint16(b[1+l:])
	if (l == 16 && ip.Is4In6()) || ip.IsUnspecified() || port == 0 {
		return netip.AddrPort{}, nil, fmt.Errorf("address %v:%d", ip, port)
	}
	return netip.AddrPortFrom(ip, port), b[1+l+2:], nil
}

// AppendProbe appends m as one frame.
func AppendProbe(b []byte, m ProbeMsg) ([]byte, error) {
	body := []byte{m.Type}
	var err error
	switch m.Type {
	case ProbeRequest:
		if m.Mode != ProbeOtherIP && m.Mode != ProbeOtherPort {
			return b, fmt.Errorf("%w: mode %d", ErrBadProbe, m.Mode)
		}
		if len(m.Exclude) > MaxProbeExclude {
			return b, fmt.Errorf("%w: %d excluded addresses", ErrBadProbe, len(m.Exclude))
		}
		body = append(body, m.Mode)
		body = append(body, m.Tx[:]...)
		if body, err = appendAddr(body, m.Target); err != nil {
			return b, fmt.Errorf("%w: %w", ErrBadProbe, err)
		}
		body = append(body, byte(len(m.Exclude)))
		for _, a := range m.Exclude {
			if body, err = appendAddr(body, a); err != nil {
				return b, fmt.Errorf("%w: %w", ErrBadProbe, err)
			}
		}
	case ProbeSend:
		body = append(body, m.Tx[:]...)
		if body, err = appendAddr(body, m.Target); err != nil {
			return b, fmt.Errorf("%w: %w", ErrBadProbe, err)
		}
	case ProbeReply:
		body = append(body, m.Status)
		if m.Sender.IsValid() {
			if m.Status != ProbeSent {
				return b, fmt.Errorf("%w: a sender in a REPLY of status %d", ErrBadProbe, m.Status)
			}
			if body, err = appendAddr(body, m.Sender); err != nil {
				return b, fmt.Errorf("%w: %w", ErrBadProbe, err)
			}
		}
	default:
		return b, fmt.Errorf("%w: type %d", ErrBadProbe, m.Type)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...), nil
}

// ParseProbe decodes one message body (a frame without its length).
func ParseProbe(body []byte) (ProbeMsg, error) {
	bad := func(format string, a ...any) (ProbeMsg, error) {
		return ProbeMsg{}, fmt.Errorf("%w: "+format, append([]any{ErrBadProbe}, a...)...)
	}
	if len(body) == 0 || len(body) > MaxProbeMessage {
		return bad("%d bytes", len(body))
	}
	m := ProbeMsg{Type: body[0]}
	rest := body[1:]
	var err error
	switch m.Type {
	case ProbeRequest:
		if len(rest) < 13 {
			return bad("short REQUEST")
		}
		m.Mode = rest[0]
		if m.Mode != ProbeOtherIP && m.Mode != ProbeOtherPort {
			return bad("mode %d", m.Mode)
		}
		copy(m.Tx[:], rest[1:13])
		if m.Target, rest, err = parseAddr(rest[13:]); err != nil {
			return bad("target: %v", err)
		}
		if len(rest) < 1 || int(rest[0]) > MaxProbeExclude {
			return bad("exclude count")
		}
		n := int(rest[0])
		rest = rest[1:]
		for range n {
			var a netip.AddrPort
			if a, rest, err = parseAddr(rest); err != nil {
				return bad("exclude: %v", err)
			}
			m.Exclude = append(m.Exclude, a)
		}
	case ProbeSend:
		if len(rest) < 12 {
			return bad("short SEND")
		}
		copy(m.Tx[:], rest[:12])
		if m.Target, rest, err = parseAddr(rest[12:]); err != nil {
			return bad("target: %v", err)
		}
	case ProbeReply:
		if len(rest) < 1 || rest[0] > ProbeRefused {
			return bad("REPLY")
		}
		m.Status = rest[0]
		rest = rest[1:]
		if len(rest) > 0 {
			if m.Status != ProbeSent {
				return bad("a sender in a REPLY of status %d", m.Status)
			}
			if m.Sender, rest, err = parseAddr(rest); err != nil {
				return bad("sender: %v", err)
			}
		}
	default:
		return bad("type %d", m.Type)
	}
	if len(rest) != 0 {
		return bad("%d trailing bytes", len(rest))
	}
	return m, nil
}

// ReadProbe reads one frame from r and decodes it.
func ReadProbe(r io.Reader) (ProbeMsg, error) {
	body, err := readFrame(r, MaxProbeMessage, ErrBadProbe)
	if err != nil {
		return ProbeMsg{}, err
	}
	return ParseProbe(body)
}

// readFrame reads one frame of the punch and NAT probe streams: a 2-byte
// big-endian length (1..max), then the body. A clean end before the frame
// is returned as is (io.EOF); anything else wraps bad.
func readFrame(r io.Reader, max int, bad error) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(h[:]))
	if n == 0 || n > max {
		return nil, fmt.Errorf("%w: frame of %d bytes", bad, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("%w: %w", bad, err)
	}
	return body, nil
}
