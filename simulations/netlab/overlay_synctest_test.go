package netlab_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestSynctestOverlay30Nodes: 30 real nodes (real quic-go, real TLS, the
// real HyParView and Plumtree drivers) on netlab with 10 ms links form an
// overlay from one contact, deliver a broadcast to all, lose 10 nodes at
// once, heal, and deliver to all 20 survivors again.
func TestSynctestOverlay30Nodes(t *testing.T) {
	if testing.Short() {
		t.Skip("30 real nodes: skipped in -short")
	}
	synctest.Test(t, func(t *testing.T) {
		cfg := netlab.DefaultConfig()
		cfg.Link.Latency = 10 * time.Millisecond
		lab, err := netlab.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer lab.Close()

		var nodes []*mycelium.Node
		defer func() {
			for _, n := range nodes {
				n.Close()
			}
		}()
		for i := range 30 {
			h, err := lab.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}))
			if err != nil {
				t.Fatal(err)
			}
			pc, err := h.ListenPacket(4433)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := mycelium.GenerateKey()
			ncfg := mycelium.DefaultConfig()
			ncfg.Key, ncfg.PacketConn = key, pc
			if i > 0 {
				ncfg.Bootstrap = []mycelium.Peer{{ID: nodes[0].ID(), Addr: nodes[0].LocalAddr()}}
			}
			n, err := mycelium.New(ncfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
		}
		// Let joins and a few shuffles settle (virtual time): the views
		// are checked once no exchange is in flight that could change them.
		waitFor(t, "the overlay to form", func() bool { return checkViewsOK(nodes, nil) == nil })

		live := slices.Clone(nodes)
		broadcastToAll(t, live, "first")

		// 10 nodes fail at once (not the contact, to show repair from the
		// passive views rather than a rejoin).
		dead := map[mycelium.NodeID]bool{}
		for _, n := range nodes[10:20] {
			dead[n.ID()] = true
			n.Close()
		}
		live = slices.DeleteFunc(live, func(n *mycelium.Node) bool { return dead[n.ID()] })
		waitFor(t, "survivors' active views to drop the dead and refill", func() bool {
			return checkViewsOK(live, dead) == nil
		})
		checkViews(t, live, dead)
		broadcastToAll(t, live, "after the failure")
	})
}

// checkViewsOK reports the first violated overlay invariant: every node
// has a non-empty active view of live nodes, no self-links, views within
// bounds, and active views symmetric.
func checkViewsOK(nodes []*mycelium.Node, dead map[mycelium.NodeID]bool) error {
	active := map[mycelium.NodeID][]mycelium.NodeID{}
	for _, n := range nodes {
		st := n.Stats()
		if len(st.Active) == 0 {
			return fmt.Errorf("%s has an empty active view", n.ID().Short())
		}
		if len(st.Active) > 5 || st.Passive > 30 {
			return fmt.Errorf("%s views out of bounds: %d active, %d passive", n.ID().Short(), len(st.Active), st.Passive)
		}
		for _, p := range st.Active {
			if p == n.ID() {
				return fmt.Errorf("%s has itself in its active view", n.ID().Short())
			}
			if dead[p] {
				return fmt.Errorf("%s still holds dead %s", n.ID().Short(), p.Short())
			}
		}
		active[n.ID()] = st.Active
	}
	for id, view := range active {
		for _, p := range view {
			if !slices.Contains(active[p], id) {
				return fmt.Errorf("asymmetric: %s has %s, not the reverse", id.Short(), p.Short())
			}
		}
	}
	// One component: a walk over active views from any node reaches all.
	seen := map[mycelium.NodeID]bool{nodes[0].ID(): true}
	queue := []mycelium.NodeID{nodes[0].ID()}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, p := range active[id] {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	if len(seen) != len(nodes) {
		return fmt.Errorf("the overlay is split: %d of %d nodes reachable", len(seen), len(nodes))
	}
	return nil
}

func checkViews(t *testing.T, nodes []*mycelium.Node, dead map[mycelium.NodeID]bool) {
	t.Helper()
	if err := checkViewsOK(nodes, dead); err != nil {
		t.Fatal(err)
	}
}

// broadcastToAll broadcasts from the last node and checks that every node
// delivers the message exactly once.
func broadcastToAll(t *testing.T, nodes []*mycelium.Node, payload string) {
	t.Helper()
	var subs []*mycelium.Subscription
	for _, n := range nodes {
		s, err := n.Subscribe("test")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs = append(subs, s)
	}
	if err := nodes[len(nodes)-1].Broadcast(context.Background(), "test", []byte(payload)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second) // virtual: ample for GRAFT repairs
	maxHops := 0
	for i, s := range subs {
		got := 0
		for len(s.C) > 0 {
			m := <-s.C
			if string(m.Payload) == payload {
				got++
				maxHops = max(maxHops, m.Hops)
			}
		}
		if got != 1 {
			st := nodes[i].Stats()
			var views []string
			for _, n := range nodes {
				ns := n.Stats()
				views = append(views, fmt.Sprintf("%s: active %v eager %d lazy %d dropped %d", n.ID().Short(), shortIDs(ns.Active), ns.Broadcast.Eager, ns.Broadcast.Lazy, ns.Counters.OverlayDropped))
			}
			t.Fatalf("node %d of %d (%s) delivered %q %d times, want once; its broadcast stats %+v\n%s", i, len(nodes), nodes[i].ID().Short(), payload, got, st.Broadcast, strings.Join(views, "\n"))
		}
	}
	t.Logf("%q reached all %d nodes, LDH %d", payload, len(nodes), maxHops)
}

func shortIDs(ids []mycelium.NodeID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Short()
	}
	return out
}
