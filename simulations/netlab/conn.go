package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is a UDP socket on a Host. It is a net.PacketConn that behaves as
// a *net.UDPConn does (see TestPacketConn): addresses are *net.UDPAddr,
// a read into a short buffer truncates the datagram, deadline errors
// satisfy os.ErrDeadlineExceeded and net.Error's Timeout, and Close makes
// a pending ReadFrom return net.ErrClosed. Writes never block: a datagram
// the network cannot carry is dropped and counted.
//
// A blocked ReadFrom waits on channels only, so under testing/synctest it
// is durably blocked.
type Conn struct {
	host  *Host
	local netip.AddrPort              // guarded by host.net.mu (Host.MoveTo changes its address)
	laddr atomic.Pointer[net.UDPAddr] // local, for LocalAddr

	mu     sync.Mutex
	closed bool
	queue  []*packet // unread datagrams from head on
	head   int
	queued int // bytes charged against limit
	limit  int
	wlimit int           // SetWriteBuffer's value, kept for show
	rdl    time.Time     // read deadline; zero for none
	wdl    time.Time     // write deadline; zero for none
	wake   chan struct{} // closed to wake blocked readers; nil when none wait
}

// Compile-time checks: Conn is a PacketConn and has the buffer setters
// quic-go looks for.
var (
	_ net.PacketConn = (*Conn)(nil)
	_ interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	} = (*Conn)(nil)
)

// datagramCost is what one datagram of n bytes charges against a socket's
// read buffer: its payload and some bookkeeping (guess, after sk_buff).
func datagramCost(n int) int { return n + 256 }

func newConn(h *Host, local netip.AddrPort, limit int) *Conn {
	c := &Conn{host: h, local: local, limit: limit, wlimit: limit}
	c.laddr.Store(net.UDPAddrFromAddrPort(local))
	return c
}

// Host returns the host the socket is bound on.
func (c *Conn) Host() *Host { return c.host }

// moveLocked gives c its host's new address (Host.MoveTo).
func (c *Conn) moveLocked(local netip.AddrPort) {
	c.local = local
	c.laddr.Store(net.UDPAddrFromAddrPort(local))
}

// LocalAddr returns the socket's address, a *net.UDPAddr.
func (c *Conn) LocalAddr() net.Addr { return c.laddr.Load() }

// ReadFrom reads one datagram into b and returns its source, a
// *net.UDPAddr. A datagram longer than b is truncated to len(b), the rest
// discarded, with no error (as on Linux).
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromUDPAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// ReadFromUDPAddrPort is ReadFrom returning the source as a
// netip.AddrPort, as *net.UDPConn has it.
func (c *Conn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, netip.AddrPort{}, c.opError("read", nil, net.ErrClosed)
		}
		deadline := c.rdl
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			c.mu.Unlock()
			return 0, netip.AddrPort{}, c.opError("read", nil, os.ErrDeadlineExceeded)
		}
		if c.head < len(c.queue) {
			p := c.popLocked()
			c.mu.Unlock()
			n, from := copy(b, p.data), p.src
			c.host.net.freePacket(p)
			return n, from, nil
		}
		if c.wake == nil {
			c.wake = make(chan struct{})
		}
		wake := c.wake
		c.mu.Unlock()

		if deadline.IsZero() {
			<-wake
			continue
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// WriteTo sends b to addr, which must be a *net.UDPAddr. It returns
// len(b) once the network has taken the datagram, whatever its fate.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, c.opError("write", addr, ErrBadAddr)
	}
	return c.WriteToUDPAddrPort(b, ua.AddrPort())
}

// WriteToTTL is WriteTo with the datagram's time to live set to ttl
// (1-255): each NAT router, and the internet, forwards it only while
// hops remain. It is what the node's transport uses for packets meant to
// open its own NAT and die before the peer's (see the root package's
// hole punching).
func (c *Conn) WriteToTTL(b []byte, addr net.Addr, ttl int) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, c.opError("write", addr, ErrBadAddr)
	}
	if ttl < 1 || ttl > 255 {
		return 0, c.opError("write", addr, fmt.Errorf("%w: time to live %d, want 1-255", ErrBadConfig, ttl))
	}
	return c.write(b, ua.AddrPort(), ttl)
}

// WriteToUDPAddrPort is WriteTo with a netip.AddrPort, as *net.UDPConn
// has it.
func (c *Conn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.write(b, addr, 0)
}

