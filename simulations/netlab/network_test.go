package netlab_test

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/internal/leakcheck"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

func TestNetworkCloseSynctest(t *testing.T) {
	t.Run("unblocks_readers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t)
			c := listen(t, addHost(t, lab, server1), 1)
			done := make(chan error, 1)
			go func() {
				_, _, err := c.ReadFrom(make([]byte, 10))
				done <- err
			}()
			synctest.Wait() // the reader is durably blocked
			lab.Close()
			if err := <-done; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("ReadFrom during Network.Close: %v, want net.ErrClosed", err)
			}
		})
	})
	t.Run("drops_what_is_in_flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			events := 0
			lab := newLab(t, func(c *netlab.Config) {
				c.Link.Latency = time.Second
				c.Trace = func(netlab.Event) { events++ }
			})
			a := listen(t, addHost(t, lab, server1), 1)
			b := listen(t, addHost(t, lab, server2), 2)
			send(t, a, addrOf(b), "late")
			time.Sleep(500 * time.Millisecond)
			lab.Close()
			st := lab.Stats()
			if st.Delivered != 0 || st.Dropped[netlab.DropClosed] != 1 {
				t.Fatalf("Stats %+v, want the datagram dropped as closed", st)
			}
			seen := events
			time.Sleep(time.Minute)
			synctest.Wait()
			if events != seen {
				t.Fatalf("%d trace events after Close, want none: a timer outlived it", events-seen)
			}
		})
	})
	t.Run("refuses_use_after", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t)
			h := addHost(t, lab, server1)
			c := listen(t, h, 1)
			nat := addNAT(t, lab, natConfig())
			if err := lab.Close(); err != nil {
				t.Fatal(err)
			}
			if err := lab.Close(); err != nil {
				t.Fatalf("second Close: %v, want nil", err)
			}
			if _, err := h.ListenPacket(2); !errors.Is(err, net.ErrClosed) {
				t.Errorf("ListenPacket after Close: %v, want net.ErrClosed", err)
			}
			if _, err := lab.AddHost(server2); !errors.Is(err, net.ErrClosed) {
				t.Errorf("AddHost after Close: %v, want net.ErrClosed", err)
			}
			if _, err := nat.AddHost(lanAddr); !errors.Is(err, net.ErrClosed) {
				t.Errorf("NAT.AddHost after Close: %v, want net.ErrClosed", err)
			}
			if _, err := c.WriteTo([]byte("x"), c.LocalAddr()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("WriteTo after Close: %v, want net.ErrClosed", err)
			}
		})
	})
}

func TestAddressesSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newLab(t)
		h := addHost(t, lab, server1)
		nat := addNAT(t, lab, natConfig())
		if _, err := lab.AddHost(server1); !errors.Is(err, netlab.ErrAddrInUse) {
			t.Errorf("second host at %v: %v, want ErrAddrInUse", server1, err)
		}
		if _, err := lab.AddNAT(natConfig(func(c *netlab.NATConfig) { c.Addr = server1 })); !errors.Is(err, netlab.ErrAddrInUse) {
			t.Errorf("NAT at a host's address: %v, want ErrAddrInUse", err)
		}
		if _, err := nat.AddHost(lanAddr); err != nil {
			t.Errorf("host behind the NAT: %v", err)
		}
		if _, err := lab.AddHost(netip.MustParseAddr("::ffff:203.0.113.7")); !errors.Is(err, netlab.ErrBadConfig) {
			t.Errorf("IPv4-mapped address: %v, want ErrBadConfig", err)
		}

		c := listen(t, h, 4433)
		if _, err := h.ListenPacket(4433); !errors.Is(err, netlab.ErrAddrInUse) {
			t.Errorf("second socket on port 4433: %v, want ErrAddrInUse", err)
		}
		c.Close()
		listen(t, h, 4433) // free again after Close

		seen := map[uint16]bool{}
		for range 100 {
			p := addrOf(listen(t, h, 0)).Port()
			if p < 32768 || p > 60999 || seen[p] {
				t.Fatalf("ephemeral port %d: want a fresh one in 32768-60999", p)
			}
			seen[p] = true
		}

		s := listen(t, addHost(t, lab, server2), 1)
		send(t, s, netip.AddrPortFrom(server1, 9), "nobody listens")
		if _, err := s.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(203, 0, 113, 10)}); !errors.Is(err, netlab.ErrBadAddr) {
			t.Errorf("WriteTo port 0: %v, want ErrBadAddr", err)
		}
		if got := lab.Stats().Dropped[netlab.DropNoListener]; got != 1 {
			t.Errorf("Stats: %d no-listener drops, want 1", got)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if cfg := netlab.DefaultConfig(); cfg.Validate() != nil {
		t.Fatalf("DefaultConfig is invalid: %v", cfg.Validate())
	}
	bad := map[string]func(*netlab.Config){
		"zero_read_buffer":  func(c *netlab.Config) { c.ReadBuffer = 0 },
		"tiny_mtu":          func(c *netlab.Config) { c.Link.MTU = 40 },
		"zero_link":         func(c *netlab.Config) { c.Link = netlab.Link{} },
		"loss_over_one":     func(c *netlab.Config) { c.Link.Loss = 1.5 },
		"loss_nan":          func(c *netlab.Config) { c.Link.Loss = math.NaN() },
		"negative_latency":  func(c *netlab.Config) { c.Link.Latency = -time.Millisecond },
		"negative_jitter":   func(c *netlab.Config) { c.Link.Jitter = -time.Millisecond },
		"negative_loss":     func(c *netlab.Config) { c.Link.Loss = -0.1 },
		"negative_overhead": func(c *netlab.Config) { c.ReadBuffer = -1 },
	}
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			cfg := netlab.DefaultConfig()
			mutate(&cfg)
			if _, err := netlab.New(cfg); !errors.Is(err, netlab.ErrBadConfig) {
				t.Fatalf("New: %v, want ErrBadConfig", err)
			}
		})
	}
}

