package mycelium

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/circuit"
	"github.com/mycelium-net/mycelium/internal/wire"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestSynctestLinkDatagramsAfterRebinding: A sits behind a NAT and holds
// a link connection to the public node R. A's NAT rebinds, and R's end of
// the connection follows A to its new mapping (RFC 9000 §9.3). quic-go
// starts the new path at its configured InitialPacketSize, or at 1200
// bytes when none is configured, where the connection began at 1280; at
// 1200 a datagram carries too little for a circuit's packets, and every
// circuit over the link would lose them all from then on (found by the
// migration tests: a connection that fell back to its circuit after a
// rebinding got nothing through it). Both ends must still take a
// full-size circuit datagram after the move.
func TestSynctestLinkDatagramsAfterRebinding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, a, home := linkPair(t)
		time.Sleep(time.Second) // virtual: the handshake's last flight reaches R
		// The datagram every packet of a circuit's connection makes.
		full := make([]byte, wire.CircuitDataHeader+circuit.Overhead+circuitPacket)
		check := func(when string) {
			t.Helper()
			for _, c := range []struct {
				name     string
				from, to *Node
			}{{"A to R", a, r}, {"R to A", r, a}} {
				pc := c.from.peers.active(c.to.ID())
				if pc == nil {
					t.Fatalf("%s: %s holds no connection", when, c.name)
				}
				if err := pc.qc.SendDatagram(full); err != nil {
					t.Errorf("%s: a %d-byte circuit datagram %s: %v", when, len(full), c.name, err)
				}
			}
		}
		check("before the rebinding")
		before := r.peers.active(a.ID()).qc.RemoteAddr().String()
		home.Rebind()
		// Traffic from A moves R's end to A's new mapping.
		c, err := a.Dial(ctxT(t), r.ID(), "echo")
		if err != nil {
			t.Fatal(err)
		}
		pingPong(t, c)
		c.Close()
		time.Sleep(time.Second)
		after := r.peers.active(a.ID()).qc.RemoteAddr().String()
		if after == before {
			t.Fatalf("R still sees A at %s: the rebinding did not move the connection", before)
		}
		t.Logf("R followed A from %s to %s", before, after)
		check("after the rebinding")
	})
}

// linkPair starts a public node R and a node A behind a NAT (5 ms
// links), serves echo on R, and connects A to R. It returns R, A and A's
// NAT.
func linkPair(t *testing.T) (r, a *Node, home *netlab.NAT) {
	t.Helper()
	cfg := netlab.DefaultConfig()
	cfg.Link.Latency = 5 * time.Millisecond
	lab, err := netlab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	node := func(h *netlab.Host, port uint16) *Node {
		pc, err := h.ListenPacket(port)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := GenerateKey()
		c := DefaultConfig()
		c.Key, c.PacketConn = key, pc
		nd, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := nd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		return nd
	}
	hR, err := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
	if err != nil {
		t.Fatal(err)
	}
	natCfg := netlab.DefaultNATConfig()
	natCfg.Addr = netip.MustParseAddr("198.51.100.1")
	home, err = lab.AddNAT(natCfg)
	if err != nil {
		t.Fatal(err)
	}
	hA, err := home.AddHost(netip.MustParseAddr("192.168.1.10"))
	if err != nil {
		t.Fatal(err)
	}
	r, a = node(hR, 4433), node(hA, 5000)
	serveEcho(t, mustListen(t, r, "echo"))
	if err := a.Connect(ctxT(t), r.ID(), r.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	return r, a, home
}

// TestSynctestNudgeMovesLinks: after a local address change the node
// sends a LinkNudge on every link (nudgeLinks), and each link's peer
// moves its end to the address the nudge came from at once, rather than
// when the link next carries something (its keep-alive is 15 s off). A
// NAT rebinding stands in for the move: the peer sees a new address
// either way. The nudge counts as no dropped circuit datagram.
func TestSynctestNudgeMovesLinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, a, home := linkPair(t)
		time.Sleep(time.Second) // virtual: the handshake's last flight reaches R
		pc := r.peers.active(a.ID())
		before := pc.qc.RemoteAddr().String()
		home.Rebind()
		time.Sleep(time.Second)
		if now := pc.qc.RemoteAddr().String(); now != before {
			t.Fatalf("R moved its end to %s with no nudge: the test shows nothing", now)
		}
		a.nudgeLinks()
		time.Sleep(100 * time.Millisecond) // a few round trips of 10 ms
		after := pc.qc.RemoteAddr().String()
		if after == before {
			t.Fatalf("R still sees A at %s after the nudge", before)
		}
		if d := r.Stats().Counters.CircuitDropped; d != 0 {
			t.Fatalf("R counted %d dropped circuit datagrams, want 0", d)
		}
		t.Logf("the nudge moved R's end from %s to %s", before, after)
	})
}
