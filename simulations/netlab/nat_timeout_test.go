package netlab_test

import (
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// timeoutLab is a host behind a NAT with sequential ports, so that a new
// mapping shows as a new port, and a public server. The NAT's timeouts are
// the defaults: 30 s until the flow is assured, 120 s after.
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
	t.Run("one_exchange_lives_30s", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// A STUN-like request and its reply: Linux sees a reply but
			// no traffic after it, so the entry keeps the 30 s timeout.
			lab, nat, h, s := timeoutLab(t)
			m1 := open(t, h, s)
			sent := time.Now()
			if !answers(t, s, m1, h) {
				t.Fatal("the reply did not reach H")
			}
			time.Sleep(time.Until(sent.Add(29 * time.Second)))
			if nat.Mappings() != 1 {
				t.Fatalf("NAT holds %d mappings 29 s after one exchange, want 1", nat.Mappings())
			}
			time.Sleep(time.Until(sent.Add(60 * time.Second)))
			if nat.Mappings() != 0 {
				t.Fatalf("NAT holds %d mappings 60 s after one exchange, want 0: one request and reply must not earn the 120 s timeout", nat.Mappings())
			}
			if answers(t, s, m1, h) {
				t.Fatal("a datagram reached H 60 s after a single exchange")
			}
			if got := lab.Stats().Dropped[netlab.DropNoMapping]; got != 1 {
				t.Fatalf("Stats: %d no-mapping drops, want 1", got)
			}
			if m2 := open(t, h, s); m2 == m1 {
				t.Fatalf("60 s after one exchange H got mapping %v again, want a new port", m2)
			}
		})
	})
	t.Run("exchanges_within_2s_live_30s", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Traffic after the reply but within 2 s of the first
			// datagram does not assure the flow either.
			_, nat, h, s := timeoutLab(t)
			m1 := open(t, h, s)
			answers(t, s, m1, h)
			time.Sleep(time.Second)
			open(t, h, s)
			last := time.Now()
			answers(t, s, m1, h)
			time.Sleep(time.Until(last.Add(30 * time.Second)))
			if nat.Mappings() != 0 {
				t.Fatalf("NAT holds %d mappings 30 s after traffic that ended within 2 s of its start, want 0", nat.Mappings())
			}
		})
	})
	t.Run("assured_mapping_lives_120s_from_last_outbound", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Five seconds of traffic both ways: past 2 s, with a reply
			// seen, the flow is assured and each outbound datagram gives
			// it 120 s.
			_, nat, h, s := timeoutLab(t)
			m1 := open(t, h, s)
			var last time.Time
			for i := range 6 {
				if i > 0 {
					time.Sleep(time.Second)
					if m := open(t, h, s); m != m1 {
						t.Fatalf("mapping changed from %v to %v during the exchange", m1, m)
					}
				}
				last = time.Now()
				if !answers(t, s, m1, h) {
					t.Fatalf("reply %d did not reach H", i)
				}
			}
			time.Sleep(time.Until(last.Add(60 * time.Second)))
			if nat.Mappings() != 1 || !answers(t, s, m1, h) {
				t.Fatal("an assured mapping died within 60 s")
			}
			time.Sleep(time.Until(last.Add(119 * time.Second)))
			if !answers(t, s, m1, h) {
				t.Fatal("an assured mapping died before 120 s")
			}
			// Inbound datagrams do not refresh: 120 s after the last
			// outbound one, the mapping is gone.
			time.Sleep(time.Until(last.Add(120 * time.Second)))
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
			time.Sleep(3 * time.Second)
			open(t, h, s)  // assures the flow
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
			answers(t, s, m1, h)
			time.Sleep(3 * time.Second)
			if !answers(t, s, m1, h) { // assures the flow, as Linux does
				t.Fatal("the second reply did not reach H")
			}
			for i := range 10 {
				time.Sleep(100 * time.Second)
				if !answers(t, s, m1, h) {
					t.Fatalf("after %d s of inbound traffic only, the mapping is gone; InboundRefresh should keep it", (i+1)*100)
				}
			}
		})
	})
	t.Run("inbound_refresh_follows_linux", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// With InboundRefresh, as on Linux, every datagram sets the
			// timer; a first reply late after 2 s still sets 30 s.
			_, nat, h, s := timeoutLab(t, func(c *netlab.NATConfig) { c.InboundRefresh = true })
			m1 := open(t, h, s)
			time.Sleep(10 * time.Second)
			answers(t, s, m1, h)
			replied := time.Now()
			time.Sleep(time.Until(replied.Add(29 * time.Second)))
			if nat.Mappings() != 1 {
				t.Fatal("the reply 10 s in did not refresh the mapping for 30 s")
			}
			time.Sleep(time.Until(replied.Add(30 * time.Second)))
			if nat.Mappings() != 0 {
				t.Fatal("a single late reply earned more than 30 s")
			}
		})
	})
	t.Run("each_destination_expires_on_its_own", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Linux MASQUERADE: one mapping, one conntrack entry per
			// destination. H sends once to P and never hears back; it
			// keeps its mapping alive by talking to S. P's permission
			// expires after 30 s though the mapping lives on.
			lab := newLab(t)
			nat := addNAT(t, lab, natConfig())
			h := listen(t, addHost(t, nat, lanAddr), 5000)
			s := listen(t, addHost(t, lab, server1), 3478)
			p := listen(t, addHost(t, lab, server2), 3478)
			send(t, h, addrOf(p), "hello P")
			_, m := mustRecv(t, p)
			start := time.Now()
			for i := range 3 { // at 0, 10 and 20 s
				time.Sleep(time.Until(start.Add(time.Duration(i) * 10 * time.Second)))
				if got := open(t, h, s); got != m {
					t.Fatalf("S saw %v, P saw %v: want one mapping (endpoint-independent)", got, m)
				}
				if !answers(t, s, m, h) {
					t.Fatal("S's reply did not reach H")
				}
			}
			time.Sleep(time.Until(start.Add(29 * time.Second)))
			if !answers(t, p, m, h) {
				t.Fatal("P could not reach H 29 s after H sent to it")
			}
			time.Sleep(time.Until(start.Add(31 * time.Second)))
			if answers(t, p, m, h) {
				t.Fatal("P reached H 31 s after H last sent to it: its permission should have expired with UnrepliedTimeout")
			}
			if got := lab.Stats().Dropped[netlab.DropFiltered]; got != 1 {
				t.Fatalf("Stats: %d filtered, want 1", got)
			}
			if nat.Mappings() != 1 || !answers(t, s, m, h) {
				t.Fatal("S, which H keeps talking to, can no longer reach H")
			}
		})
	})
	t.Run("flush_keeps_a_preserved_port", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t)
			nat := addNAT(t, lab, natConfig()) // Linux MASQUERADE, ports preserved
			h := listen(t, addHost(t, nat, lanAddr), 5000)
			s := listen(t, addHost(t, lab, server1), 3478)
			m1 := open(t, h, s)
			nat.Flush()
			if answers(t, s, m1, h) {
				t.Fatal("a datagram reached H through a flushed mapping")
			}
			if m2 := open(t, h, s); m2 != m1 {
				t.Fatalf("after Flush H got %v, want %v again: conntrack -F does not move a preserved port", m2, m1)
			}
		})
	})
	t.Run("rebind_forces_a_new_port", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t)
			nat := addNAT(t, lab, natConfig()) // Linux MASQUERADE, ports preserved
			s := listen(t, addHost(t, lab, server1), 3478)
			var hs []*netlab.Conn
			for i := range 5 {
				hs = append(hs, listen(t, addHost(t, nat, netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + i)})), uint16(5000+i)))
			}
			before := make([]netip.AddrPort, len(hs))
			for i, h := range hs {
				before[i] = open(t, h, s)
			}
			for round := range 3 {
				nat.Rebind()
				if answers(t, s, before[0], hs[0]) {
					t.Fatal("a datagram reached H through a mapping Rebind dropped")
				}
				for i, h := range hs {
					after := open(t, h, s)
					if after == before[i] {
						t.Fatalf("Rebind %d: host %d kept mapping %v, want a new port", round+1, i, after)
					}
					if !answers(t, s, after, h) {
						t.Fatalf("Rebind %d: host %d's new mapping %v lets no reply in", round+1, i, after)
					}
					before[i] = after
				}
			}
			if got := lab.Stats().Dropped[netlab.DropNoMapping]; got != 3 {
				t.Fatalf("Stats: %d no-mapping drops, want 3", got)
			}
		})
	})
	t.Run("set_addr_moves_the_router", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t, func(c *netlab.Config) { c.Link.Latency = 10 * time.Millisecond })
			nat := addNAT(t, lab, natConfig())
			h := listen(t, addHost(t, nat, lanAddr), 5000)
			s := listen(t, addHost(t, lab, server1), 3478)
			m1 := open(t, h, s)
			send(t, s, m1, "in flight") // on its way when the router moves
			time.Sleep(5 * time.Millisecond)
			moved := netip.MustParseAddr("198.51.100.99")
			if err := nat.SetAddr(moved); err != nil {
				t.Fatal(err)
			}
			if nat.Addr() != moved {
				t.Fatalf("Addr %v after SetAddr(%v)", nat.Addr(), moved)
			}
			mustNotRecv(t, h)
			if got := lab.Stats().Dropped[netlab.DropNoRoute]; got != 1 {
				t.Fatalf("Stats: %d no-route drops, want the datagram in flight to the old address", got)
			}
			m2 := open(t, h, s)
			if m2.Addr() != moved || m2.Port() != m1.Port() {
				t.Fatalf("after SetAddr S saw H at %v, want %v:%d", m2, moved, m1.Port())
			}
			send(t, s, m2, "to the new address")
			if got, _ := mustRecv(t, h); got != "to the new address" {
				t.Fatalf("H read %q", got)
			}
			send(t, s, m1, "to the old address")
			mustNotRecv(t, h)
			if err := nat.SetAddr(server1); !errors.Is(err, netlab.ErrAddrInUse) {
				t.Fatalf("SetAddr to a host's address: %v, want ErrAddrInUse", err)
			}
			if h := addHost(t, lab, m1.Addr()); h.String() == nat.String() { // the old address is free
				t.Fatalf("the host at the router's old address shares its name %q", h)
			}
		})
	})
}
