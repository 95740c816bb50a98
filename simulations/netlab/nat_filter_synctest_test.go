package netlab_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestSynctestNATFilteringClassified: a node behind a NAT with
// endpoint-independent mapping and each RFC 4787 filtering behaviour, with
// 24 public nodes (12 addresses, two ports each) around it. It classifies
// its mapping from 8 of them, then has public nodes it never sent to send
// it probes (through one it is connected to): from a new address, and from
// a new port of an address it used. Its reported filtering must be the
// NAT's. The node keeps one neighbour only (ActiveSize 1), so that most
// public nodes stay strangers to it.
func TestSynctestNATFilteringClassified(t *testing.T) {
	for _, tc := range []struct {
		name      string
		filtering netlab.Behavior
		want      string
	}{
		{"eif", netlab.EndpointIndependent, "endpoint-independent"},
		{"adf", netlab.AddressDependent, "address-dependent"},
		{"apdf", netlab.AddressAndPortDependent, "address-and-port-dependent"},
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
				var pubs []*mycelium.Node
				defer func() {
					for _, n := range pubs {
						n.Close()
					}
				}()
				var boot []mycelium.Peer
				for i := range 12 {
					h, err := lab.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}))
					if err != nil {
						t.Fatal(err)
					}
					for _, port := range []uint16{4433, 4434} {
						n := labNodeBoot(t, h, port, boot)
						pubs = append(pubs, n)
						if boot == nil {
							boot = []mycelium.Peer{{ID: n.ID(), Addr: n.LocalAddr()}}
						}
					}
				}
				ncfg := netlab.DefaultNATConfig()
				ncfg.Addr = netip.MustParseAddr("198.51.100.1")
				ncfg.Filtering = tc.filtering
				home, err := lab.AddNAT(ncfg)
				if err != nil {
					t.Fatal(err)
				}
				host, _ := home.AddHost(netip.MustParseAddr("192.168.1.10"))
				pc, err := host.ListenPacket(5000)
				if err != nil {
					t.Fatal(err)
				}
				key, _ := mycelium.GenerateKey()
				c := mycelium.DefaultConfig()
				c.Key, c.PacketConn, c.Bootstrap = key, pc, boot
				c.Membership.ActiveSize = 1
				n, err := mycelium.New(c)
				if err != nil {
					t.Fatal(err)
				}
				if err := n.Start(); err != nil {
					t.Fatal(err)
				}
				defer n.Close()
				waitFor(t, "the node to classify its filtering", func() bool {
					return n.Stats().NAT.Filtering != "unknown"
				})
				st := n.Stats().NAT
				if st.Filtering != tc.want || st.Mapping != "endpoint-independent" {
					t.Fatalf("mapping %s, filtering %s; want endpoint-independent, %s", st.Mapping, st.Filtering, tc.want)
				}
				var fwd, sent uint64
				for _, p := range pubs {
					fwd += p.Stats().Counters.ProbesForwarded
					sent += p.Stats().Counters.ProbesSent
				}
				t.Logf("%s: %+v; probes forwarded %d, sent %d", tc.name, st, fwd, sent)
			})
		})
	}
}
