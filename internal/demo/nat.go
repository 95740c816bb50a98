package demo

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/internal/pipe"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// checkNATs runs real nodes on netlab, the in-memory internet: a public
// node P, node A behind a Linux-MASQUERADE-like NAT and node B behind a
// symmetric NAT. A and B each dial P; A's stream reaches B's echo service
// through P, which carries it over the connection B opened. Dialed
// directly, B's NAT drops A's packets. (The hole_punch and circuit checks
// show the node doing this itself.)
func checkNATs(ctx context.Context, _ []demoNode) Check {
	ch := Check{Name: "behind_nats"}
	fail := failer(&ch)
	ln, err := newLab()
	if err != nil {
		return fail("%v", err)
	}
	defer ln.close()
	lab := ln.lab
	p, a, b, err := ln.startTrio(lab, false)
	if err != nil {
		return fail("%v", err)
	}
	lb, _ := b.Listen("echo")
	ln.wg.Go(func() { echo.Serve(lb) })
	lp, _ := p.Listen("to-b")
	ln.wg.Go(func() {
		for {
			in, err := lp.Accept()
			if err != nil {
				return
			}
			ln.wg.Go(func() {
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
