package netlab

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
)

// Ephemeral ports, as Linux's default net.ipv4.ip_local_port_range.
const (
	ephemeralMin = 32768
	ephemeralMax = 60999
)

// Host is a machine with one address on one network: the public network,
// or the private side of a NAT router. It binds sockets with ListenPacket.
type Host struct {
	net  *Network
	addr netip.Addr
	name string
	seg  *segment

	// Guarded by net.mu.
	link      Link
	rands     flowRands  // loss and jitter on its link, per flow
	ephemeral *rand.Rand // its ephemeral port choices
	conns     map[uint16]*Conn
}

// Addr returns the host's address on its network.
func (h *Host) Addr() netip.Addr {
	h.net.mu.Lock()
	defer h.net.mu.Unlock()
	return h.addr
}

// MoveTo moves the host to another network, as a laptop that changes
// networks: onto the private side of nat, or onto the internet when nat
// is nil, with the address addr there. Its sockets stay open with their
// ports, as sockets bound to a wildcard address do, and each reports the
// new address from now on (LocalAddr). Datagrams on their way to the old
// address are lost, and the old router's mappings for it lead nowhere.
// Its link and its name stay as they were.
func (h *Host) MoveTo(nat *NAT, addr netip.Addr) error {
	n := h.net
	seg := n.internet
	if nat != nil {
		if nat.net != n {
			return fmt.Errorf("%w: MoveTo a router of another network", ErrBadConfig)
		}
		seg = nat.inside
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := seg.claimLocked(addr); err != nil {
		return err
	}
	delete(h.seg.members, h.addr)
	seg.members[addr] = h
	h.seg, h.addr = seg, addr
	for port, c := range h.conns {
		c.moveLocked(netip.AddrPortFrom(addr, port))
	}
	return nil
}

// String returns the host's name: its address, after the public addresses
// of the NAT routers in front of it ("198.51.100.1/192.168.1.10").
func (h *Host) String() string { return h.name }

// Link returns the host's access link as it is now.
func (h *Host) Link() Link {
	h.net.mu.Lock()
	defer h.net.mu.Unlock()
	return h.link
}

// SetLink replaces the link between the host and its network. It applies
// to datagrams that start crossing the link from now on; those already on
// it keep their fate. A link with Loss 1 cuts the host off.
func (h *Host) SetLink(l Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	h.net.mu.Lock()
	defer h.net.mu.Unlock()
	h.link = l
	return nil
}

// ListenPacket binds a UDP socket on port; port 0 picks a free ephemeral
// port (from 32768 to 60999, as Linux does) at random, from a random
// stream of the host's own (see Config.Seed).
func (h *Host) ListenPacket(port uint16) (*Conn, error) {
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, &net.OpError{Op: "listen", Net: "udp", Source: net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.addr, port)), Err: net.ErrClosed}
	}
	if port == 0 {
		p, ok := h.ephemeralLocked()
		if !ok {
			return nil, fmt.Errorf("%w on %s", ErrNoFreePort, h.name)
		}
		port = p
	} else if _, taken := h.conns[port]; taken {
		return nil, fmt.Errorf("%w: %s port %d", ErrAddrInUse, h.name, port)
	}
	c := newConn(h, netip.AddrPortFrom(h.addr, port), n.cfg.ReadBuffer)
	h.conns[port] = c
	return c, nil
}

// ephemeralLocked picks a free ephemeral port: a few random draws, then a
// scan from a random start.
func (h *Host) ephemeralLocked() (uint16, bool) {
	const size = ephemeralMax - ephemeralMin + 1
	for range 8 {
		p := uint16(ephemeralMin + h.ephemeral.IntN(size))
		if _, taken := h.conns[p]; !taken {
			return p, true
		}
	}
	start := h.ephemeral.IntN(size)
	for i := range size {
		p := uint16(ephemeralMin + (start+i)%size)
		if _, taken := h.conns[p]; !taken {
			return p, true
		}
	}
	return 0, false
}

// arriveLocked queues p on the socket bound to its destination port.
func (h *Host) arriveLocked(p *packet) {
	n := h.net
	c := h.conns[p.dst.Port()]
	if c == nil {
		n.dropLocked(p, h.name, DropNoListener)
		return
	}
	// Once queued, p belongs to the socket's reader: describe it first.
	e := Event{Kind: EventDeliver, Node: h.name, Src: p.src, Dst: p.dst, Size: len(p.data)}
	if why := c.enqueue(p); why != 0 {
		n.dropLocked(p, h.name, why)
		return
	}
	n.stats.delivered++
	n.traceLocked(e)
}

// sendLocked puts a datagram from c on the host's link.
func (h *Host) sendLocked(p *packet) {
	n := h.net
	n.stats.sent++
	n.traceLocked(Event{Kind: EventSend, Node: h.name, Src: p.src, Dst: p.dst, Size: len(p.data)})
	n.traverseLocked(h.link, h.name, &h.rands, p, h.seg)
}
