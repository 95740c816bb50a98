package netlab_test

import (
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// publicPorts sends from each internal port in turn, from hosts behind one
// NAT, and returns the public ports a server saw.
func publicPorts(t *testing.T, seed uint64, mutate func(*netlab.NATConfig), from [][2]int) []uint16 {
	t.Helper()
	lab := newLab(t, func(c *netlab.Config) { c.Seed = seed })
	nat := addNAT(t, lab, natConfig(mutate))
	s := listen(t, addHost(t, lab, server1), 3478)
	hosts := map[int]*netlab.Host{}
	var ports []uint16
	for _, f := range from {
		h := hosts[f[0]]
		if h == nil {
			h = addHost(t, nat, netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + f[0])}))
			hosts[f[0]] = h
		}
		c := listen(t, h, uint16(f[1]))
		send(t, c, addrOf(s), "x")
		_, m := mustRecv(t, s)
		ports = append(ports, m.Port())
	}
	return ports
}

func TestPortAllocationSynctest(t *testing.T) {
	t.Run("preserving", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Two hosts both use port 5000: the first keeps it; the second
			// gets a random port, as from Linux's nf_nat (not 5001, the
			// next one up). A third port is kept as it is.
			ports := func(seed uint64) []uint16 {
				return publicPorts(t, seed, nil, [][2]int{{0, 5000}, {1, 5000}, {0, 7000}, {2, 5000}})
			}
			a, b, c := ports(1), ports(1), ports(2)
			if a[0] != 5000 || a[2] != 7000 {
				t.Fatalf("public ports %v: want 5000 and 7000 preserved", a)
			}
			for _, p := range []uint16{a[1], a[3]} {
				if p == 5000 || p == 5001 || p == 7000 || p < 1024 {
					t.Fatalf("public ports %v: a taken port should fall back to a random one in 1024-65535", a)
				}
			}
			if a[1]+1 == a[3] || a[1] == a[3] {
				t.Fatalf("public ports %v: the fallbacks look sequential", a)
			}
			if !equal(a, b) {
				t.Fatalf("seed 1 gave ports %v, then %v: the same seed must give the same ports", a, b)
			}
			if equal(a, c) {
				t.Fatalf("seeds 1 and 2 both gave ports %v", a)
			}
		})
	})
	t.Run("preserving_within_a_small_range", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			got := publicPorts(t, 1, func(c *netlab.NATConfig) {
				c.PortMin, c.PortMax = 20000, 20001
			}, [][2]int{{0, 20001}, {1, 20001}})
			if want := []uint16{20001, 20000}; !equal(got, want) {
				t.Fatalf("public ports %v, want %v: the only other port in the range", got, want)
			}
		})
	})
	t.Run("sequential", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			got := publicPorts(t, 1, func(c *netlab.NATConfig) {
				c.Ports, c.PortMin, c.PortMax = netlab.PortSequential, 20000, 20002
			}, [][2]int{{0, 5000}, {1, 5000}, {0, 7000}})
			if want := []uint16{20000, 20001, 20002}; !equal(got, want) {
				t.Fatalf("public ports %v, want %v", got, want)
			}
		})
	})
	t.Run("exhausted", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t)
			nat := addNAT(t, lab, natConfig(func(c *netlab.NATConfig) {
				c.Ports, c.PortMin, c.PortMax = netlab.PortSequential, 20000, 20001
			}))
			h := addHost(t, nat, lanAddr)
			s := listen(t, addHost(t, lab, server1), 3478)
			for range 3 {
				send(t, listen(t, h, 0), addrOf(s), "x")
			}
			if st := lab.Stats(); st.Delivered != 2 || st.Dropped[netlab.DropNoFreePort] != 1 {
				t.Fatalf("Stats %+v, want 2 delivered and 1 dropped for want of a port", st)
			}
		})
	})
	t.Run("random", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			random := func(c *netlab.NATConfig) { c.Ports = netlab.PortRandom }
			flows := [][2]int{{0, 5000}, {0, 5001}, {0, 5002}, {0, 5003}, {0, 5004}, {0, 5005}}
			a := publicPorts(t, 7, random, flows)
			b := publicPorts(t, 7, random, flows)
			c := publicPorts(t, 8, random, flows)
			if !equal(a, b) {
				t.Fatalf("seed 7 gave ports %v, then %v: the same seed must give the same ports", a, b)
			}
			if equal(a, c) {
				t.Fatalf("seeds 7 and 8 both gave ports %v", a)
			}
			consecutive, preserved := 0, 0
			for i, p := range a {
				if p < 1024 {
					t.Fatalf("port %d below PortMin", p)
				}
				if i > 0 && p == a[i-1]+1 {
					consecutive++
				}
				if int(p) == flows[i][1] {
					preserved++
				}
			}
			if consecutive == len(a)-1 || preserved == len(a) {
				t.Fatalf("random ports %v look sequential or preserved", a)
			}
		})
	})
}

func equal(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
