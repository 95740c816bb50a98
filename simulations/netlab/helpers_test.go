package netlab_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TEST-NET addresses for the public side, private ones behind NATs.
var (
	server1 = netip.MustParseAddr("203.0.113.10")
	server2 = netip.MustParseAddr("203.0.113.20")
	natAddr = netip.MustParseAddr("198.51.100.1")
	lanAddr = netip.MustParseAddr("192.168.1.10")
	lan2    = netip.MustParseAddr("192.168.1.11")
)

// newLab returns a network closed at the end of the test.
func newLab(t *testing.T, mutate ...func(*netlab.Config)) *netlab.Network {
	t.Helper()
	cfg := netlab.DefaultConfig()
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := netlab.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// natConfig is DefaultNATConfig at natAddr, changed by mutate.
func natConfig(mutate ...func(*netlab.NATConfig)) netlab.NATConfig {
	cfg := netlab.DefaultNATConfig()
	cfg.Addr = natAddr
	for _, m := range mutate {
		if m != nil {
			m(&cfg)
		}
	}
	return cfg
}

// adder is the public network or a NAT's private one.
type adder interface {
	AddHost(netip.Addr) (*netlab.Host, error)
	AddNAT(netlab.NATConfig) (*netlab.NAT, error)
}

func addHost(t *testing.T, on adder, addr netip.Addr) *netlab.Host {
	t.Helper()
	h, err := on.AddHost(addr)
	if err != nil {
		t.Fatalf("AddHost %v: %v", addr, err)
	}
	return h
}

func addNAT(t *testing.T, on adder, cfg netlab.NATConfig) *netlab.NAT {
	t.Helper()
	nat, err := on.AddNAT(cfg)
	if err != nil {
		t.Fatalf("AddNAT %v: %v", cfg.Addr, err)
	}
	return nat
}

func listen(t *testing.T, h *netlab.Host, port uint16) *netlab.Conn {
	t.Helper()
	c, err := h.ListenPacket(port)
	if err != nil {
		t.Fatalf("ListenPacket %v:%d: %v", h.Addr(), port, err)
	}
	return c
}

func addrOf(c *netlab.Conn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func send(t *testing.T, c *netlab.Conn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatalf("WriteTo %v: %v", to, err)
	}
}

// recvWithin reads one datagram arriving within d; ok is false when none
// does. Under synctest d is virtual time and costs nothing.
func recvWithin(t *testing.T, c *netlab.Conn, d time.Duration) (msg string, from netip.AddrPort, ok bool) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 65536)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "", netip.AddrPort{}, false
	}
	if err != nil {
		t.Fatalf("ReadFrom on %v: %v", c.LocalAddr(), err)
	}
	return string(buf[:n]), from, true
}

// mustRecv reads one datagram, which must arrive within a second.
func mustRecv(t *testing.T, c *netlab.Conn) (string, netip.AddrPort) {
	t.Helper()
	msg, from, ok := recvWithin(t, c, time.Second)
	if !ok {
		t.Fatalf("%v received nothing within a second", c.LocalAddr())
	}
	return msg, from
}

// mustNotRecv asserts that nothing arrives within a second.
func mustNotRecv(t *testing.T, c *netlab.Conn) {
	t.Helper()
	if msg, from, ok := recvWithin(t, c, time.Second); ok {
		t.Fatalf("%v received %q from %v, want nothing", c.LocalAddr(), msg, from)
	}
}
