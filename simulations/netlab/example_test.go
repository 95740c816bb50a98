package netlab_test

import (
	"fmt"
	"net/netip"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// A host behind a NAT reaches a public server, which sees the NAT's
// address; the server's answer comes back through the mapping.
func Example() {
	lab, _ := netlab.New(netlab.DefaultConfig())
	defer lab.Close()
	server, _ := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
	cfg := netlab.DefaultNATConfig() // Linux MASQUERADE
	cfg.Addr = netip.MustParseAddr("198.51.100.1")
	home, _ := lab.AddNAT(cfg)
	laptop, _ := home.AddHost(netip.MustParseAddr("192.168.1.10"))
	sc, _ := server.ListenPacket(3478)
	lc, _ := laptop.ListenPacket(5000)

	lc.WriteTo([]byte("hello"), sc.LocalAddr())
	buf := make([]byte, 1500)
	n, from, _ := sc.ReadFrom(buf)
	fmt.Printf("server read %q from %v\n", buf[:n], from)

	sc.WriteTo([]byte("welcome"), from)
	n, from, _ = lc.ReadFrom(buf)
	fmt.Printf("laptop read %q from %v\n", buf[:n], from)
	fmt.Printf("%+v\n", lab.Stats())
	// Output:
	// server read "hello" from 198.51.100.1:5000
	// laptop read "welcome" from 203.0.113.10:3478
	// {Sent:2 Delivered:2 Translated:2 Dropped:map[]}
}

// TraceTo shows each step of each datagram.
func ExampleTraceTo() {
	cfg := netlab.DefaultConfig()
	cfg.Trace = func(e netlab.Event) { fmt.Println(e.Kind, e.Node, e.Src, e.Dst, e.Reason) }
	lab, _ := netlab.New(cfg)
	defer lab.Close()
	natCfg := netlab.DefaultNATConfig()
	natCfg.Addr = netip.MustParseAddr("198.51.100.1")
	home, _ := lab.AddNAT(natCfg)
	laptop, _ := home.AddHost(netip.MustParseAddr("192.168.1.10"))
	lc, _ := laptop.ListenPacket(5000)
	lc.WriteToUDPAddrPort([]byte("anyone there?"), netip.MustParseAddrPort("203.0.113.10:53"))
	// Output:
	// send 198.51.100.1/192.168.1.10 192.168.1.10:5000 203.0.113.10:53 none
	// nat 198.51.100.1 198.51.100.1:5000 203.0.113.10:53 none
	// drop internet 198.51.100.1:5000 203.0.113.10:53 no-route
}
