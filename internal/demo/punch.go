package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// checkHolePunch runs real nodes on netlab: three public nodes and nodes
// A and C, each behind its own Linux-MASQUERADE-like NAT (endpoint-
// independent mapping, address-and-port-dependent filtering), which drop
// every packet the host behind them did not ask for. Once both have
// classified their NATs and A knows C's record, A dials C by node ID
// alone: the node coordinates a hole punch through a public node (openers,
// then a simultaneous dial), and the stream must run over a direct
// connection to C's NAT, with no node in between.
func checkHolePunch(ctx context.Context, _ []demoNode) Check {
	ch := Check{Name: "hole_punch"}
	fail := failer(&ch)
	ln, err := newLab()
	if err != nil {
		return fail("%v", err)
	}
	defer ln.close()
	lab := ln.lab
	var hosts []*netlab.Host
	for i, lan := range []string{"192.168.1.10", "192.168.7.10"} {
		cfg := netlab.DefaultNATConfig()
		cfg.Addr = netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + 2*i)})
		home, err := lab.AddNAT(cfg)
		if err != nil {
			return fail("%v", err)
		}
		h, err := home.AddHost(netip.MustParseAddr(lan))
		if err != nil {
			return fail("%v", err)
		}
		hosts = append(hosts, h)
	}

	boot, err := ln.startObservers(lab)
	if err != nil {
		return fail("%v", err)
	}
	a, err := ln.start(hosts[0], 0, boot)
	if err != nil {
		return fail("%v", err)
	}
	c, err := ln.start(hosts[1], 0, boot)
	if err != nil {
		return fail("%v", err)
	}
	lc, _ := c.Listen("echo")
	ln.wg.Go(func() { echo.Serve(lc) })
	err = waitFor(ctx, 30*time.Second, func() bool {
		r, ok := a.Lookup(c.ID())
		return ok && !r.Inbound && len(r.Reflexive) > 0 && len(r.Neighbors) > 0 && a.Stats().NAT.Mapping != "unknown"
	})
	if err != nil {
		return fail("waiting for both NATs to be classified and A to know C's record: %v", err)
	}

	t0 := time.Now()
	s, err := a.Dial(ctx, c.ID(), "echo")
	if err != nil {
		return fail("A dials C by ID: %v", err)
	}
	took := time.Since(t0)
	msg := []byte("through both NATs, no node in between")
	s.Write(msg)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(s, got)
	s.Close()
	if err != nil || !bytes.Equal(got, msg) {
		return fail("echo over the punched connection: %q, %v", got, err)
	}
	var path string
	for _, p := range a.Stats().Peers {
		if p.ID == c.ID() {
			path = p.Path + " " + p.Addr
		}
	}
	if !strings.HasPrefix(path, "direct 198.51.100.3:") {
		return fail("A's connection to C is %q, want a direct one to C's NAT, 198.51.100.3", path)
	}
	st, cst := a.Stats().Counters, c.Stats().Counters
	// A's Dial punched, or C's overlay had punched to A first and A's
	// Dial found that connection.
	if st.PunchDirect == 0 && cst.PunchDirect == 0 {
		return fail("A reached C without a hole punch (A %+v, C %+v)", st, cst)
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("A and C behind MASQUERADE-like NATs; A dialed C by ID: hole punched, %s, dial %v (openers sent: A %d, C %d)",
		path, took.Round(time.Millisecond), st.PunchOpenersSent, cst.PunchOpenersSent)
	return ch
}
