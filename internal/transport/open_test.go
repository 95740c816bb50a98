package transport

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-reuseport"

	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

func testConfig(k *identity.Key, addr string) Config {
	return Config{
		Key:                k,
		ListenAddr:         addr,
		HandshakeTimeout:   5 * time.Second,
		IdleTimeout:        30 * time.Second,
		KeepAlive:          15 * time.Second,
		MaxIncomingStreams: 10,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func TestOpenRefusesPortInUse(t *testing.T) {
	leakcheck.Check(t)
	first := open(t, testKey(t), nil)
	addr := first.LocalAddr().String()

	t.Run("by_another_transport", func(t *testing.T) {
		tr, err := Open(testConfig(testKey(t), addr))
		if err == nil {
			tr.Close()
			t.Fatalf("a second Transport bound %s, which another Transport holds", addr)
		}
		if !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), addr) {
			t.Fatalf("error %q does not say that %s is already in use", err, addr)
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("error %v does not wrap EADDRINUSE", err)
		}
	})

	t.Run("by_a_plain_socket", func(t *testing.T) {
		plain, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		paddr := plain.LocalAddr().String()
		tr, err := Open(testConfig(testKey(t), paddr))
		if err == nil {
			tr.Close()
			t.Fatalf("Open bound %s, which a plain socket holds", paddr)
		}
		if !strings.Contains(err.Error(), "already in use") {
			t.Fatalf("error %q does not say the address is in use", err)
		}
	})

	t.Run("port_0_gives_distinct_ports", func(t *testing.T) {
		a := open(t, testKey(t), nil)
		b := open(t, testKey(t), nil)
		pa, pb := a.LocalAddr().(*net.UDPAddr).Port, b.LocalAddr().(*net.UDPAddr).Port
		if pa == 0 || pb == 0 || pa == pb {
			t.Fatalf("two Opens on port 0 bound ports %d and %d", pa, pb)
		}
	})

	t.Run("explicit_free_port", func(t *testing.T) {
		// Find a free port, release it, and Open on it by number.
		probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := probe.LocalAddr().(*net.UDPAddr).Port
		probe.Close()
		want := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		tr, err := Open(testConfig(testKey(t), want))
		if err != nil {
			t.Fatalf("Open(%s): %v", want, err)
		}
		defer tr.Close()
		if got := tr.LocalAddr().String(); got != want {
			t.Fatalf("LocalAddr = %s, want %s", got, want)
		}
	})

	t.Run("socket_keeps_reuseport", func(t *testing.T) {
		// The node's own socket still allows a second SO_REUSEPORT socket
		// on its port (for migration and punching).
		second, err := reuseport.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("reuseport.ListenPacket(%s) beside the Transport: %v", addr, err)
		}
		second.Close()
	})
}

// closeRecorder is a PacketConn that counts Close calls.
type closeRecorder struct {
	net.PacketConn
	closes atomic.Int32
}

func (c *closeRecorder) Close() error {
	c.closes.Add(1)
	return c.PacketConn.Close()
}

func TestOpenClosesPacketConnOnError(t *testing.T) {
	leakcheck.Check(t)
	tests := []struct {
		name   string
		mutate func(*Config)
		setup  func(t *testing.T)
	}{
		{"nil_key", func(c *Config) { c.Key = nil }, nil},
		{"nil_logger", func(c *Config) { c.Logger = nil }, nil},
		{"zero_key", func(c *Config) { c.Key = &identity.Key{} }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			pc := &closeRecorder{PacketConn: udp}
			cfg := testConfig(testKey(t), "")
			cfg.PacketConn = pc
			tc.mutate(&cfg)
			tr, err := Open(cfg)
			if err == nil {
				tr.Close()
				t.Fatal("Open succeeded")
			}
			if n := pc.closes.Load(); n != 1 {
				t.Fatalf("Open failed (%v) and closed Config.PacketConn %d times, want 1", err, n)
			}
		})
	}

	t.Run("success_then_close", func(t *testing.T) {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		pc := &closeRecorder{PacketConn: udp}
		cfg := testConfig(testKey(t), "")
		cfg.PacketConn = pc
		tr, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if n := pc.closes.Load(); n != 0 {
			t.Fatalf("Open closed Config.PacketConn %d times on success", n)
		}
		tr.Close()
		if n := pc.closes.Load(); n != 1 {
			t.Fatalf("Close closed Config.PacketConn %d times, want 1", n)
		}
	})
}
