package transport

import (
	"errors"
	"fmt"
	"net"
)

// ErrTTLUnsupported: this socket cannot send a packet with its own time to
// live (not Linux, or a PacketConn that offers no WriteToTTL).
var ErrTTLUnsupported = errors.New("transport: this socket cannot set a packet's time to live")

// ttlWriter is a PacketConn that sends one packet with a given time to
// live: the network lab's sockets.
type ttlWriter interface {
	WriteToTTL(b []byte, addr net.Addr, ttl int) (int, error)
}

// WriteToTTL sends a raw (non-QUIC) packet from the node's socket with
// its IP time to live (IPv6 hop limit) set to ttl, 1-255, leaving the
// socket's default for every other packet. Hole punching uses it for
// packets that open the node's own NAT and die before the peer's.
func (t *Transport) WriteToTTL(b []byte, addr net.Addr, ttl int) (int, error) {
	if ttl < 1 || ttl > 255 {
		return 0, fmt.Errorf("transport: time to live %d: want 1-255", ttl)
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, fmt.Errorf("transport: write to %v: not a UDP address", addr)
	}
	switch c := t.pconn.(type) {
	case ttlWriter:
		return c.WriteToTTL(b, addr, ttl)
	case *net.UDPConn:
		return writeToTTL(c, b, ua, ttl)
	}
	return 0, ErrTTLUnsupported
}
