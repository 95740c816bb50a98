package netlab_test

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestSynctestRegistryLeaveAndCrash: five real nodes on netlab, chained by
// their bootstrap peers, all come to know all five records. A service on
// one is found by name and dialled by ID alone. A node that closes
// cleanly is gone from every other registry at once (its tombstone); one
// that crashes stays until its record's lifetime runs out, then goes. The
// leaver was the bootstrap peer of the last node; the survivors, whose
// own records must keep being refreshed for the test to pass, find each
// other again through their registries.
func TestSynctestRegistryLeaveAndCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := netlab.DefaultConfig()
		cfg.Link.Latency = 10 * time.Millisecond
		lab, err := netlab.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer lab.Close()

		var nodes []*mycelium.Node
		var conns []interface{ Close() error }
		defer func() {
			for _, n := range nodes {
				n.Close()
			}
		}()
		for i := range 5 {
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
			ncfg.Registry.Lifetime = 4 * time.Minute
			ncfg.Registry.RefreshInterval = 2 * time.Minute
			if i > 0 {
				prev := nodes[i-1]
				ncfg.Bootstrap = []mycelium.Peer{{ID: prev.ID(), Addr: prev.LocalAddr()}}
			}
			n, err := mycelium.New(ncfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
			conns = append(conns, pc)
		}
		knowAll := func(ns []*mycelium.Node, want int) func() bool {
			return func() bool {
				for _, n := range ns {
					if n.Stats().Known != want {
						return false
					}
				}
				return true
			}
		}
		waitFor(t, "every node to know all five records", knowAll(nodes, 5))

		ln, err := nodes[4].Listen("svc")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err == nil {
				io.Copy(c, c)
				c.Close()
			}
		}()
		waitFor(t, "the service to be found on node 0", func() bool {
			ids := nodes[0].LookupService("svc")
			return len(ids) == 1 && ids[0] == nodes[4].ID()
		})
		c, err := nodes[0].Dial(context.Background(), nodes[4].ID(), "svc")
		if err != nil {
			t.Fatalf("dial by ID: %v", err)
		}
		c.Write([]byte("hi"))
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
			t.Fatalf("echo: %q %v", buf, err)
		}
		c.Close()
		ln.Close()

		// Graceful leave: gone everywhere within a second (virtual).
		left := nodes[3]
		start := time.Now()
		left.Close()
		rest := []*mycelium.Node{nodes[0], nodes[1], nodes[2], nodes[4]}
		waitFor(t, "the leaver's record to be withdrawn", func() bool {
			for _, n := range rest {
				if _, ok := n.Lookup(left.ID()); ok {
					return false
				}
			}
			return true
		})
		if d := time.Since(start); d > time.Second {
			t.Errorf("graceful leave took %v to reach every registry", d)
		}
		t.Logf("graceful leave withdrawn everywhere after %v", time.Since(start))

		// Crash: the socket goes dead; no tombstone can leave. The others
		// keep the record until it expires.
		crashed := nodes[2]
		rec, ok := nodes[0].Lookup(crashed.ID())
		if !ok {
			t.Fatal("node 0 lost the record of node 2 before the crash")
		}
		conns[2].Close()
		crashed.Close()
		survivors := []*mycelium.Node{nodes[0], nodes[1], nodes[4]}
		time.Sleep(time.Until(rec.Expires()) - time.Second)
		for _, n := range survivors {
			if r, ok := n.Lookup(crashed.ID()); !ok || r.Seq < rec.Seq {
				t.Fatalf("a second before its expiry the crashed node's record is gone (%v) at %s", ok, n.ID().Short())
			}
		}
		time.Sleep(2 * time.Second)
		for _, n := range survivors {
			if r, ok := n.Lookup(crashed.ID()); ok {
				t.Fatalf("the crashed node's record (expiring %v) is still served at %s after its lifetime", r.Expires(), n.ID().Short())
			}
		}
		// And it leaves the count once the sweep has run.
		waitFor(t, "the sweep to drop the crashed node's record", knowAll(survivors, 3))
	})
}
