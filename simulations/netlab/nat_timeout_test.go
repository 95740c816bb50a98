package netlab_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// timeoutLab is a host behind a NAT with sequential ports, so that a new
// mapping shows as a new port, and a public server. The NAT's timeouts are
// the defaults: 30 s unreplied, 120 s once replied.
func timeoutLab(t *testing.T, mutate ...func(*netlab.NATConfig)) (lab *netlab.Network, nat *netlab.NAT, h, s *netlab.Conn) {
	t.Helper()
	lab = newLab(t)
	nat = addNAT(t, lab, natConfig(append([]func(*netlab.NATConfig){func(c *netlab.NATConfig) {
		c.Ports = netlab.PortSequential
	}}, mutate...)...))
	h = listen(t, addHost(t, nat, lanAddr), 5000)
	s = listen(t, addHost(t, lab, server1), 3478)
	return lab, nat, h, s
}

// open sends from h to s and returns the mapping s saw.
func open(t *testing.T, h, s *netlab.Conn) netip.AddrPort {
	t.Helper()
	send(t, h, addrOf(s), "out")
	_, m := mustRecv(t, s)
	return m
}

// answers reports whether a datagram from s to m reaches h.
func answers(t *testing.T, s *netlab.Conn, m netip.AddrPort, h *netlab.Conn) bool {
	t.Helper()
	send(t, s, m, "in")
	_, _, ok := recvWithin(t, h, time.Millisecond)
	return ok
}

func TestMappingTimeoutSynctest(t *testing.T) {
	t.Run("unreplied_mapping_expires_after_30s", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab, nat, h, s := timeoutLab(t)
			m1 := open(t, h, s)
			time.Sleep(29 * time.Second)
			if nat.Mappings() != 1 {
				t.Fatalf("NAT holds %d mappings 29 s after H sent, want 1", nat.Mappings())
			}
			time.Sleep(time.Second)
			if nat.Mappings() != 0 {
				t.Fatalf("NAT holds %d mappings 30 s after an unanswered datagram, want 0", nat.Mappings())
			}
			if answers(t, s, m1, h) {
				t.Fatal("a datagram reached H through a mapping that should have expired")
			}
			if got := lab.Stats().Dropped[netlab.DropNoMapping]; got != 1 {
				t.Fatalf("Stats: %d no-mapping drops, want 1", got)
			}
			if m2 := open(t, h, s); m2 == m1 {
				t.Fatalf("after expiry H got mapping %v again, want a new port", m2)
			}
		})
	})
	t.Run("replied_mapping_lives_120s_from_last_outbound", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, _, h, s := timeoutLab(t)
			m1 := open(t, h, s)
			sent := time.Now()
			if !answers(t, s, m1, h) {
				t.Fatal("the first reply did not reach H")
			}
			time.Sleep(time.Until(sent.Add(119 * time.Second)))
			if !answers(t, s, m1, h) {
				t.Fatal("the mapping died before 120 s")
			}
			// Inbound datagrams do not refresh: 120 s after the last
			// outbound one, the mapping is gone.
			time.Sleep(time.Until(sent.Add(120 * time.Second)))
			if answers(t, s, m1, h) {
				t.Fatal("a datagram reached H 120 s after H last sent, want the mapping expired")
			}
			if m2 := open(t, h, s); m2 == m1 || m2.Port() != m1.Port()+1 {
				t.Fatalf("after expiry H got mapping %v, want the next sequential port after %v", m2, m1)
			}
		})
	})
	t.Run("outbound_refreshes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, _, h, s := timeoutLab(t)
			m1 := open(t, h, s)
			answers(t, s, m1, h)
			for range 10 { // 1,000 s, far past the timeout
				time.Sleep(100 * time.Second)
				if m := open(t, h, s); m != m1 {
					t.Fatalf("mapping changed from %v to %v though H sent every 100 s", m1, m)
				}
			}
			if !answers(t, s, m1, h) {
				t.Fatal("the refreshed mapping let no reply in")
			}
		})
	})
	t.Run("inbound_refreshes_when_configured", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, _, h, s := timeoutLab(t, func(c *netlab.NATConfig) { c.InboundRefresh = true })
			m1 := open(t, h, s)
			for i := range 10 {
				if !answers(t, s, m1, h) {
					t.Fatalf("after %d s of inbound traffic only, the mapping is gone; InboundRefresh should keep it", i*100)
				}
				time.Sleep(100 * time.Second)
			}
		})
	})
	t.Run("flush_forces_rebinding", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab, nat, h, s := timeoutLab(t)
			m1 := open(t, h, s)
			nat.Flush()
			if answers(t, s, m1, h) {
				t.Fatal("a datagram reached H through a flushed mapping")
			}
			if m2 := open(t, h, s); m2 == m1 {
				t.Fatalf("after Flush H kept mapping %v, want a new one", m1)
			}
			if got := lab.Stats().Dropped[netlab.DropNoMapping]; got != 1 {
				t.Fatalf("Stats: %d no-mapping drops, want 1", got)
			}
		})
	})
}
