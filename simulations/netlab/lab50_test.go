package netlab_test

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestLab50HostsSynctest runs 50 hosts for 60 virtual seconds under synctest: 25
// public, 25 behind five kinds of NAT (one of them carrier-grade), every
// link 20 ms, each host pinging a public host every 100 ms. Every ping
// must be answered. It logs how much faster than real time it ran; the
// figure is for information, never a pass/fail bar.
func TestLab50HostsSynctest(t *testing.T) {
	const (
		public, private = 25, 25
		duration        = 60 * time.Second
		interval        = 100 * time.Millisecond
		pings           = int(duration / interval)
	)
	var answered atomic.Int64
	var st netlab.Stats
	start := time.Now()
	synctest.Test(t, func(t *testing.T) {
		lab := newLab(t, func(c *netlab.Config) { c.Link.Latency = 20 * time.Millisecond })
		var conns []*netlab.Conn
		var targets []netip.AddrPort
		for i := range public {
			c := listen(t, addHost(t, lab, netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i)})), 4433)
			conns = append(conns, c)
			targets = append(targets, addrOf(c))
		}
		nats := fiveNATs(t, lab)
		for i := range private {
			h := addHost(t, nats[i%len(nats)], netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + i)}))
			conns = append(conns, listen(t, h, 0))
		}

		var readers, pingers sync.WaitGroup
		for i, c := range conns {
			readers.Go(func() {
				buf := make([]byte, 64)
				for {
					n, from, err := c.ReadFromUDPAddrPort(buf)
					if errors.Is(err, net.ErrClosed) {
						return
					}
					if err != nil {
						t.Errorf("host %d: %v", i, err)
						return
					}
					if n > 0 && buf[0] == 'q' {
						buf[0] = 'r'
						c.WriteToUDPAddrPort(buf[:n], from)
					} else {
						answered.Add(1)
					}
				}
			})
			pingers.Go(func() {
				time.Sleep(time.Duration(i) * 2 * time.Millisecond) // stagger the starts
				to := targets[(i+1)%public]
				for range pings {
					c.WriteToUDPAddrPort([]byte("q ping"), to)
					time.Sleep(interval)
				}
			})
		}
		pingers.Wait()
		time.Sleep(time.Second) // the last answers are in flight
		st = lab.Stats()
		lab.Close()
		readers.Wait()
	})
	wall := time.Since(start)

	want := int64((public + private) * pings)
	if got := answered.Load(); got != want {
		t.Fatalf("%d pings answered, want all %d", got, want)
	}
	if len(st.Dropped) != 0 || st.Delivered != uint64(2*want) {
		t.Fatalf("Stats %+v, want %d deliveries and no drops", st, 2*want)
	}
	virtual := duration + time.Second + time.Duration(public+private)*2*time.Millisecond
	t.Logf("50 hosts, %d datagrams, %d NAT translations: %.0f virtual s in %v wall, %.0fx real time",
		st.Delivered, st.Translated, virtual.Seconds(), wall.Round(time.Millisecond), virtual.Seconds()/wall.Seconds())
}

// fiveNATs returns routers of five kinds on lab: Linux MASQUERADE, full
// cone, symmetric with random ports, address-restricted with hairpinning,
// and a home router behind a carrier-grade NAT.
func fiveNATs(t *testing.T, lab *netlab.Network) []*netlab.NAT {
	at := func(s string, mutate func(*netlab.NATConfig)) netlab.NATConfig {
		return natConfig(func(c *netlab.NATConfig) {
			c.Addr = netip.MustParseAddr(s)
			if mutate != nil {
				mutate(c)
			}
		})
	}
	carrier := addNAT(t, lab, at("198.51.100.5", func(c *netlab.NATConfig) { c.Ports = netlab.PortSequential }))
	return []*netlab.NAT{
		addNAT(t, lab, at("198.51.100.1", nil)),
		addNAT(t, lab, at("198.51.100.2", func(c *netlab.NATConfig) {
			c.Filtering = netlab.EndpointIndependent
		})),
		addNAT(t, lab, at("198.51.100.3", func(c *netlab.NATConfig) {
			c.Mapping, c.Ports = netlab.AddressAndPortDependent, netlab.PortRandom
		})),
		addNAT(t, lab, at("198.51.100.4", func(c *netlab.NATConfig) {
			c.Filtering, c.Hairpinning = netlab.AddressDependent, true
		})),
		addNAT(t, carrier, at("100.64.0.2", nil)),
	}
}
