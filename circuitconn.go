package mycelium

import (
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// circuitAddr names the far end of a circuit for the QUIC connection that
// runs inside it.
type circuitAddr struct {
	id  NodeID
	via string // the relays, short IDs joined by ">"
}

func (a circuitAddr) Network() string { return "circuit" }
func (a circuitAddr) String() string  { return "circuit:" + a.via + ">" + a.id.Short() }

func viaString(via []NodeID) string {
	s := make([]string, len(via))
	for i, r := range via {
		s[i] = r.Short()
	}
	return strings.Join(s, ">")
}

// circuitConn is the net.PacketConn an end of a circuit gives the QUIC
// transport inside it: WriteTo seals a packet and sends it on the first
// link as a datagram; ReadFrom returns the packets the circuit delivered.
// Like UDP it loses packets rather than block: a full queue drops.
type circuitConn struct {
	local, remote net.Addr
	circuitSend   func(b []byte) error                 // into the circuit
	send          atomic.Pointer[func(b []byte) error] // over the current path
	session       atomic.Pointer[pathSession]          // the path layer this circuit serves
	attached      chan struct{}                        // closed when a PING attached this fresh end to a session
	pathID        atomic.Uint32                        // its path ID in that session, once attached
	attachOnce    sync.Once
	in            chan []byte
	done          chan struct{}
	closeOnce     sync.Once

	mu      sync.Mutex
	rdl     time.Time
	rdlWake chan struct{} // closed when rdl changes
}

// circuitQueue bounds the packets waiting for the inner QUIC's reader.
const circuitQueue = 256

func newCircuitConn(local, remote net.Addr, send func([]byte) error) *circuitConn {
	c := &circuitConn{local: local, remote: remote, circuitSend: send, in: make(chan []byte, circuitQueue),
		done: make(chan struct{}), rdlWake: make(chan struct{}), attached: make(chan struct{})}
	c.send.Store(&send)
	return c
}

// setSend makes WriteTo send over another path.
func (c *circuitConn) setSend(f func([]byte) error) { c.send.Store(&f) }

// setSession records the path layer the circuit serves: the one beneath
// the connection inside it, or, for a circuit built later to carry an
// existing connection, that connection's.
func (c *circuitConn) setSession(s *pathSession) { c.session.Store(s) }

// attach makes a fresh circuit end one more path of s: its QUIC packets
// go to s's connection from now on, and whoever waits to accept a new
// connection in it stops waiting.
func (c *circuitConn) attach(s *pathSession, id uint32) {
	c.pathID.Store(id)
	c.session.Store(s)
	c.attachOnce.Do(func() { close(c.attached) })
}

// deliver queues an opened packet for ReadFrom; it reports false when the
// queue is full or the conn closed (the packet is dropped).
func (c *circuitConn) deliver(p []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.in <- p:
		return true
	default:
		return false
	}
}

func (c *circuitConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		dl, wake := c.rdl, c.rdlWake
		c.mu.Unlock()
		var timeout <-chan time.Time
		var t *time.Timer
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, &net.OpError{Op: "read", Net: "circuit", Addr: c.local, Err: os.ErrDeadlineExceeded}
			}
			t = time.NewTimer(d)
			timeout = t.C
		}
		select {
		case p := <-c.in:
			if t != nil {
				t.Stop()
			}
			return copy(b, p), c.remote, nil
		case <-c.done:
			return 0, nil, &net.OpError{Op: "read", Net: "circuit", Addr: c.local, Err: net.ErrClosed}
		case <-wake:
		case <-timeout:
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (c *circuitConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, &net.OpError{Op: "write", Net: "circuit", Addr: c.remote, Err: net.ErrClosed}
	default:
	}
	(*c.send.Load())(b) // a lost packet is QUIC's to recover, as on UDP
	return len(b), nil
}

func (c *circuitConn) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	return nil
}

func (c *circuitConn) LocalAddr() net.Addr { return c.local }

func (c *circuitConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *circuitConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	close(c.rdlWake)
	c.rdlWake = make(chan struct{})
	c.mu.Unlock()
	return nil
}

func (c *circuitConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer and SetWriteBuffer accept any size: the queue is
// circuitQueue packets whatever the size asked (quic-go asks for larger
// socket buffers on every conn that has these methods).
func (c *circuitConn) SetReadBuffer(int) error  { return nil }
func (c *circuitConn) SetWriteBuffer(int) error { return nil }
