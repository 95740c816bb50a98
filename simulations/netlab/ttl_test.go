package netlab_test

import (
	"net"
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestTTLSynctest: a datagram's time to live counts router hops. A NAT
// router and the internet each spend one; a NAT router that would forward
// with none left drops the datagram before making a mapping, and a NATed
// host's TTL-2 datagram opens its own NAT but dies before the peer's.
func TestTTLSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newLab(t)
		natA := addNAT(t, lab, natConfig())
		natB := addNAT(t, lab, natConfig(func(c *netlab.NATConfig) { c.Addr = netip.MustParseAddr("198.51.100.2") }))
		a := listen(t, addHost(t, natA, lanAddr), 5000)
		b := listen(t, addHost(t, natB, lanAddr), 5000)
		s := listen(t, addHost(t, lab, server1), 3478)

		sendTTL := func(c *netlab.Conn, to netip.AddrPort, ttl int) {
			t.Helper()
			if _, err := c.WriteToTTL([]byte("opener"), net.UDPAddrFromAddrPort(to), ttl); err != nil {
				t.Fatalf("WriteToTTL %d: %v", ttl, err)
			}
		}
		ttlDrops := func() uint64 { return lab.Stats().Dropped[netlab.DropTTL] }

		sendTTL(a, addrOf(s), 1)
		mustNotRecv(t, s)
		if natA.Mappings() != 0 || ttlDrops() != 1 {
			t.Fatalf("TTL 1: %d mappings and %d TTL drops, want 0 and 1 (dropped by A's router, no mapping)", natA.Mappings(), ttlDrops())
		}
		sendTTL(a, addrOf(s), 2)
		mustNotRecv(t, s)
		if natA.Mappings() != 1 || ttlDrops() != 2 {
			t.Fatalf("TTL 2: %d mappings and %d TTL drops, want 1 and 2 (mapped, then dropped by the internet)", natA.Mappings(), ttlDrops())
		}
		sendTTL(a, addrOf(s), 3)
		if got, _ := mustRecv(t, s); got != "opener" {
			t.Fatalf("TTL 3 to a public host: read %q", got)
		}

		// B learns its mapping; A's TTL-3 datagram to it reaches B's router
		// with one hop left, which it cannot forward inward.
		send(t, b, addrOf(s), "stun")
		_, mb := mustRecv(t, s)
		send(t, a, addrOf(s), "stun")
		_, ma := mustRecv(t, s)
		send(t, b, ma, "open B's filter for A")
		mustNotRecv(t, a) // A's filter is closed to B
		sendTTL(a, mb, 3)
		mustNotRecv(t, b)
		if ttlDrops() != 3 {
			t.Fatalf("TTL 3 to a NATed host: %d TTL drops, want 3", ttlDrops())
		}
		sendTTL(a, mb, 4)
		if got, _ := mustRecv(t, b); got != "opener" {
			t.Fatalf("TTL 4 to a NATed host: read %q", got)
		}

		if _, err := a.WriteToTTL([]byte("x"), net.UDPAddrFromAddrPort(addrOf(s)), 0); err == nil {
			t.Fatal("WriteToTTL with TTL 0: no error")
		}
	})
}
