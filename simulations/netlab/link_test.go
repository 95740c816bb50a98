package netlab_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

func TestLinkSynctest(t *testing.T) {
	t.Run("latency_adds_up_along_the_path", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t)
			nat := addNAT(t, lab, natConfig())
			hh := addHost(t, nat, lanAddr)
			sh := addHost(t, lab, server1)
			for link, d := range map[interface{ SetLink(netlab.Link) error }]time.Duration{hh: 5 * time.Millisecond, nat: 10 * time.Millisecond, sh: 20 * time.Millisecond} {
				if err := link.SetLink(netlab.Link{Latency: d, MTU: 1500}); err != nil {
					t.Fatal(err)
				}
			}
			h, s := listen(t, hh, 5000), listen(t, sh, 3478)
			start := time.Now()
			send(t, h, addrOf(s), "x")
			_, from := mustRecv(t, s)
			if got := time.Since(start); got != 35*time.Millisecond {
				t.Fatalf("one way took %v, want 5+10+20 ms", got)
			}
			send(t, s, from, "y")
			mustRecv(t, h)
			if got := time.Since(start); got != 70*time.Millisecond {
				t.Fatalf("the round trip took %v, want 70 ms", got)
			}
		})
	})
	t.Run("jitter_stays_in_bounds_and_reorders", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t, func(c *netlab.Config) {
				c.Link = netlab.Link{Latency: 10 * time.Millisecond, Jitter: 20 * time.Millisecond, MTU: 1500}
			})
			a, b := listen(t, addHost(t, lab, server1), 1), listen(t, addHost(t, lab, server2), 2)
			start := time.Now()
			const count = 200
			for i := range count {
				send(t, a, addrOf(b), fmt.Sprint(i))
			}
			reordered := 0
			last := -1
			for range count {
				msg, _ := mustRecv(t, b)
				var i int
				fmt.Sscan(msg, &i)
				if i < last {
					reordered++
				}
				last = i
				// Two links, each 10 ms plus up to 20 ms of jitter.
				if d := time.Since(start); d < 20*time.Millisecond || d > 60*time.Millisecond {
					t.Fatalf("datagram %d took %v, want 20 to 60 ms", i, d)
				}
			}
			if reordered == 0 {
				t.Fatal("jitter of 20 ms over 200 back-to-back datagrams reordered none")
			}
		})
	})
	t.Run("loss", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t)
			a, bh := listen(t, addHost(t, lab, server1), 1), addHost(t, lab, server2)
			b := listen(t, bh, 2)
			if err := bh.SetLink(netlab.Link{Loss: 0.25, MTU: 1500}); err != nil {
				t.Fatal(err)
			}
			const count = 1000
			for range count {
				send(t, a, addrOf(b), "x")
			}
			st := lab.Stats()
			lost := st.Dropped[netlab.DropLoss]
			if lost < 200 || lost > 300 || st.Delivered+lost != count {
				t.Fatalf("Stats %+v: want about 250 of %d lost, the rest delivered", st, count)
			}
			if err := bh.SetLink(netlab.Link{Loss: 1, MTU: 1500}); err != nil {
				t.Fatal(err)
			}
			send(t, a, addrOf(b), "cut off")
			if lab.Stats().Dropped[netlab.DropLoss] != lost+1 {
				t.Fatal("a link with Loss 1 let a datagram through")
			}
		})
	})
	t.Run("mtu_drops_oversize", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var drops []string
			lab := newLab(t, func(c *netlab.Config) {
				c.Trace = func(e netlab.Event) {
					if e.Kind == netlab.EventDrop {
						drops = append(drops, e.Node+" "+e.Reason.String())
					}
				}
			})
			nat := addNAT(t, lab, natConfig())
			if err := nat.SetLink(netlab.Link{MTU: 1280}); err != nil {
				t.Fatal(err)
			}
			h := listen(t, addHost(t, nat, lanAddr), 5000)
			s := listen(t, addHost(t, lab, server1), 3478)
			for _, size := range []int{1472, 1473, 1252, 1253} {
				send(t, h, addrOf(s), strings.Repeat("x", size))
			}
			// 1473 is over the host's 1500; 1472 and 1253 are over the
			// NAT's 1280; 1252 + 28 = 1280 fits.
			if got, _ := mustRecv(t, s); len(got) != 1252 {
				t.Fatalf("received %d bytes, want the 1252-byte datagram", len(got))
			}
			mustNotRecv(t, s)
			want := []string{"198.51.100.1 mtu", "198.51.100.1/192.168.1.10 mtu", "198.51.100.1 mtu"}
			if strings.Join(drops, ",") != strings.Join(want, ",") {
				t.Fatalf("drops %q, want %q", drops, want)
			}
			if got := lab.Stats().Dropped[netlab.DropMTU]; got != 3 {
				t.Fatalf("Stats: %d MTU drops, want 3", got)
			}
			if _, err := h.WriteToUDPAddrPort(make([]byte, 65508), addrOf(s)); err == nil {
				t.Fatal("a 65,508-byte datagram was accepted, want ErrMessageTooLong")
			}
		})
	})
	t.Run("ipv6_headers_count_against_the_mtu", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t)
			a := listen(t, addHost(t, lab, netip.MustParseAddr("2001:db8::1")), 1)
			b := listen(t, addHost(t, lab, netip.MustParseAddr("2001:db8::2")), 2)
			send(t, a, addrOf(b), strings.Repeat("x", 1453)) // 1453 + 48 > 1500
			send(t, a, addrOf(b), strings.Repeat("x", 1452))
			if got, from := mustRecv(t, b); len(got) != 1452 || from != addrOf(a) {
				t.Fatalf("read %d bytes from %v, want 1452 from %v", len(got), from, addrOf(a))
			}
			if got := lab.Stats().Dropped[netlab.DropMTU]; got != 1 {
				t.Fatalf("Stats: %d MTU drops, want 1", got)
			}
		})
	})
	t.Run("receive_queue_is_bounded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t)
			a := listen(t, addHost(t, lab, server1), 1)
			b := listen(t, addHost(t, lab, server2), 2)
			// Each 100-byte datagram costs 356 bytes; the queue takes
			// datagrams while it holds under 1,000 bytes: three.
			if err := b.SetReadBuffer(1000); err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				send(t, a, addrOf(b), fmt.Sprintf("%03d%s", i, strings.Repeat(".", 97)))
			}
			if st := lab.Stats(); st.Delivered != 3 || st.Dropped[netlab.DropQueueFull] != 7 {
				t.Fatalf("Stats %+v, want 3 queued and 7 dropped as queue-full", st)
			}
			for i := range 3 {
				if got, _ := mustRecv(t, b); !strings.HasPrefix(got, fmt.Sprintf("%03d", i)) {
					t.Fatalf("read %.3q, want datagram %d", got, i)
				}
			}
			send(t, a, addrOf(b), "room again")
			if got, _ := mustRecv(t, b); got != "room again" {
				t.Fatalf("after draining, read %q", got)
			}
		})
	})
}

