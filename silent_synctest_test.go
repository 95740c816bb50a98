package mycelium

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// silentPair starts two public nodes on a netlab with 5 ms links, with
// mutate applied to both configs, serves echo on the second, and connects
// the first to it. It returns the nodes and the second's host.
func silentPair(t *testing.T, mutate func(*Config)) (a, b *Node, bHost *netlab.Host) {
	t.Helper()
	nodes, hosts := labNodesHosts(t, 2, func(_ int, c *Config, _ []*Node) {
		if mutate != nil {
			mutate(c)
		}
	})
	a, b = nodes[0], nodes[1]
	serveEcho(t, mustListen(t, b, "echo"))
	if err := a.Connect(ctxT(t), b.ID(), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	synctest.Wait()
	return a, b, hosts[1]
}

// setLoss sets h's link to 5 ms with the given loss.
func setLoss(t *testing.T, h *netlab.Host, loss float64) {
	l := netlab.DefaultLink()
	l.Latency, l.Loss = 5*time.Millisecond, loss
	if err := h.SetLink(l); err != nil {
		t.Error(err)
	}
}

// TestSynctestSilentConnRedialled: a stream opened on a connection whose
// path has gone dead gets no packet back, not even an ACK, while QUIC's
// idle timeout is far off. After Config.StreamHeaderTimeout the dial
// closes that connection and goes on over a new one (here the path is
// back by then), instead of failing with "did not answer the stream
// header". The keep-alive is long so that nothing else crosses the path
// meanwhile, and the path comes back between two of quic-go's
// retransmissions of the header, which back off exponentially: after
// 6.3 s none is due before 12.7 s. A second dial, started 3 s into the
// silence on the same connection, goes on over the new one too.
func TestSynctestSilentConnRedialled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, bHost := silentPair(t, func(c *Config) { c.KeepAlive, c.IdleTimeout = time.Minute, 2*time.Minute })
		old := a.peers.active(b.ID())

		setLoss(t, bHost, 1)
		time.AfterFunc(7*time.Second, func() { setLoss(t, bHost, 0) })
		second := make(chan error, 1)
		time.AfterFunc(3*time.Second, func() {
			c, err := a.Dial(ctxT(t), b.ID(), "echo")
			if err == nil {
				c.Close()
			}
			second <- err
		})
		start := time.Now()
		c, err := a.Dial(ctxT(t), b.ID(), "echo")
		if err != nil {
			t.Fatalf("dial over a dead path: %v", err)
		}
		defer c.Close()
		pingPong(t, c)
		took := time.Since(start)
		if err := <-second; err != nil {
			t.Fatalf("second dial on the silent connection: %v", err)
		}
		if got := a.Stats().Counters.SilentConns; got != 1 {
			t.Fatalf("silent connections closed: %d, want 1", got)
		}
		if a.peers.active(b.ID()) == old {
			t.Fatal("the dial went on over the silent connection")
		}
		if took < a.cfg.StreamHeaderTimeout || took > a.cfg.StreamHeaderTimeout+2*time.Second {
			t.Fatalf("dial took %v, want the stream header timeout (%v) and a handshake", took, a.cfg.StreamHeaderTimeout)
		}
	})
}

// TestSynctestIdledOutConnRedialled: a user's stream open that lands on a
// connection about to reach its idle timeout (its path dead for that
// long) goes on over a new connection when the timeout fires, instead of
// failing with it. The path comes back just before the timeout, between
// two retransmissions of the stream header.
func TestSynctestIdledOutConnRedialled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, bHost := silentPair(t, nil)
		old := a.peers.active(b.ID())
		setLoss(t, bHost, 1)
		idle := a.cfg.IdleTimeout
		time.Sleep(idle - time.Second) // virtual time (synctest)
		time.AfterFunc(950*time.Millisecond, func() { setLoss(t, bHost, 0) })
		c, err := a.Dial(ctxT(t), b.ID(), "echo")
		if err != nil {
			t.Fatalf("dial onto a connection that idles out: %v", err)
		}
		defer c.Close()
		pingPong(t, c)
		if a.peers.active(b.ID()) == old {
			t.Fatal("the dial went on over the idled-out connection")
		}
		if got := a.Stats().Counters.SilentConns; got != 0 {
			t.Fatalf("silent connections closed: %d, want 0 (the idle timeout came first)", got)
		}
	})
}
