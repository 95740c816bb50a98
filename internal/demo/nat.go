package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/internal/pipe"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// checkNATs runs real nodes on netlab, the in-memory internet: a public
// node P, node A behind a Linux-MASQUERADE-like NAT and node B behind a
// symmetric NAT. A and B each dial P; A's stream reaches B's echo service
// through P, which carries it over the connection B opened. Dialed
// directly, B's NAT drops A's packets. (Hole punching and circuits, in
// later versions, replace the relaying done here by hand.)
func checkNATs(ctx context.Context, _ []demoNode) Check {
	ch := Check{Name: "behind_nats"}
	fail := func(format string, a ...any) Check {
		ch.Detail = fmt.Sprintf(format, a...)
		return ch
	}
	lab, err := netlab.New(netlab.DefaultConfig())
	if err != nil {
		return fail("%v", err)
	}
	defer lab.Close()
	pubHost, _ := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
	masq := netlab.DefaultNATConfig()
	masq.Addr = netip.MustParseAddr("198.51.100.1")
	homeA, _ := lab.AddNAT(masq)
	sym := netlab.DefaultNATConfig()
	sym.Addr = netip.MustParseAddr("198.51.100.2")
	sym.Mapping, sym.Filtering, sym.Ports = netlab.AddressAndPortDependent, netlab.AddressAndPortDependent, netlab.PortRandom
	homeB, _ := lab.AddNAT(sym)
	hostA, _ := homeA.AddHost(netip.MustParseAddr("192.168.1.10"))
	hostB, _ := homeB.AddHost(netip.MustParseAddr("10.0.0.10"))

	var nodes []*mycelium.Node
	var wg sync.WaitGroup
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
		wg.Wait()
	}()
	start := func(h *netlab.Host, port uint16) (*mycelium.Node, error) {
		pc, err := h.ListenPacket(port)
		if err != nil {
			return nil, err
		}
		key, err := mycelium.GenerateKey()
		if err != nil {
			return nil, err
		}
		cfg := mycelium.DefaultConfig()
		cfg.Key, cfg.PacketConn, cfg.Logger = key, pc, slog.New(slog.DiscardHandler)
		cfg.HandshakeTimeout = time.Second
		n, err := mycelium.New(cfg)
		if err == nil {
			err = n.Start()
		}
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		return n, nil
	}
	p, err := start(pubHost, 4433)
	if err != nil {
		return fail("%v", err)
	}
	a, err := start(hostA, 0)
	if err != nil {
		return fail("%v", err)
	}
	b, err := start(hostB, 0)
	if err != nil {
		return fail("%v", err)
	}
	lb, _ := b.Listen("echo")
	wg.Go(func() { echo.Serve(lb) })
	lp, _ := p.Listen("to-b")
	wg.Go(func() {
		for {
			in, err := lp.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				out, err := p.Dial(ctx, b.ID(), "echo")
				if err != nil {
					in.(interface{ Reset() error }).Reset()
					return
				}
				pipe.Splice(in, out)
			})
		}
	})
	if err := a.Connect(ctx, p.ID(), p.LocalAddr()); err != nil {
		return fail("A (behind MASQUERADE) cannot reach P: %v", err)
	}
	if err := b.Connect(ctx, p.ID(), p.LocalAddr()); err != nil {
		return fail("B (behind a symmetric NAT) cannot reach P: %v", err)
	}
	// Connect returns once B's side of the handshake is done; P's side
	// follows half a round trip later. Wait for P to list B.
	var bAddr net.Addr
	for deadline := time.Now().Add(10 * time.Second); bAddr == nil; time.Sleep(5 * time.Millisecond) {
		for _, peer := range p.Stats().Peers {
			if peer.ID == b.ID() {
				bAddr, _ = net.ResolveUDPAddr("udp", peer.Addr)
			}
		}
		if bAddr == nil && time.Now().After(deadline) {
			return fail("P does not list B as a peer")
		}
	}
	c, err := a.Dial(ctx, p.ID(), "to-b")
	if err != nil {
		return fail("A -> P/to-b: %v", err)
	}
	err = echo.RoundTrip(c, 64<<10)
	c.Close()
	if err != nil {
		return fail("A -> P -> B echo: %v", err)
	}
	// Try B directly at the mapping P sees it from.
	a.AddPeerAddr(b.ID(), bAddr)
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, direct := a.Dial(dctx, b.ID(), "echo")
	cancel()
	if direct == nil {
		return fail("A reached B directly through B's symmetric NAT, which should filter it")
	}
	st := lab.Stats()
	ch.OK = true
	ch.Detail = fmt.Sprintf("A (MASQUERADE) -> P -> B (symmetric NAT): 64 KiB echoed; B's NAT mapped it to %v; a direct A -> B dial fails (%d datagrams filtered, %d NAT translations)",
		bAddr, st.Dropped[netlab.DropFiltered], st.Translated)
	return ch
}
