package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Network is an in-memory UDP internet: the public network that public
// hosts and the outermost NAT routers sit on, plus every private network
// behind those routers. All of its state sits behind one lock; datagrams
// move by the standard time package's timers, so under testing/synctest
// the whole network runs in virtual time. Create it inside the bubble that
// uses it.
type Network struct {
	cfg      Config
	internet *segment
	wg       sync.WaitGroup // one count per scheduled timer callback
	packets  sync.Pool      // of *packet, to spare the garbage collector

	mu     sync.Mutex
	closed bool
	names  map[string]int // how many nodes took each name (see nameLocked)
	hosts  []*Host
	sched  scheduler
	stats  counters
	// blocked holds the pairs of public addresses between which the
	// internet carries nothing (Block), smaller address first.
	blocked map[[2]netip.Addr]bool
}

// Block makes the internet drop every datagram between the public
// addresses a and b, both ways, as a broken route between two networks
// would, while each still reaches everyone else. Unblock undoes it.
func (n *Network) Block(a, b netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.blocked == nil {
		n.blocked = make(map[[2]netip.Addr]bool)
	}
	n.blocked[addrPair(a, b)] = true
}

// Unblock lets datagrams between a and b through again.
func (n *Network) Unblock(a, b netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.blocked, addrPair(a, b))
}

func addrPair(a, b netip.Addr) [2]netip.Addr {
	if b.Less(a) {
		a, b = b, a
	}
	return [2]netip.Addr{a, b}
}

// New returns an empty network. It calls cfg.Validate.
func New(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg}
	n.internet = &segment{net: n, members: make(map[netip.Addr]hop)}
	return n, nil
}

// AddHost puts a host with address addr directly on the public network.
// Use a TEST-NET address (203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24)
// in examples and tests.
func (n *Network) AddHost(addr netip.Addr) (*Host, error) {
	return n.addHost(n.internet, addr, "")
}

// AddNAT puts a NAT router on the public network, with its public address
// cfg.Addr. It calls cfg.Validate.
func (n *Network) AddNAT(cfg NATConfig) (*NAT, error) {
	return n.addNAT(n.internet, cfg, "")
}

// Stats returns the network's counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats.snapshot()
}

// Close closes every socket, which unblocks their readers with
// net.ErrClosed, and drops every datagram in flight (DropClosed). When it
// returns, no timer or goroutine of the network is left. Close is
// idempotent and always returns nil.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.sched.stopLocked(n)
	for _, h := range n.hosts {
		for _, c := range h.conns {
			c.closeLocked()
		}
		clear(h.conns)
	}
	n.mu.Unlock()
	n.wg.Wait()
	return nil
}

func (n *Network) addHost(seg *segment, addr netip.Addr, prefix string) (*Host, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := seg.claimLocked(addr); err != nil {
		return nil, err
	}
	name := n.nameLocked(prefix + addr.String())
	h := &Host{
		net:       n,
		addr:      addr,
		name:      name,
		seg:       seg,
		link:      n.cfg.Link,
		rands:     flowRands{key: streamKey(n.cfg.Seed, tagLink, name)},
		ephemeral: newStream(streamKey(n.cfg.Seed, tagEphemeral, name)),
		conns:     make(map[uint16]*Conn),
	}
	seg.members[addr] = h
	n.hosts = append(n.hosts, h)
	return h, nil
}

func (n *Network) addNAT(seg *segment, cfg NATConfig, prefix string) (*NAT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := seg.claimLocked(cfg.Addr); err != nil {
		return nil, err
	}
	name := n.nameLocked(prefix + cfg.Addr.String())
	nat := &NAT{
		net:    n,
		cfg:    cfg,
		name:   name,
		parent: seg,
		link:   n.cfg.Link,
		rands:  flowRands{key: streamKey(n.cfg.Seed, tagLink, name)},
		table:  newTable(cfg, streamKey(n.cfg.Seed, tagNATPorts, name)),
	}
	nat.inside = &segment{net: n, members: make(map[netip.Addr]hop), gateway: nat}
	seg.members[cfg.Addr] = nat
	return nat, nil
}

// nameLocked returns base, or base#2, base#3... if a node already took
// it: a node at an address a router left (NAT.SetAddr) gets a name of its
// own, for traces and for its random streams.
func (n *Network) nameLocked(base string) string {
	if n.names == nil {
		n.names = make(map[string]int)
	}
	n.names[base]++
	if k := n.names[base]; k > 1 {
		return fmt.Sprintf("%s#%d", base, k)
	}
	return base
}

// hop is a place a datagram can arrive: a network (which routes it), a
// host (which queues it on a socket), or a NAT router's public side (which
// translates it inward).
type hop interface {
	arriveLocked(p *packet)
}

// segment is one address space: the public network, or the private side
// of one NAT router.
type segment struct {
	net     *Network
	members map[netip.Addr]hop // *Host, or *NAT by its public address
	gateway *NAT               // the router this is the inside of; nil for the internet
}

