package netlab_test

import (
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestSynctestNATMappingClassified: real nodes on netlab. Three public
// observer nodes (two ports on one address, one on another) and one node
// behind a NAT of each RFC 4787 mapping behaviour (and one with no NAT).
// Each node learns the observers from its registry, asks them for its
// reflexive address over its QUIC socket, and must report its own mapping
// class and reflexive address in Stats.NAT.
func TestSynctestNATMappingClassified(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mapping netlab.Behavior // 0: no NAT
		want    string
	}{
		{"public", 0, "endpoint-independent"},
		{"eim", netlab.EndpointIndependent, "endpoint-independent"},
		{"adm", netlab.AddressDependent, "address-dependent"},
		{"apdm", netlab.AddressAndPortDependent, "address-and-port-dependent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := netlab.DefaultConfig()
				cfg.Link.Latency = 5 * time.Millisecond
				lab, err := netlab.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer lab.Close()
				p1, _ := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
				p2, _ := lab.AddHost(netip.MustParseAddr("203.0.113.20"))
				obs := []*mycelium.Node{labNode(t, p1, 4433)}
				defer func() {
					for _, n := range obs {
						n.Close()
					}
				}()
				boot := []mycelium.Peer{{ID: obs[0].ID(), Addr: obs[0].LocalAddr()}}
				obs = append(obs, labNodeBoot(t, p1, 4434, boot), labNodeBoot(t, p2, 4433, boot))

				host := p2
				port := uint16(5000)
				var public string
				if tc.mapping != 0 {
					ncfg := netlab.DefaultNATConfig()
					ncfg.Addr = netip.MustParseAddr("198.51.100.1")
					ncfg.Mapping, ncfg.Filtering = tc.mapping, netlab.EndpointIndependent
					home, err := lab.AddNAT(ncfg)
					if err != nil {
						t.Fatal(err)
					}
					if host, err = home.AddHost(netip.MustParseAddr("192.168.1.10")); err != nil {
						t.Fatal(err)
					}
					public = "198.51.100.1:"
				} else {
					public = "203.0.113.20:5000"
				}
				n := labNodeBoot(t, host, port, boot)
				defer n.Close()

				waitFor(t, "the node to classify its mapping", func() bool {
					return n.Stats().NAT.Mapping != "unknown"
				})
				st := n.Stats().NAT
				if st.Mapping != tc.want {
					t.Fatalf("mapping %q, want %q (%+v)", st.Mapping, tc.want, st)
				}
				if (tc.mapping == 0) != st.Public {
					t.Errorf("public = %v", st.Public)
				}
				if len(st.Reflexive) == 0 || st.Reflexive[0][:len(public)] != public {
					t.Errorf("reflexive %v, want addresses starting %q", st.Reflexive, public)
				}
				// The observers, on public addresses, find that out too.
				waitFor(t, "the observers to find they are public", func() bool {
					for _, o := range obs {
						if s := o.Stats().NAT; !s.Public || s.Mapping != "endpoint-independent" {
							return false
						}
					}
					return true
				})
				if s := obs[0].Stats().NAT.STUN; s.Answered == 0 || s.Answered != s.Requests {
					t.Errorf("observer STUN counters %+v", s)
				}
				// The node's record says so, at the observers.
				waitFor(t, "the record to carry the class", func() bool {
					r, ok := obs[0].Lookup(n.ID())
					return ok && r.Mapping.String() == tc.want && len(r.Reflexive) > 0 && r.Inbound == (tc.mapping == 0)
				})
				t.Logf("%s: %s", tc.name, fmt.Sprint(st))
			})
		})
	}
}

// labNodeBoot starts a node on h:port that joins through boot, with
// mutate applied to its config.
func labNodeBoot(t *testing.T, h *netlab.Host, port uint16, boot []mycelium.Peer, mutate ...func(*mycelium.Config)) *mycelium.Node {
	t.Helper()
	pc, err := h.ListenPacket(port)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := mycelium.GenerateKey()
	cfg := mycelium.DefaultConfig()
	cfg.Key, cfg.PacketConn, cfg.Bootstrap = key, pc, boot
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := mycelium.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	return n
}
