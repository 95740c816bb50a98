package demo

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// checkNATClassification runs real nodes on netlab: three public nodes
// (two ports on one address, one on another), node A behind a
// Linux-MASQUERADE-like NAT and node B behind a symmetric NAT, all joined
// through the first. Each NATed node asks the public nodes its registry
// names for its reflexive address (STUN on its QUIC socket) and must
// classify its NAT's mapping as configured.
func checkNATClassification(ctx context.Context, _ []demoNode) Check {
	ch := Check{Name: "nat_classification"}
	fail := func(format string, a ...any) Check {
		ch.Detail = fmt.Sprintf(format, a...)
		return ch
	}
	lab, err := netlab.New(netlab.DefaultConfig())
	if err != nil {
		return fail("%v", err)
	}
	defer lab.Close()
	pub1, _ := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
	pub2, _ := lab.AddHost(netip.MustParseAddr("203.0.113.20"))
	hostA, hostB := twoNATs(lab)

	var ln labNodes
	defer ln.close()
	var boot []mycelium.Peer
	start := func(h *netlab.Host, port uint16) (*mycelium.Node, error) {
		n, err := ln.start(h, port, boot)
		if err == nil && boot == nil {
			boot = []mycelium.Peer{{ID: n.ID(), Addr: n.LocalAddr()}}
		}
		return n, err
	}
	for _, s := range []struct {
		h    *netlab.Host
		port uint16
	}{{pub1, 4433}, {pub1, 4434}, {pub2, 4433}} {
		if _, err := start(s.h, s.port); err != nil {
			return fail("%v", err)
		}
	}
	a, err := start(hostA, 0)
	if err != nil {
		return fail("%v", err)
	}
	b, err := start(hostB, 0)
	if err != nil {
		return fail("%v", err)
	}
	want := map[*mycelium.Node]string{a: "endpoint-independent", b: "address-and-port-dependent"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		done := true
		for n := range want {
			if n.Stats().NAT.Mapping == "unknown" {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fail("after 20 s: A %+v, B %+v", a.Stats().NAT, b.Stats().NAT)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var parts []string
	for _, x := range []struct {
		name string
		n    *mycelium.Node
	}{{"A (MASQUERADE)", a}, {"B (symmetric)", b}} {
		st := x.n.Stats().NAT
		if st.Mapping != want[x.n] || st.Public {
			return fail("%s classified its mapping as %s (public %v), want %s", x.name, st.Mapping, st.Public, want[x.n])
		}
		parts = append(parts, fmt.Sprintf("%s: %s mapping, reflexive %s", x.name, st.Mapping, strings.Join(st.Reflexive, " ")))
	}
	ch.OK = true
	ch.Detail = strings.Join(parts, "; ") + " (STUN answers of 3 public nodes)"
	return ch
}
