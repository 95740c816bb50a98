package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// twoNATs adds the demo's two NAT routers to lab: one like Linux
// MASQUERADE at 198.51.100.1, one symmetric at 198.51.100.2, each with a
// host behind it.
func twoNATs(lab *netlab.Network) (hostA, hostB *netlab.Host) {
	hostA, hostB, _, _ = twoRouters(lab)
	return hostA, hostB
}

// twoRouters is twoNATs that also returns the two routers.
func twoRouters(lab *netlab.Network) (hostA, hostB *netlab.Host, homeA, homeB *netlab.NAT) {
	masq := netlab.DefaultNATConfig()
	masq.Addr = netip.MustParseAddr("198.51.100.1")
	homeA, _ = lab.AddNAT(masq)
	sym := netlab.DefaultNATConfig()
	sym.Addr = netip.MustParseAddr("198.51.100.2")
	sym.Mapping, sym.Filtering, sym.Ports = netlab.AddressAndPortDependent, netlab.AddressAndPortDependent, netlab.PortRandom
	homeB, _ = lab.AddNAT(sym)
	hostA, _ = homeA.AddHost(netip.MustParseAddr("192.168.1.10"))
	hostB, _ = homeB.AddHost(netip.MustParseAddr("10.0.0.10"))
	return hostA, hostB, homeA, homeB
}

// labNodes is one check's netlab: the lab, the real nodes started on it
// and the goroutines serving them (wg), all ended at once by close.
type labNodes struct {
	lab   *netlab.Network
	nodes []*mycelium.Node
	wg    sync.WaitGroup
}

// newLab starts an empty netlab with the default configuration.
func newLab() (*labNodes, error) {
	lab, err := netlab.New(netlab.DefaultConfig())
	if err != nil {
		return nil, err
	}
	return &labNodes{lab: lab}, nil
}

// failer returns the helper a check uses to fail with a detail.
func failer(ch *Check) func(format string, a ...any) Check {
	return func(format string, a ...any) Check {
		ch.Detail = fmt.Sprintf(format, a...)
		return *ch
	}
}

// start runs a node on h at port (0: any) that bootstraps from boot.
func (l *labNodes) start(h *netlab.Host, port uint16, boot []mycelium.Peer) (*mycelium.Node, error) {
	return l.startWith(h, port, boot, nil)
}

// startWith is start with mutate applied to the node's config.
func (l *labNodes) startWith(h *netlab.Host, port uint16, boot []mycelium.Peer, mutate func(*mycelium.Config)) (*mycelium.Node, error) {
	pc, err := h.ListenPacket(port)
	if err != nil {
		return nil, err
	}
	key, err := mycelium.GenerateKey()
	if err != nil {
		return nil, err
	}
	cfg := mycelium.DefaultConfig()
	cfg.Key, cfg.PacketConn, cfg.Logger, cfg.Bootstrap = key, pc, slog.New(slog.DiscardHandler), boot
	cfg.HandshakeTimeout = time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := mycelium.New(cfg)
	if err == nil {
		err = n.Start()
	}
	if err != nil {
		return nil, err
	}
	l.nodes = append(l.nodes, n)
	return n, nil
}

func (l *labNodes) close() {
	for _, n := range l.nodes {
		n.Close()
	}
	l.wg.Wait()
	l.lab.Close()
}

// startObservers starts three public nodes on lab, two ports on
// 203.0.113.10 and one on 203.0.113.20, enough STUN observers to tell
// every mapping class apart. It returns the first as the bootstrap peer.
func (l *labNodes) startObservers(lab *netlab.Network) ([]mycelium.Peer, error) {
	pub1, _ := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
	pub2, _ := lab.AddHost(netip.MustParseAddr("203.0.113.20"))
	var boot []mycelium.Peer
	for _, s := range []struct {
		h    *netlab.Host
		port uint16
	}{{pub1, 4433}, {pub1, 4434}, {pub2, 4433}} {
		n, err := l.start(s.h, s.port, boot)
		if err != nil {
			return nil, err
		}
		if boot == nil {
			boot = []mycelium.Peer{{ID: n.ID(), Addr: n.LocalAddr()}}
		}
	}
	return boot, nil
}

// waitFor polls cond every 20 ms until it holds, for at most limit.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %v", limit)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// startTrio starts the two NAT checks' nodes on lab: P, public at
// 203.0.113.10:4433, and A and B behind twoNATs' routers (MASQUERADE-like
// and symmetric). With join, A and B bootstrap from P; without, they
// start alone.
func (l *labNodes) startTrio(lab *netlab.Network, join bool) (p, a, b *mycelium.Node, err error) {
	pubHost, err := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
	if err != nil {
		return nil, nil, nil, err
	}
	hostA, hostB := twoNATs(lab)
	if p, err = l.start(pubHost, 4433, nil); err != nil {
		return nil, nil, nil, err
	}
	var boot []mycelium.Peer
	if join {
		boot = []mycelium.Peer{{ID: p.ID(), Addr: p.LocalAddr()}}
	}
	if a, err = l.start(hostA, 0, boot); err != nil {
		return nil, nil, nil, err
	}
	if b, err = l.start(hostB, 0, boot); err != nil {
		return nil, nil, nil, err
	}
	return p, a, b, nil
}
