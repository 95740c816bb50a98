package netlab_test

import (
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// hairpinLab puts H1 and H2 behind one NAT and lets each learn its public
// mapping from a STUN-like server, as a punching peer would.
func hairpinLab(t *testing.T, mutate func(*netlab.NATConfig)) (lab *netlab.Network, h1, h2 *netlab.Conn, m1, m2 netip.AddrPort) {
	t.Helper()
	lab = newLab(t)
	nat := addNAT(t, lab, natConfig(mutate))
	h1 = listen(t, addHost(t, nat, lanAddr), 5000)
	h2 = listen(t, addHost(t, nat, lan2), 6000)
	s := listen(t, addHost(t, lab, server1), 3478)
	send(t, h1, addrOf(s), "stun")
	_, m1 = mustRecv(t, s)
	send(t, h2, addrOf(s), "stun")
	_, m2 = mustRecv(t, s)
	return lab, h1, h2, m1, m2
}

func TestHairpinningSynctest(t *testing.T) {
	t.Run("on_translates_the_source", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, h1, h2, m1, m2 := hairpinLab(t, func(c *netlab.NATConfig) {
				c.Hairpinning = true
				c.Filtering = netlab.EndpointIndependent
			})
			send(t, h1, m2, "hello neighbour")
			got, from := mustRecv(t, h2)
			if got != "hello neighbour" || from != m1 {
				t.Fatalf("H2 read %q from %v, want it from H1's public mapping %v (not %v)", got, from, m1, addrOf(h1))
			}
			send(t, h2, from, "hello back") // answer the address seen
			if got, from := mustRecv(t, h1); got != "hello back" || from != m2 {
				t.Fatalf("H1 read %q from %v, want it from H2's public mapping %v", got, from, m2)
			}
		})
	})
	t.Run("off_drops", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab, h1, h2, _, m2 := hairpinLab(t, func(c *netlab.NATConfig) {
				c.Filtering = netlab.EndpointIndependent
			})
			send(t, h1, m2, "hello neighbour")
			mustNotRecv(t, h2)
			if got := lab.Stats().Dropped[netlab.DropHairpin]; got != 1 {
				t.Fatalf("Stats: %d hairpin drops, want 1", got)
			}
			// The private addresses still work across the LAN.
			send(t, h1, addrOf(h2), "over the lan")
			if got, from := mustRecv(t, h2); got != "over the lan" || from != addrOf(h1) {
				t.Fatalf("H2 read %q from %v over the LAN, want it from %v", got, from, addrOf(h1))
			}
		})
	})
	t.Run("on_with_port_restricted_filtering_needs_a_punch", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab, h1, h2, m1, m2 := hairpinLab(t, func(c *netlab.NATConfig) { c.Hairpinning = true })
			send(t, h1, m2, "too early")
			mustNotRecv(t, h2)
			if got := lab.Stats().Dropped[netlab.DropFiltered]; got != 1 {
				t.Fatalf("Stats: %d filtered, want 1: hairpinned datagrams pass the filter like any other", got)
			}
			send(t, h2, m1, "punch") // opens H2's mapping to H1's and reaches H1
			if got, _ := mustRecv(t, h1); got != "punch" {
				t.Fatalf("H1 read %q, want the punch", got)
			}
			send(t, h1, m2, "now")
			if got, from := mustRecv(t, h2); got != "now" || from != m1 {
				t.Fatalf("H2 read %q from %v, want %q from %v", got, from, "now", m1)
			}
		})
	})
}

func TestCarrierGradeNATSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []netlab.Event
		lab := newLab(t, func(c *netlab.Config) { c.Trace = func(e netlab.Event) { events = append(events, e) } })
		carrier := addNAT(t, lab, natConfig(func(c *netlab.NATConfig) { c.Ports = netlab.PortSequential }))
		home := addNAT(t, carrier, natConfig(func(c *netlab.NATConfig) { c.Addr = netip.MustParseAddr("100.64.0.2") }))
		other := addNAT(t, carrier, natConfig(func(c *netlab.NATConfig) { c.Addr = netip.MustParseAddr("100.64.0.3") }))
		h := listen(t, addHost(t, home, lanAddr), 5000)
		neighbour := listen(t, addHost(t, other, lanAddr), 5000) // same private address, another home
		s := listen(t, addHost(t, lab, server1), 3478)

		send(t, h, addrOf(s), "through two NATs")
		got, from := mustRecv(t, s)
		if got != "through two NATs" || from.Addr() != carrier.Addr() {
			t.Fatalf("S read %q from %v, want it from the carrier NAT's address %v", got, from, carrier.Addr())
		}
		var translations []string
		for _, e := range events {
			if e.Kind == netlab.EventTranslate {
				translations = append(translations, e.PreSrc.String()+">"+e.Src.String())
			}
		}
		want := []string{"192.168.1.10:5000>100.64.0.2:5000", "100.64.0.2:5000>198.51.100.1:1024"}
		if len(translations) != 2 || translations[0] != want[0] || translations[1] != want[1] {
			t.Fatalf("translations %q, want %q", translations, want)
		}

		send(t, s, from, "reply")
		if got, src := mustRecv(t, h); got != "reply" || src != addrOf(s) {
			t.Fatalf("H read %q from %v, want the reply from %v", got, src, addrOf(s))
		}

		// The neighbour behind the other home NAT, with the same private
		// address and port, gets its own carrier mapping.
		send(t, neighbour, addrOf(s), "me too")
		if _, from2 := mustRecv(t, s); from2.Addr() != carrier.Addr() || from2 == from {
			t.Fatalf("S saw the neighbour at %v, want the carrier's address with a port other than %v", from2, from)
		}
		if st := lab.Stats(); st.Translated != 6 || st.Delivered != 3 || len(st.Dropped) != 0 {
			t.Fatalf("Stats %+v, want 6 translations, 3 deliveries, no drops", st)
		}
	})
}