// TestSameSeedSameFateSynctest sends the same datagrams twice over a lossy,
// jittery path with the same seed: every datagram meets the same fate at
// the same virtual time. Another seed changes it.
func TestSameSeedSameFateSynctest(t *testing.T) {
	run := func(t *testing.T, seed uint64) (log []string) {
		synctest.Test(t, func(t *testing.T) {
			lab := newLab(t, func(c *netlab.Config) {
				c.Seed = seed
				c.Link = netlab.Link{Latency: 5 * time.Millisecond, Jitter: 20 * time.Millisecond, Loss: 0.2, MTU: 1500}
			})
			nat := addNAT(t, lab, natConfig(func(c *netlab.NATConfig) { c.Ports = netlab.PortRandom }))
			h := listen(t, addHost(t, nat, lanAddr), 5000)
			s := listen(t, addHost(t, lab, server1), 3478)
			start := time.Now()
			for i := range 200 {
				send(t, h, addrOf(s), fmt.Sprint(i))
				if i%10 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			for {
				msg, from, ok := recvWithin(t, s, time.Second)
				if !ok {
					break
				}
				log = append(log, fmt.Sprintf("%s@%v from %v", msg, time.Since(start), from))
			}
			if len(log) < 70 || len(log) > 140 {
				t.Errorf("%d of 200 arrived over three links with 20%% loss each, want about 102", len(log))
			}
		})
		return log
	}
	a, b, c := run(t, 42), run(t, 42), run(t, 43)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("seed 42 twice gave different fates:\n%v\n%v", a, b)
	}
	if strings.Join(a, "\n") == strings.Join(c, "\n") {
		t.Fatal("seeds 42 and 43 gave the same fates")
	}
}
