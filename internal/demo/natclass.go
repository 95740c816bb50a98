package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mycelium-net/mycelium"
)

// checkNATClassification runs real nodes on netlab: three public nodes
// (two ports on one address, one on another), node A behind a
// Linux-MASQUERADE-like NAT and node B behind a symmetric NAT, all joined
// through the first. Each NATed node asks the public nodes its registry
// names for its reflexive address (STUN on its QUIC socket) and must
// classify its NAT's mapping as configured.
func checkNATClassification(ctx context.Context, _ []demoNode) Check {
	ch := Check{Name: "nat_classification"}
	fail := failer(&ch)
	ln, err := newLab()
	if err != nil {
		return fail("%v", err)
	}
	defer ln.close()
	lab := ln.lab
	hostA, hostB := twoNATs(lab)

	boot, err := ln.startObservers(lab)
	if err != nil {
		return fail("%v", err)
	}
	a, err := ln.start(hostA, 0, boot)
	if err != nil {
		return fail("%v", err)
	}
	b, err := ln.start(hostB, 0, boot)
	if err != nil {
		return fail("%v", err)
	}
	want := map[*mycelium.Node]string{a: "endpoint-independent", b: "address-and-port-dependent"}
	err = waitFor(ctx, 20*time.Second, func() bool {
		return a.Stats().NAT.Mapping != "unknown" && b.Stats().NAT.Mapping != "unknown"
	})
	if err != nil {
		return fail("classification: %v: A %+v, B %+v", err, a.Stats().NAT, b.Stats().NAT)
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
