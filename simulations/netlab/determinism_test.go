package netlab_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestConcurrentFlowsSameFateSynctest sends from four goroutines at once,
// each on flows of its own: two public hosts and two behind a NAT with
// random ports and per-destination mappings, every link losing half its
// datagrams. However the goroutines interleave, each flow draws from a
// random stream of its own, so twenty runs with seed 7 give twenty
// identical outcomes: the same ephemeral ports, the same public mappings,
// the same datagrams lost.
func TestConcurrentFlowsSameFateSynctest(t *testing.T) {
	const senders, sockets, each = 4, 3, 60
	run := func(t *testing.T) (outcome string) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t, func(c *netlab.Config) {
				c.Seed = 7
				c.Link.Loss = 0.5
			})
			nat := addNAT(t, lab, natConfig(func(c *netlab.NATConfig) {
				c.Mapping, c.Ports = netlab.AddressAndPortDependent, netlab.PortRandom
			}))
			servers := []*netlab.Conn{
				listen(t, addHost(t, lab, server1), 3478),
				listen(t, addHost(t, lab, server2), 3478),
			}
			hosts := []*netlab.Host{
				addHost(t, lab, netip.MustParseAddr("203.0.113.30")),
				addHost(t, lab, netip.MustParseAddr("203.0.113.31")),
				addHost(t, nat, lanAddr),
				addHost(t, nat, lan2),
			}
			var wg sync.WaitGroup
			for i, h := range hosts {
				wg.Go(func() {
					var conns []*netlab.Conn
					for range sockets {
						c, err := h.ListenPacket(0)
						if err != nil {
							t.Error(err)
							return
						}
						conns = append(conns, c)
					}
					for k := range each {
						c := conns[k%sockets]
						to := addrOf(servers[k%len(servers)])
						if _, err := c.WriteToUDPAddrPort(fmt.Appendf(nil, "g%d/%v/%d", i, addrOf(c).Port(), k), to); err != nil {
							t.Error(err)
						}
						runtime.Gosched()
					}
				})
			}
			wg.Wait()
			var lines []string
			for _, s := range servers {
				for {
					msg, from, ok := recvWithin(t, s, time.Millisecond)
					if !ok {
						break
					}
					lines = append(lines, fmt.Sprintf("%v got %s from %v", addrOf(s), msg, from))
				}
			}
			slices.Sort(lines)
			outcome = strings.Join(lines, "\n")
		})
		return outcome
	}
	first := run(t)
	if n := strings.Count(first, "\n") + 1; n < senders*each/8 || n > senders*each/2 {
		t.Fatalf("%d of %d datagrams arrived over two or three links losing half each", n, senders*each)
	}
	for i := 1; i < 20; i++ {
		if got := run(t); got != first {
			t.Fatalf("run %d of seed 7 differs from run 1:\n%s\n\nrun 1:\n%s", i+1, got, first)
		}
	}
}
