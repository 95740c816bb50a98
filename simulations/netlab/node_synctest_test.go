package netlab_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/internal/pipe"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// labNode starts a real mycelium node on a netlab socket.
func labNode(t *testing.T, h *netlab.Host, port uint16) *mycelium.Node {
	t.Helper()
	pc, err := h.ListenPacket(port)
	if err != nil {
		t.Fatal(err)
	}
	key, err := mycelium.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := mycelium.DefaultConfig()
	cfg.Key = key
	cfg.PacketConn = pc
	cfg.Logger = slog.New(slog.DiscardHandler)
	n, err := mycelium.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSynctestNodesAcrossNATs runs real nodes (real quic-go, real TLS) on
// netlab under testing/synctest: a public relay host P, host A behind a
// Linux-MASQUERADE-like NAT and host B behind a symmetric NAT, 20 ms of
// latency on every link. Before hole punching exists, A reaches B's echo
// service through P: A and B each dial P, and P carries A's stream to B
// over the connection B opened. A direct dial from A to B's public
// mapping is refused by B's NAT, so the relay is what carries the bytes.
func TestSynctestNodesAcrossNATs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := netlab.DefaultConfig()
		cfg.Link.Latency = 20 * time.Millisecond
		lab, err := netlab.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer lab.Close()

		pubHost, err := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
		if err != nil {
			t.Fatal(err)
		}
		natA := netlab.DefaultNATConfig()
		natA.Addr = netip.MustParseAddr("198.51.100.1")
		homeA, err := lab.AddNAT(natA)
		if err != nil {
			t.Fatal(err)
		}
		natB := netlab.DefaultNATConfig()
		natB.Addr = netip.MustParseAddr("198.51.100.2")
		natB.Mapping, natB.Filtering, natB.Ports = netlab.AddressAndPortDependent, netlab.AddressAndPortDependent, netlab.PortRandom
		homeB, err := lab.AddNAT(natB)
		if err != nil {
			t.Fatal(err)
		}
		hostA, err := homeA.AddHost(netip.MustParseAddr("192.168.1.10"))
		if err != nil {
			t.Fatal(err)
		}
		hostB, err := homeB.AddHost(netip.MustParseAddr("10.0.0.10"))
		if err != nil {
			t.Fatal(err)
		}

		p := labNode(t, pubHost, 4433)
		a := labNode(t, hostA, 0)
		b := labNode(t, hostB, 0)
		var wg sync.WaitGroup
		// Runs before lab.Close: the nodes' Close ends every stream, so
		// the echo and relay goroutines can finish.
		defer func() {
			p.Close()
			a.Close()
			b.Close()
			wg.Wait()
		}()
		lb, err := b.Listen("echo")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { echo.Serve(lb) })

		// P relays streams for "to-b" to B's echo service.
		lp, err := p.Listen("to-b")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for {
				in, err := lp.Accept()
				if err != nil {
					return
				}
				wg.Go(func() {
					out, err := p.Dial(context.Background(), b.ID(), "echo")
					if err != nil {
						in.Close()
						return
					}
					pipe.Splice(in, out)
				})
			}
		})

		ctx := context.Background()
		if err := a.Connect(ctx, p.ID(), p.LocalAddr()); err != nil {
			t.Fatalf("A behind MASQUERADE cannot reach the public node: %v", err)
		}
		if err := b.Connect(ctx, p.ID(), p.LocalAddr()); err != nil {
			t.Fatalf("B behind a symmetric NAT cannot reach the public node: %v", err)
		}

		// Connect returns when the dialer's side of the handshake is done;
		// P's side finishes half a round trip later.
		waitFor(t, "P to accept both peers", func() bool { return len(p.Stats().Peers) == 2 })

		// P sees B at B's NAT's public address, not its private one.
		var bSeen string
		for _, peer := range p.Stats().Peers {
			if peer.ID == b.ID() {
				bSeen = peer.Addr
			}
		}
		if ap, err := netip.ParseAddrPort(bSeen); err != nil || ap.Addr() != natB.Addr {
			t.Fatalf("P sees B at %q, want B's NAT address %v", bSeen, natB.Addr)
		}

		start := time.Now()
		c, err := a.Dial(ctx, p.ID(), "to-b")
		if err != nil {
			t.Fatal(err)
		}
		if err := echo.RoundTrip(c, 256<<10); err != nil {
			t.Fatal(err)
		}
		c.Close()
		t.Logf("256 KiB echoed A -> P -> B -> P -> A in %v of virtual time", time.Since(start))

		// Directly, A cannot reach B: B's NAT maps per destination and
		// filters per endpoint, and A has no mapping of B's to aim at.
		bAddr, _ := net.ResolveUDPAddr("udp", bSeen)
		a.AddPeerAddr(b.ID(), bAddr)
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := a.Dial(dctx, b.ID(), "echo"); err == nil {
			t.Fatal("A dialed B directly through B's symmetric NAT")
		}
		if lab.Stats().Dropped[netlab.DropFiltered] == 0 {
			t.Fatal("B's NAT filtered nothing, yet the direct dial failed")
		}
	})
}

// waitFor advances virtual time in small steps until cond holds. Inside a
// synctest bubble this is deterministic: time moves only when every
// goroutine is blocked, so each step lets all pending work run first.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after a virtual minute", what)
		}
		time.Sleep(time.Millisecond) // virtual time
	}
}

