package netlab_test

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// punchLab builds three public nodes (STUN observers; the first is every
// node's bootstrap peer) and two nodes behind NATs of the given configs.
func punchLab(t *testing.T, lab *netlab.Network, natA, natB netlab.NATConfig) (pubs []*mycelium.Node, a, b *mycelium.Node) {
	t.Helper()
	p1, _ := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
	p2, _ := lab.AddHost(netip.MustParseAddr("203.0.113.20"))
	pubs = []*mycelium.Node{labNode(t, p1, 4433)}
	boot := []mycelium.Peer{{ID: pubs[0].ID(), Addr: pubs[0].LocalAddr()}}
	pubs = append(pubs, labNodeBoot(t, p1, 4434, boot), labNodeBoot(t, p2, 4433, boot))
	homeA, err := lab.AddNAT(natA)
	if err != nil {
		t.Fatal(err)
	}
	homeB, err := lab.AddNAT(natB)
	if err != nil {
		t.Fatal(err)
	}
	hostA, _ := homeA.AddHost(netip.MustParseAddr("192.168.1.10"))
	hostB, _ := homeB.AddHost(netip.MustParseAddr("10.0.0.10"))
	return pubs, labNodeBoot(t, hostA, 5000, boot), labNodeBoot(t, hostB, 6000, boot)
}

func natCfg(addr string, m, f netlab.Behavior) netlab.NATConfig {
	c := netlab.DefaultNATConfig()
	c.Addr = netip.MustParseAddr(addr)
	c.Mapping, c.Filtering = m, f
	c.InboundSessions = true // as Linux and the theory (nat/doc.go) have it
	if m != netlab.EndpointIndependent {
		c.Ports = netlab.PortRandom
	}
	return c
}

// TestSynctestHolePunch: two nodes behind MASQUERADE-like NATs
// (endpoint-independent mapping, address-and-port-dependent filtering)
// learn each other's reflexive address from the registry; a Dial by node
// ID from one to the other coordinates a hole punch through a public node
// they both hold a connection to, and the stream then runs over a direct
// connection between the two NATs' public addresses.
func TestSynctestHolePunch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := netlab.DefaultConfig()
		cfg.Link.Latency = 10 * time.Millisecond
		lab, err := netlab.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer lab.Close()
		pubs, a, b := punchLab(t, lab,
			natCfg("198.51.100.1", netlab.EndpointIndependent, netlab.AddressAndPortDependent),
			natCfg("198.51.100.2", netlab.EndpointIndependent, netlab.AddressAndPortDependent))
		defer func() {
			for _, n := range append(pubs, a, b) {
				n.Close()
			}
		}()
		serveLabEcho(t, b)
		waitFor(t, "A to know B's record behind its NAT", func() bool {
			r, ok := a.Lookup(b.ID())
			return ok && !r.Inbound && len(r.Reflexive) > 0 && r.Mapping.String() == "endpoint-independent" &&
				a.Stats().NAT.Mapping == "endpoint-independent" && len(r.Neighbors) > 0
		})
		start := time.Now()
		c, err := a.Dial(context.Background(), b.ID(), "echo")
		if err != nil {
			t.Fatalf("dial B by ID: %v\nA: %+v", err, a.Stats().Counters)
		}
		took := time.Since(start)
		c.Write([]byte("punched"))
		buf := make([]byte, 7)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "punched" {
			t.Fatalf("echo: %q %v", buf, err)
		}
		c.Close()
		var path string
		for _, p := range a.Stats().Peers {
			if p.ID == b.ID() {
				path = p.Addr
			}
		}
		if !strings.HasPrefix(path, "198.51.100.2:") {
			t.Fatalf("A's connection to B is at %q, want B's NAT's public address", path)
		}
		st := a.Stats().Counters
		bst0 := b.Stats().Counters
		// A's Dial punched, or B's overlay had punched to A first and
		// A's Dial found that connection.
		if !(st.PunchDirect == 1 && st.PunchAttempts == 1) && !(bst0.PunchDirect == 1 && st.PunchAnswered == 1) {
			t.Errorf("no punch made the connection: A %+v, B %+v", st, bst0)
		}
		// Each side opened its own NAT with openers that died in the
		// internet (netlab counts it as one router hop), before the peer's.
		bst := b.Stats().Counters
		if st.PunchOpenersSent == 0 || bst.PunchOpenersSent == 0 || st.PunchOpenersSeen != 0 || bst.PunchOpenersSeen != 0 {
			t.Errorf("openers: A sent %d and saw %d, B sent %d and saw %d; want both sent, none seen",
				st.PunchOpenersSent, st.PunchOpenersSeen, bst.PunchOpenersSent, bst.PunchOpenersSeen)
		}
		if d := lab.Stats().Dropped[netlab.DropTTL]; d != st.PunchOpenersSent+bst.PunchOpenersSent {
			t.Errorf("netlab dropped %d datagrams for their TTL, want the %d openers", d, st.PunchOpenersSent+bst.PunchOpenersSent)
		}
		t.Logf("direct connection to B at %s, %v (virtual) after Dial; the simultaneous dial took %v", path, took, time.Duration(st.PunchDialMicros)*time.Microsecond)
	})
}

// serveLabEcho echoes every stream to n's "echo" service until n closes.
func serveLabEcho(t *testing.T, n *mycelium.Node) {
	t.Helper()
	l, err := n.Listen("echo")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}
