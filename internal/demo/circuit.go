package demo

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/mycelium-net/mycelium"
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
	fail := failer(&ch)
	ln, err := newLab()
	if err != nil {
		return fail("%v", err)
	}
	defer ln.close()
	lab := ln.lab
	p, a, b, err := ln.startTrio(lab, true)
	if err != nil {
		return fail("%v", err)
	}
	lb, _ := b.Listen("echo")
	ln.wg.Go(func() { echo.Serve(lb) })
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

// demoDrain is the drain deadline of the relays in the relay_drain check.
const demoDrain = 2 * time.Second

// checkRelayDrain runs two public relays, P and Q, and A and B behind
// NATs as in checkCircuit. A reaches B over a circuit through one of
// them, R, and keeps a stream open. R is asked to drain (as SIGTERM does
// to `mycelium relay`): at R's drain deadline (demoDrain here) the
// circuit closes, and the connection inside it, stream and all, moves to
// a new circuit that A builds through the other relay (R published
// itself as full and refuses new circuits, and A's path layer avoids it).
// The same stream then echoes 16 KiB more.
func checkRelayDrain(ctx context.Context, _ []demoNode) Check {
	ch := Check{Name: "relay_drain"}
	fail := failer(&ch)
	ln, err := newLab()
	if err != nil {
		return fail("%v", err)
	}
	defer ln.close()
	lab := ln.lab
	relayCfg := func(c *mycelium.Config) {
		c.Relay = true
		c.RelayResources.DrainTimeout = demoDrain
	}
	hostP, _ := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
	hostQ, _ := lab.AddHost(netip.MustParseAddr("203.0.113.20"))
	p, err := ln.startWith(hostP, 4433, nil, relayCfg)
	if err != nil {
		return fail("%v", err)
	}
	boot := []mycelium.Peer{{ID: p.ID(), Addr: p.LocalAddr()}}
	q, err := ln.startWith(hostQ, 4433, boot, relayCfg)
	if err != nil {
		return fail("%v", err)
	}
	hostA, hostB := twoNATs(lab)
	a, err := ln.start(hostA, 0, boot)
	if err != nil {
		return fail("%v", err)
	}
	b, err := ln.start(hostB, 0, boot)
	if err != nil {
		return fail("%v", err)
	}
	lb, _ := b.Listen("echo")
	ln.wg.Go(func() { echo.Serve(lb) })
	err = waitFor(ctx, 60*time.Second, func() bool {
		r, ok := a.Lookup(b.ID())
		return ok && !r.Inbound && len(r.HomeRelays) == 2
	})
	if err != nil {
		return fail("waiting for A to know B's record with two home relays: %v", err)
	}
	via := func() (mycelium.NodeID, bool) {
		for _, peer := range a.Stats().Peers {
			if peer.ID == b.ID() && peer.Path == "circuit" && len(peer.Via) == 1 {
				return peer.Via[0], true
			}
		}
		return mycelium.NodeID{}, false
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := a.Dial(dctx, b.ID(), "echo")
	if err != nil {
		return fail("A dials B by ID: %v", err)
	}
	defer c.Close()
	first, ok := via()
	if !ok {
		return fail("A's connection to B is not a one-relay circuit")
	}
	r, other := p, q
	if first == q.ID() {
		r, other = q, p
	}
	msg := []byte("ping")
	if _, err := c.Write(msg); err != nil {
		return fail("write: %v", err)
	}
	if _, err := io.ReadFull(c, make([]byte, len(msg))); err != nil {
		return fail("echo over the circuit: %v", err)
	}
	t0 := time.Now()
	if _, err := r.Drain(ctx); err != nil {
		return fail("Drain: %v", err)
	}
	drainTook := time.Since(t0)
	// The circuit is gone; the connection is not: A builds one through
	// the other relay, B takes it into the same connection, and the
	// stream goes on.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := echo.RoundTrip(c, 16<<10); err != nil {
		return fail("the stream after relay %s drained: %v", r.ID().Short(), err)
	}
	moved := time.Since(t0)
	second, ok := via()
	if !ok || second != other.ID() {
		return fail("A's connection to B goes via %s after the drain, want the other relay %s", second.Short(), other.ID().Short())
	}
	var migrations uint64
	for _, peer := range a.Stats().Peers {
		if peer.ID == b.ID() {
			migrations = peer.Migrations
		}
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("relay %s drained (%v deadline, done in %v): A's connection to B moved to a circuit through %s (%d migration), and the same stream echoed 16 KiB more %v after the drain began",
		r.ID().Short(), demoDrain, drainTook.Round(time.Millisecond), other.ID().Short(), migrations, moved.Round(time.Millisecond))
	return ch
}

// checkPathChange is the migration watchdog at work. As in checkCircuit,
// A (behind MASQUERADE) reaches B (behind a symmetric NAT) over a circuit
// through the public relay P, and opens a stream to B's echo service.
// Then, with the stream open:
//   - B's router rebinds (every mapping gets a new public port): the side
//     that accepted the connection, where a plain QUIC connection dies;
//   - A's host moves behind another router (a laptop changing networks:
//     a new local address and a new public one).
//
// After each, the same stream echoes 16 KiB more, intact.
func checkPathChange(ctx context.Context, _ []demoNode) Check {
	ch := Check{Name: "path_change"}
	fail := failer(&ch)
	ln, err := newLab()
	if err != nil {
		return fail("%v", err)
	}
	defer ln.close()
	lab := ln.lab
	pubHost, err := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
	if err != nil {
		return fail("%v", err)
	}
	hostA, hostB, _, homeB := twoRouters(lab)
	p, err := ln.start(pubHost, 4433, nil)
	if err != nil {
		return fail("%v", err)
	}
	boot := []mycelium.Peer{{ID: p.ID(), Addr: p.LocalAddr()}}
	a, err := ln.start(hostA, 0, boot)
	if err != nil {
		return fail("%v", err)
	}
	b, err := ln.start(hostB, 0, boot)
	if err != nil {
		return fail("%v", err)
	}
	lb, _ := b.Listen("echo")
	ln.wg.Go(func() { echo.Serve(lb) })
	err = waitFor(ctx, 30*time.Second, func() bool {
		r, ok := a.Lookup(b.ID())
		return ok && !r.Inbound && len(r.Neighbors) > 0
	})
	if err != nil {
		return fail("waiting for A to know B's record: %v", err)
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := a.Dial(dctx, b.ID(), "echo")
	if err != nil {
		return fail("A dials B by ID: %v", err)
	}
	defer c.Close()
	if err := echo.Exchange(c, 16<<10); err != nil {
		return fail("echo over the circuit: %v", err)
	}
	cafeCfg := netlab.DefaultNATConfig()
	cafeCfg.Addr = netip.MustParseAddr("198.51.100.3")
	cafe, err := lab.AddNAT(cafeCfg)
	if err != nil {
		return fail("%v", err)
	}
	var took []string
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"B's router rebound", func() error { homeB.Rebind(); return nil }},
		{"A's host moved to another router", func() error { return hostA.MoveTo(cafe, netip.MustParseAddr("172.16.0.10")) }},
	} {
		if err := step.do(); err != nil {
			return fail("%s: %v", step.what, err)
		}
		t0 := time.Now()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := echo.Exchange(c, 16<<10); err != nil {
			return fail("the stream after %s: %v", step.what, err)
		}
		took = append(took, fmt.Sprintf("%s: 16 KiB echoed %v later", step.what, time.Since(t0).Round(time.Millisecond)))
	}
	var peer mycelium.PeerStats
	for _, ps := range a.Stats().Peers {
		if ps.ID == b.ID() {
			peer = ps
		}
	}
	how := "the circuit carried on: the relay's links followed each end to its new address (QUIC migration on the links)"
	if peer.Migrations > 0 {
		how = fmt.Sprintf("the path layer moved the connection %d times; it is on a %s path now", peer.Migrations, peer.Path)
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("one stream from A to B over a circuit through P (%s) lived through two path changes: %s; %s; %s",
		p.ID().Short(), took[0], took[1], how)
	return ch
}
