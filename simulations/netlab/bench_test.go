package netlab_test

import (
	"net/netip"
	"testing"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// BenchmarkNATRouter measures datagrams per second through one NAT router
// (Linux MASQUERADE behaviour) between a host behind it and a public host,
// with zero latency, so that each datagram is routed, translated and
// queued in the sender's goroutine.
func BenchmarkNATRouter(b *testing.B) {
	setup := func(b *testing.B) (*netlab.Network, *netlab.NAT, *netlab.Host) {
		lab, err := netlab.New(netlab.DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { lab.Close() })
		nat, err := lab.AddNAT(natConfig())
		if err != nil {
			b.Fatal(err)
		}
		srv, err := lab.AddHost(server1)
		if err != nil {
			b.Fatal(err)
		}
		return lab, nat, srv
	}
	// pingPong sends one datagram out through the NAT and its answer back
	// in: two translations per round.
	pingPong := func(b *testing.B, h, s *netlab.Conn, count *int) {
		out, back := make([]byte, 1200), make([]byte, 1500)
		to := addrOf(s)
		if _, err := h.WriteToUDPAddrPort(out, to); err != nil {
			b.Fatal(err)
		}
		_, from, err := s.ReadFromUDPAddrPort(back)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.WriteToUDPAddrPort(out, from); err != nil {
			b.Fatal(err)
		}
		if _, _, err := h.ReadFromUDPAddrPort(back); err != nil {
			b.Fatal(err)
		}
		*count += 2
	}

	b.Run("ping_pong", func(b *testing.B) {
		_, nat, srv := setup(b)
		h, err := nat.AddHost(lanAddr)
		if err != nil {
			b.Fatal(err)
		}
		hc, _ := h.ListenPacket(5000)
		sc, _ := srv.ListenPacket(3478)
		datagrams := 0
		for b.Loop() {
			pingPong(b, hc, sc, &datagrams)
		}
		b.ReportMetric(float64(datagrams)/b.Elapsed().Seconds(), "datagrams/s")
	})

	b.Run("parallel_hosts", func(b *testing.B) {
		_, nat, srv := setup(b)
		type pair struct{ h, s *netlab.Conn }
		pairs := make(chan pair, 256)
		for i := range cap(pairs) {
			h, err := nat.AddHost(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(1 + i)}))
			if err != nil {
				b.Fatal(err)
			}
			hc, _ := h.ListenPacket(5000)
			sc, _ := srv.ListenPacket(uint16(10000 + i))
			pairs <- pair{hc, sc}
		}
		total := make(chan int, cap(pairs))
		b.RunParallel(func(pb *testing.PB) {
			p := <-pairs
			datagrams := 0
			for pb.Next() {
				pingPong(b, p.h, p.s, &datagrams)
			}
			total <- datagrams
		})
		close(total)
		datagrams := 0
		for n := range total {
			datagrams += n
		}
		b.ReportMetric(float64(datagrams)/b.Elapsed().Seconds(), "datagrams/s")
	})
}