func (c *Conn) write(b []byte, addr netip.AddrPort, ttl int) (int, error) {
	dst := netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	c.mu.Lock()
	closed, deadline := c.closed, c.wdl
	c.mu.Unlock()
	switch {
	case closed:
		return 0, c.opError("write", c.udpAddr(dst), net.ErrClosed)
	case !deadline.IsZero() && !time.Now().Before(deadline):
		return 0, c.opError("write", c.udpAddr(dst), os.ErrDeadlineExceeded)
	case !dst.Addr().IsValid() || dst.Addr().IsUnspecified() || dst.Port() == 0:
		return 0, c.opError("write", c.udpAddr(dst), ErrBadAddr)
	case len(b) > maxPayload:
		return 0, c.opError("write", c.udpAddr(dst), ErrMessageTooLong)
	}
	n := c.host.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0, c.opError("write", c.udpAddr(dst), net.ErrClosed)
	}
	p := n.newPacket(c.local, dst, b)
	p.ttl = ttl
	c.host.sendLocked(p)
	return len(b), nil
}

// Close closes the socket and frees its port. A pending ReadFrom returns
// net.ErrClosed. Closing twice returns an error wrapping net.ErrClosed, as
// *net.UDPConn does.
func (c *Conn) Close() error {
	n := c.host.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if !c.closeLocked() {
		return c.opError("close", nil, net.ErrClosed)
	}
	if c.host.conns[c.local.Port()] == c {
		delete(c.host.conns, c.local.Port())
	}
	return nil
}

// closeLocked marks c closed, discards what it holds and wakes its
// readers; it reports whether c was open. Network.mu must be held.
func (c *Conn) closeLocked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.closed = true
	for _, p := range c.queue[c.head:] {
		c.host.net.freePacket(p)
	}
	c.queue, c.head, c.queued = nil, 0, 0
	c.wakeLocked()
	return true
}

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error { return c.setDeadline(t, true, true) }

// SetReadDeadline sets when ReadFrom gives up, including a ReadFrom
// already blocked. A time in the past makes reads fail at once, even with
// datagrams queued; the zero time clears it.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.setDeadline(t, true, false) }

// SetWriteDeadline sets when WriteTo starts to fail. Writes never block,
// so only a deadline already past has an effect.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

func (c *Conn) setDeadline(t time.Time, read, write bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("set", nil, net.ErrClosed)
	}
	if read {
		c.rdl = t
		c.wakeLocked()
	}
	if write {
		c.wdl = t
	}
	return nil
}

// SetReadBuffer sets, in bytes, what the socket may hold unread (see
// Config.ReadBuffer).
func (c *Conn) SetReadBuffer(bytes int) error {
	return c.setBuffer(bytes, &c.limit)
}

// SetWriteBuffer records bytes and has no other effect: writes never
// queue. It exists so that quic-go finds the method it looks for.
func (c *Conn) SetWriteBuffer(bytes int) error {
	return c.setBuffer(bytes, &c.wlimit)
}

func (c *Conn) setBuffer(bytes int, field *int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.opError("set", nil, net.ErrClosed)
	}
	if bytes < 0 {
		return c.opError("set", nil, fmt.Errorf("%w: negative buffer size %d", ErrBadConfig, bytes))
	}
	*field = bytes
	return nil
}

// enqueue queues p for reading, or says why it cannot. Like a kernel, it
// takes a datagram while the buffer is below its limit, so one datagram
// may overshoot it.
func (c *Conn) enqueue(p *packet) DropReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return DropClosed
	}
	if c.queued >= c.limit {
		return DropQueueFull
	}
	if c.head > 0 && len(c.queue) == cap(c.queue) {
		n := copy(c.queue, c.queue[c.head:])
		clear(c.queue[n:])
		c.queue, c.head = c.queue[:n], 0
	}
	c.queue = append(c.queue, p)
	c.queued += datagramCost(len(p.data))
	c.wakeLocked()
	return 0
}

func (c *Conn) popLocked() *packet {
	p := c.queue[c.head]
	c.queue[c.head] = nil
	c.head++
	if c.head == len(c.queue) {
		c.queue, c.head = c.queue[:0], 0
	}
	c.queued -= datagramCost(len(p.data))
	return p
}

func (c *Conn) wakeLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

func (c *Conn) udpAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}

func (c *Conn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.laddr.Load(), Addr: addr, Err: err}
}
