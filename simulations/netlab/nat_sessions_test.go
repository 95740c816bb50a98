package netlab_test

import (
	"testing"
	"testing/synctest"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestInboundSessionsSynctest: behind an address-dependent mapping with
// endpoint-independent filtering, a stranger's datagram gets in through
// the mapping made toward a server. The host's answer leaves by that
// mapping with InboundSessions (as a Linux conntrack entry made by DNAT
// would), and by a new mapping without.
func TestInboundSessionsSynctest(t *testing.T) {
	for _, sessions := range []bool{true, false} {
		name := "off"
		if sessions {
			name = "on"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lab := newLab(t)
				nat := addNAT(t, lab, natConfig(func(c *netlab.NATConfig) {
					c.Mapping = netlab.AddressDependent
					c.Filtering = netlab.EndpointIndependent
					c.InboundSessions = sessions
				}))
				h := listen(t, addHost(t, nat, lanAddr), 5000)
				s1 := listen(t, addHost(t, lab, server1), 3478)
				s2 := listen(t, addHost(t, lab, server2), 3478)
				send(t, h, addrOf(s1), "stun")
				_, mapped := mustRecv(t, s1)
				send(t, s2, mapped, "stranger")
				if got, _ := mustRecv(t, h); got != "stranger" {
					t.Fatalf("host read %q", got)
				}
				send(t, h, addrOf(s2), "answer")
				_, from := mustRecv(t, s2)
				if sessions && from != mapped {
					t.Fatalf("with sessions the answer came from %v, want the mapping it came in on, %v", from, mapped)
				}
				if !sessions && from == mapped {
					t.Fatalf("without sessions the answer came from %v, the mapping made toward the server", from)
				}
				if n := nat.Mappings(); (sessions && n != 1) || (!sessions && n != 2) {
					t.Fatalf("%d mappings", n)
				}
			})
		})
	}
}