func (s *segment) claimLocked(addr netip.Addr) error {
	if s.net.closed {
		return net.ErrClosed
	}
	if !addr.IsValid() || addr.IsUnspecified() {
		return fmt.Errorf("%w: address %v is not a host address", ErrBadConfig, addr)
	}
	if addr.Is4In6() {
		return fmt.Errorf("%w: address %v is IPv4-mapped; use the IPv4 form", ErrBadConfig, addr)
	}
	if _, taken := s.members[addr]; taken {
		return fmt.Errorf("%w: %v", ErrAddrInUse, addr)
	}
	return nil
}

// arriveLocked routes p: to the member holding its destination address,
// else out through the gateway, else nowhere. The internet counts as one
// router hop (an ISP's) for a datagram's time to live; a private network
// is one link.
func (s *segment) arriveLocked(p *packet) {
	if s.gateway == nil && !s.net.forwardLocked(p, "internet") {
		return
	}
	if s.gateway == nil && s.net.blocked[addrPair(p.src.Addr(), p.dst.Addr())] {
		s.net.dropLocked(p, "internet", DropBlocked)
		return
	}
	switch m := s.members[p.dst.Addr()].(type) {
	case *Host:
		s.net.traverseLocked(m.link, m.name, &m.rands, p, m)
	case *NAT:
		s.net.traverseLocked(m.link, m.name, &m.rands, p, m)
	default:
		if s.gateway != nil {
			s.gateway.outboundLocked(p)
			return
		}
		s.net.dropLocked(p, "internet", DropNoRoute)
	}
}

// packet is one datagram in flight. It has one owner at a time: the
// sender's call, the scheduler, or a socket's queue; whoever ends its
// life returns it with freePacket.
type packet struct {
	src, dst netip.AddrPort
	data     []byte
	// ttl is the hops the datagram may still be forwarded over; 0 means
	// unlimited (the sender did not set one).
	ttl int
}

// forwardLocked spends one hop of p's time to live as router node
// forwards it. It reports false, having dropped p, when none is left.
func (n *Network) forwardLocked(p *packet, node string) bool {
	if p.ttl == 0 {
		return true
	}
	if p.ttl == 1 {
		n.dropLocked(p, node, DropTTL)
		return false
	}
	p.ttl--
	return true
}

// pooledSize is the buffer size of pooled packets: an Ethernet frame's
// payload and some. Larger datagrams get buffers of their own.
const pooledSize = 2048

// newPacket returns a packet holding a copy of b.
func (n *Network) newPacket(src, dst netip.AddrPort, b []byte) *packet {
	p, _ := n.packets.Get().(*packet)
	if p == nil {
		p = &packet{data: make([]byte, 0, pooledSize)}
	}
	p.src, p.dst, p.ttl = src, dst, 0
	p.data = append(p.data[:0], b...)
	return p
}

func (n *Network) freePacket(p *packet) {
	if cap(p.data) > pooledSize {
		return
	}
	*p = packet{data: p.data[:0]}
	n.packets.Put(p)
}

// Header sizes that count against a link's MTU.
const (
	ipv4Overhead = 20 + 8
	ipv6Overhead = 40 + 8
	minMTU       = 68 // RFC 791: every IPv4 link carries 68 bytes
	// maxPayload is the largest UDP payload over IPv4: 65,535 - 28.
	maxPayload = 65507
)

// traverseLocked carries p over link l, run by node, to next: it may drop
// p for size or loss, and delivers it now or after the link's delay. Loss
// and jitter draw from the stream of p's flow over the link, in rands.
func (n *Network) traverseLocked(l Link, node string, rands *flowRands, p *packet, next hop) {
	overhead := ipv4Overhead
	if p.dst.Addr().Is6() {
		overhead = ipv6Overhead
	}
	if len(p.data)+overhead > l.MTU {
		n.dropLocked(p, node, DropMTU)
		return
	}
	d := l.Latency
	if l.Loss > 0 || l.Jitter > 0 {
		r := rands.get(p.src, p.dst)
		// A datagram takes both draws, lost or not, so that its delay
		// does not depend on what the link did to the flow's earlier ones.
		lost := l.Loss > 0 && r.Float64() < l.Loss
		if l.Jitter > 0 {
			d += time.Duration(r.Int64N(int64(l.Jitter) + 1))
		}
		if lost {
			n.dropLocked(p, node, DropLoss)
			return
		}
	}
	if d <= 0 {
		next.arriveLocked(p)
		return
	}
	n.sched.pushLocked(n, time.Now().Add(d), p, next)
}

func (n *Network) dropLocked(p *packet, node string, why DropReason) {
	n.stats.dropped[why]++
	n.traceLocked(Event{Kind: EventDrop, Node: node, Src: p.src, Dst: p.dst, Size: len(p.data), Reason: why})
	n.freePacket(p)
}

func (n *Network) traceLocked(e Event) {
	if n.cfg.Trace != nil {
		e.Time = time.Now()
		n.cfg.Trace(e)
	}
}
