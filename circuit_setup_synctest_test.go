package mycelium

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestSynctestCircuitSetupOneRoundTrip: on netlab with 10 ms links (a
// host-to-host path is two links, so 40 ms round trips), a circuit through
// 1 to 4 relays is set up in one round trip of the whole path, not one per
// hop as Tor's telescoping setup needs: the setup time must be at least
// the path round trip (the onion has to get there and back) and well
// under the sum of the round trips to each hop. The table of setup times
// goes to the log. Virtual time makes it exact.
func TestSynctestCircuitSetupOneRoundTrip(t *testing.T) {
	var rows []string
	for k := 1; k <= 4; k++ {
		synctest.Test(t, func(t *testing.T) {
			cfg := netlab.DefaultConfig()
			cfg.Link.Latency = 10 * time.Millisecond
			lab, err := netlab.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer lab.Close()
			node := func(i int) *Node {
				h, err := lab.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}))
				if err != nil {
					t.Fatal(err)
				}
				pc, err := h.ListenPacket(4433)
				if err != nil {
					t.Fatal(err)
				}
				key, _ := GenerateKey()
				c := DefaultConfig()
				c.Key, c.PacketConn = key, pc
				n, err := New(c)
				if err != nil {
					t.Fatal(err)
				}
				if err := n.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { n.Close() })
				return n
			}
			a, target := node(0), node(1)
			var chain []*Node
			var hops []hopRef
			for i := range k {
				chain = append(chain, node(2+i))
				hops = append(hops, onionHop(chain[i]))
			}
			links := append([]*Node{a}, append(chain, target)...)
			for i := 0; i+1 < len(links); i++ {
				if err := links[i].Connect(ctxT(t), links[i+1].ID(), links[i+1].LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			rtt := 40 * time.Millisecond // per link pair: 4 × 10 ms
			path := time.Duration(k+1) * rtt
			var telescoping time.Duration
			for i := 1; i <= k+1; i++ {
				telescoping += time.Duration(i) * rtt
			}
			start := time.Now()
			bc, err := a.buildCircuit(ctxT(t), hops, onionHop(target))
			if err != nil {
				t.Fatalf("%d relays: %v", k, err)
			}
			took := time.Since(start)
			bc.close(a)
			if took < path || took >= path+rtt {
				t.Errorf("%d relays: setup took %v; one round trip of the path is %v", k, took, path)
			}
			rows = append(rows, fmt.Sprintf("| %d | %v | %v | %v |", k, took, path, telescoping))
		})
	}
	t.Logf("circuit setup on 10 ms links (virtual time):\n| relays | setup | path round trip | one round trip per hop (Tor-like) |\n|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}
