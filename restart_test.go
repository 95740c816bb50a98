package mycelium

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

// mutePacketConn drops every write once muted: a host that vanished
// without a word (a crash, a power cut).
type mutePacketConn struct {
	net.PacketConn
	muted atomic.Bool
}

func (m *mutePacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if m.muted.Load() {
		return len(b), nil
	}
	return m.PacketConn.WriteTo(b, addr)
}

// TestPeerRestartIsServed: a peer that crashes and comes back with the same
// key must be able to open streams again at once, although this node still
// holds the old connection, which it dialed from the lower ID. Before the
// fix, this node kept the stale connection as the winner and refused the
// restarted peer's every stream until the stale one idled out, and even
// then never promoted the new one.
func TestPeerRestartIsServed(t *testing.T) {
	leakcheck.Check(t)
	loKey, hiKey := orderedKeys(t)
	a := newTestNode(t, func(c *Config) { c.Key = loKey })
	l, err := a.Listen("echo")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)

	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mute := &mutePacketConn{PacketConn: udp}
	b1 := newTestNode(t, func(c *Config) { c.Key = hiKey; c.PacketConn = mute })
	lb, err := b1.Listen("echo")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, lb)

	// a dials b: the connection is dialed by the lower ID.
	a.AddPeerAddr(hiKey.ID(), b1.LocalAddr())
	c, err := a.Dial(ctxT(t), hiKey.ID(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, c, 1000)
	c.Close()
	stale := viewOf(a, hiKey.ID()).active
	if stale == nil || !stale.outbound {
		t.Fatal("a holds no outbound connection to b")
	}

	// b crashes: nothing it sends leaves the host, so a is not told.
	mute.muted.Store(true)
	b1.Close()
	// Age the stale connection past the simultaneity window instead of
	// waiting for it.
	a.peers.mu.Lock()
	stale.since = stale.since.Add(-time.Hour)
	a.peers.mu.Unlock()

	// b comes back with the same key and dials a.
	b2 := newTestNode(t, func(c *Config) { c.Key = hiKey })
	b2.AddPeerAddr(loKey.ID(), a.LocalAddr())
	c2, err := b2.Dial(ctxT(t), loKey.ID(), "echo")
	if err != nil {
		t.Fatalf("the restarted peer cannot open a stream: %v", err)
	}
	echoRoundTrip(t, c2, 100_000)
	c2.Close()
	if v := viewOf(a, hiKey.ID()); v.active == stale || v.active == nil || v.active.outbound {
		t.Fatal("a still prefers the stale connection")
	}
	// And a can reach the restarted b over the new connection.
	lb2, err := b2.Listen("echo")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, lb2)
	c3, err := a.Dial(ctxT(t), hiKey.ID(), "echo")
	if err != nil {
		t.Fatalf("a cannot reach the restarted peer: %v", err)
	}
	echoRoundTrip(t, c3, 1000)
	c3.Close()
}

// TestDialBoundedByStreamLimit: a peer whose stream limit stays full makes
// Dial fail with ErrOverloaded after StreamHeaderTimeout, even with a
// context that has no deadline.
func TestDialBoundedByStreamLimit(t *testing.T) {
	leakcheck.Check(t)
	b := newTestNode(t, func(c *Config) { c.Resources.MaxStreamsPerPeer = 2 })
	a := newTestNode(t, func(c *Config) { c.StreamHeaderTimeout = 300 * time.Millisecond })
	l, err := b.Listen("hold")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	a.AddPeerAddr(b.ID(), b.LocalAddr())
	for range 2 {
		c, err := a.Dial(ctxT(t), b.ID(), "hold")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if _, err := l.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = a.Dial(t.Context(), b.ID(), "hold")
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("third dial: err = %v, want ErrOverloaded", err)
	}
}
