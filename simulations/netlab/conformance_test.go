package netlab_test

import (
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/internal/leakcheck"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

func TestPacketConnUDP(t *testing.T) {
	netlab.TestPacketConn(t, func(t *testing.T) (a, b net.PacketConn) {
		a, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b, err = net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			a.Close()
			t.Fatal(err)
		}
		return a, b
	})
}

// makeNetlabPair makes two public hosts over links with the given latency.
func makeNetlabPair(latency time.Duration) netlab.MakePair {
	return func(t *testing.T) (a, b net.PacketConn) {
		lab := newLab(t, func(c *netlab.Config) { c.Link.Latency = latency })
		return listen(t, addHost(t, lab, server1), 0), listen(t, addHost(t, lab, server2), 4433)
	}
}

// makeSameHostPair makes two sockets on one host.
func makeSameHostPair(t *testing.T) (a, b net.PacketConn) {
	h := addHost(t, newLab(t), server1)
	return listen(t, h, 0), listen(t, h, 0)
}

func TestPacketConnNetlab(t *testing.T) {
	leakcheck.Check(t)
	t.Run("zero_latency", func(t *testing.T) { netlab.TestPacketConn(t, makeNetlabPair(0)) })
	t.Run("one_ms_latency", func(t *testing.T) { netlab.TestPacketConn(t, makeNetlabPair(time.Millisecond)) })
	t.Run("same_host", func(t *testing.T) { netlab.TestPacketConn(t, makeSameHostPair) })
}

func TestPacketConnNetlabSynctest(t *testing.T) {
	t.Run("zero_latency", func(t *testing.T) { netlab.TestPacketConnIn(t, makeNetlabPair(0), synctest.Test) })
	t.Run("twenty_ms_latency", func(t *testing.T) {
		netlab.TestPacketConnIn(t, makeNetlabPair(20*time.Millisecond), synctest.Test)
	})
}
