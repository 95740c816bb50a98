package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// checkCircuit runs real nodes on netlab: a public relay P, node A behind
// a Linux-MASQUERADE-like NAT and node B behind a symmetric NAT, both
// joined through P. A dials B by node ID alone. No direct path opens (one
// cheap punch try at most), so Dial builds a one-hop circuit through P,
// one of B's neighbours, and the end-to-end QUIC connection runs inside
// it; 64 KiB must echo back intact and A must list B on path "circuit".
func checkCircuit(ctx context.Context, _ []demoNode) Check {
	ch := Check{Name: "circuit"}
	fail := func(format string, a ...any) Check {
		ch.Detail = fmt.Sprintf(format, a...)
		return ch
	}
	lab, err := netlab.New(netlab.DefaultConfig())
	if err != nil {
		return fail("%v", err)
	}
	defer lab.Close()
	var ln labNodes
	var wg sync.WaitGroup
	defer func() {
		ln.close()
		wg.Wait()
	}()
	p, a, b, err := ln.startTrio(lab, true)
	if err != nil {
		return fail("%v", err)
	}
	lb, _ := b.Listen("echo")
	wg.Go(func() { echo.Serve(lb) })
	err = waitFor(ctx, 30*time.Second, func() bool {
		r, ok := a.Lookup(b.ID())
		return ok && !r.Inbound && len(r.Neighbors) > 0
	})
	if err != nil {
		return fail("waiting for A to know B's record: %v", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	t0 := time.Now()
	c, err := a.Dial(dctx, b.ID(), "echo")
	if err != nil {
		return fail("A dials B by ID: %v", err)
	}
	took := time.Since(t0)
	err = echo.RoundTrip(c, 64<<10)
	c.Close()
	if err != nil {
		return fail("echo over the circuit: %v", err)
	}
	for _, peer := range a.Stats().Peers {
		if peer.ID != b.ID() {
			continue
		}
		if peer.Path != "circuit" || len(peer.Via) != 1 || peer.Via[0] != p.ID() {
			return fail("A's connection to B: %s via %v, want a circuit through P", peer.Path, peer.Via)
		}
		ch.OK = true
		ch.Detail = fmt.Sprintf("A (MASQUERADE) dialed B (symmetric NAT) by ID: circuit through P (%s), connected in %v, 64 KiB echoed (punch tries: %d)",
			p.ID().Short(), took.Round(time.Millisecond), a.Stats().Counters.PunchAttempts)
		return ch
	}
	return fail("A lists no connection to B")
}