func TestNATConfigValidate(t *testing.T) {
	if cfg := natConfig(); cfg.Validate() != nil {
		t.Fatalf("DefaultNATConfig with an address is invalid: %v", cfg.Validate())
	}
	if cfg := netlab.DefaultNATConfig(); !errors.Is(cfg.Validate(), netlab.ErrBadConfig) {
		t.Fatal("DefaultNATConfig without an address validated")
	}
	bad := map[string]func(*netlab.NATConfig){
		"zero_mapping":       func(c *netlab.NATConfig) { c.Mapping = 0 },
		"unknown_filtering":  func(c *netlab.NATConfig) { c.Filtering = 4 },
		"zero_ports":         func(c *netlab.NATConfig) { c.Ports = 0 },
		"zero_port_min":      func(c *netlab.NATConfig) { c.PortMin = 0 },
		"min_over_max":       func(c *netlab.NATConfig) { c.PortMin, c.PortMax = 2000, 1999 },
		"zero_timeout":       func(c *netlab.NATConfig) { c.Timeout = 0 },
		"negative_unreplied": func(c *netlab.NATConfig) { c.UnrepliedTimeout = -time.Second },
	}
	lab := newLab(t)
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := lab.AddNAT(natConfig(mutate)); !errors.Is(err, netlab.ErrBadConfig) {
				t.Fatalf("AddNAT: %v, want ErrBadConfig", err)
			}
		})
	}
	h := addHost(t, lab, server1)
	if err := h.SetLink(netlab.Link{}); !errors.Is(err, netlab.ErrBadConfig) {
		t.Fatalf("SetLink with MTU 0: %v, want ErrBadConfig", err)
	}
}

// TestConcurrentTraffic runs in real time, under the race detector in
// `make test`: hosts behind two NATs send to an echo server from goroutines
// of their own over links with latency and jitter, and every echo returns.
func TestConcurrentTraffic(t *testing.T) {
	leakcheck.Check(t)
	lab := newLab(t, func(c *netlab.Config) {
		c.Link = netlab.Link{Latency: 200 * time.Microsecond, Jitter: 300 * time.Microsecond, MTU: 1500}
	})
	echo := listen(t, addHost(t, lab, server1), 7)
	// Room for every datagram at once, as quic-go asks of a socket; the
	// default would drop some (see receive_queue_is_bounded).
	if err := echo.SetReadBuffer(8 << 20); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return // closed with the network
			}
			echo.WriteTo(buf[:n], from)
		}
	}()
	nats := []*netlab.NAT{
		addNAT(t, lab, natConfig()),
		addNAT(t, lab, natConfig(func(c *netlab.NATConfig) {
			c.Addr = netip.MustParseAddr("198.51.100.2")
			c.Mapping, c.Ports = netlab.AddressAndPortDependent, netlab.PortRandom
		})),
	}
	const hosts, each = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, hosts)
	for i := range hosts {
		// Half the hosts sit behind one NAT or the other, half are public.
		var h *netlab.Host
		if i%2 == 0 {
			h = addHost(t, nats[i/2%2], netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + i)}))
		} else {
			h = addHost(t, lab, netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)}))
		}
		c := listen(t, h, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for j := range each {
				c.WriteTo([]byte(fmt.Sprint(j)), echo.LocalAddr())
			}
			buf := make([]byte, 100)
			got := map[string]bool{}
			for len(got) < each {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					errs <- fmt.Errorf("host %d after %d echoes: %w", i, len(got), err)
					return
				}
				got[string(buf[:n])] = true
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := lab.Stats(); st.Delivered != 2*hosts*each || len(st.Dropped) != 0 {
		t.Fatalf("Stats %+v, want %d deliveries and no drops", st, 2*hosts*each)
	}
}

// TestBlockSynctest: Block drops what crosses between two public
// addresses, both ways, and only that; Unblock lets it through again.
// A NAT router's public address is blocked as any other.
func TestBlockSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newLab(t)
		a := listen(t, addHost(t, lab, server1), 1)
		b := listen(t, addHost(t, lab, server2), 2)
		c := listen(t, addHost(t, lab, netip.MustParseAddr("203.0.113.99")), 3)
		lab.Block(server2, server1) // either order
		send(t, a, addrOf(b), "a->b")
		mustNotRecv(t, b)
		send(t, b, addrOf(a), "b->a")
		mustNotRecv(t, a)
		send(t, a, addrOf(c), "a->c")
		if msg, _ := mustRecv(t, c); msg != "a->c" {
			t.Fatalf("c got %q", msg)
		}
		if got := lab.Stats().Dropped[netlab.DropBlocked]; got != 2 {
			t.Fatalf("%d datagrams dropped as blocked, want 2", got)
		}
		lab.Unblock(server1, server2)
		send(t, a, addrOf(b), "a->b again")
		if msg, _ := mustRecv(t, b); msg != "a->b again" {
			t.Fatalf("b got %q", msg)
		}
	})
}