// TestSynctest50Nodes runs 50 real nodes for five minutes of virtual
// time: a public hub and 49 nodes behind five kinds of NAT (carrier-grade
// among them), 20 ms links. Each node connects to the hub and runs an echo
// round trip through it; then the network idles for five minutes, far
// past every NAT timeout, on the nodes' 15 s keep-alives alone. Every
// other router times its mappings out after 30 s whether assured or not,
// so keep-alives that came late, or only from the hub, would show. Every
// connection must survive the idle time: no reconnection, no datagram
// dropped at a NAT, and a second echo round trip over the same
// connection. It logs how much faster than real time that goes.
func TestSynctest50Nodes(t *testing.T) {
	if testing.Short() {
		t.Skip("50 real nodes: skipped in -short")
	}
	const idle = 5 * time.Minute
	wallStart := time.Now() // real time: outside the bubble
	var virtual time.Duration
	synctest.Test(t, func(t *testing.T) {
		cfg := netlab.DefaultConfig()
		cfg.Link.Latency = 20 * time.Millisecond
		lab, err := netlab.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer lab.Close()
		begin := time.Now()

		hubHost, _ := lab.AddHost(netip.MustParseAddr("203.0.113.1"))
		hub := labNode(t, hubHost, 4433)
		nodes := []*mycelium.Node{hub}
		var wg sync.WaitGroup
		defer func() {
			for _, n := range nodes {
				n.Close()
			}
			wg.Wait()
		}()
		lh, err := hub.Listen("echo")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { echo.Serve(lh) })

		kinds := []func(c *netlab.NATConfig){
			func(c *netlab.NATConfig) {}, // MASQUERADE
			func(c *netlab.NATConfig) { c.Mapping, c.Ports = netlab.AddressAndPortDependent, netlab.PortRandom },
			func(c *netlab.NATConfig) { c.Filtering = netlab.AddressDependent },
			func(c *netlab.NATConfig) { c.Filtering = netlab.EndpointIndependent },
		}
		// short gives every other router 30 s timeouts, assured or not:
		// a stricter router than Linux, for the keep-alives to beat.
		short := func(i int, c *netlab.NATConfig) {
			if i%2 == 0 {
				c.Timeout, c.UnrepliedTimeout = 30*time.Second, 30*time.Second
			}
		}
		var hosts []*netlab.Host
		for i := range 49 {
			ncfg := netlab.DefaultNATConfig()
			ncfg.Addr = netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
			short(i, &ncfg)
			var nat *netlab.NAT
			if i%5 == 4 { // carrier-grade: a home NAT behind an ISP NAT
				outer, err := lab.AddNAT(ncfg)
				if err != nil {
					t.Fatal(err)
				}
				inner := netlab.DefaultNATConfig()
				inner.Addr = netip.AddrFrom4([4]byte{100, 64, 0, byte(i)})
				short(i, &inner)
				if nat, err = outer.AddNAT(inner); err != nil {
					t.Fatal(err)
				}
			} else {
				kinds[i%5](&ncfg)
				if nat, err = lab.AddNAT(ncfg); err != nil {
					t.Fatal(err)
				}
			}
			h, err := nat.AddHost(netip.MustParseAddr("192.168.0.2"))
			if err != nil {
				t.Fatal(err)
			}
			hosts = append(hosts, h)
		}
		roundTrips := func() {
			t.Helper()
			errs := make(chan error, len(hosts))
			for i, n := range nodes[1:] {
				wg.Go(func() {
					// Staggered: 49 handshakes finishing at one virtual
					// instant would race quic-go's accept queue (32
					// connections; past it, CONNECTION_REFUSED) against
					// the hub's accept loop.
					time.Sleep(time.Duration(i) * 5 * time.Millisecond)
					c, err := n.Dial(context.Background(), hub.ID(), "echo")
					if err == nil {
						err = echo.RoundTrip(c, 16<<10)
						c.Close()
					}
					errs <- err
				})
			}
			for range hosts {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, h := range hosts {
			n := labNode(t, h, 0)
			nodes = append(nodes, n)
			n.AddPeerAddr(hub.ID(), hub.LocalAddr())
		}
		roundTrips()
		if got := len(hub.Stats().Peers); got != len(hosts) {
			t.Fatalf("hub has %d peers, want %d", got, len(hosts))
		}
		natDrops := func() uint64 {
			d := lab.Stats().Dropped
			return d[netlab.DropNoMapping] + d[netlab.DropFiltered]
		}
		dropsBefore, connsBefore := natDrops(), hub.Stats().Counters.ConnsIn

		time.Sleep(idle) // on keep-alives only, in virtual time
		for i, n := range nodes[1:] {
			if len(n.Stats().Peers) != 1 {
				t.Fatalf("node %d (%v) lost its connection to the hub in %v of idle time", i, hosts[i], idle)
			}
		}
		if got := len(hub.Stats().Peers); got != len(hosts) {
			t.Fatalf("after %v idle the hub has %d peers, want %d", idle, got, len(hosts))
		}
		if d := natDrops() - dropsBefore; d != 0 {
			t.Fatalf("NATs dropped %d datagrams for want of a mapping or permission in %v of idle time: a mapping timed out under the keep-alives", d, idle)
		}
		roundTrips()
		if got := hub.Stats().Counters.ConnsIn; got != connsBefore {
			t.Fatalf("the hub accepted %d new connections after the idle time, want none: the old ones should carry the round trips", got-connsBefore)
		}
		virtual = time.Since(begin)
	})
	wall := time.Since(wallStart)
	t.Logf("50 real nodes, %v of virtual time in %v of wall time: %.0fx real time", virtual.Round(time.Millisecond), wall.Round(time.Millisecond), virtual.Seconds()/wall.Seconds())
}
