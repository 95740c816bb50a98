package mycelium

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/migration"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// migrationLab is two nodes, A and B, each behind its own NAT with
// endpoint-independent mapping and address-and-port-dependent filtering
// (Linux MASQUERADE: punchable), three public nodes, and every link
// oneWay long. It returns once A holds B's record with its NAT class.
func migrationLab(t *testing.T, oneWay time.Duration) (lab *netlab.Network, pubs []*Node, a, b *Node, natA, natB *netlab.NAT) {
	t.Helper()
	cfg := netlab.DefaultConfig()
	cfg.Link.Latency = oneWay
	lab, err := netlab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	node := func(h *netlab.Host, port uint16, boot []Peer) *Node {
		pc, err := h.ListenPacket(port)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := GenerateKey()
		c := DefaultConfig()
		c.Key, c.PacketConn, c.Bootstrap = key, pc, boot
		nd, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := nd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		return nd
	}
	var boot []Peer
	for i := range 3 {
		h, err := lab.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}))
		if err != nil {
			t.Fatal(err)
		}
		p := node(h, 4433, boot)
		pubs = append(pubs, p)
		if i == 0 {
			boot = []Peer{{ID: p.ID(), Addr: p.LocalAddr()}}
		}
	}
	nat := func(addr string) *netlab.NAT {
		c := netlab.DefaultNATConfig()
		c.Addr = netip.MustParseAddr(addr)
		c.Mapping, c.Filtering = netlab.EndpointIndependent, netlab.AddressAndPortDependent
		c.InboundSessions = true
		n, err := lab.AddNAT(c)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	natA, natB = nat("198.51.100.1"), nat("198.51.100.2")
	hA, err := natA.AddHost(netip.MustParseAddr("192.168.1.10"))
	if err != nil {
		t.Fatal(err)
	}
	hB, err := natB.AddHost(netip.MustParseAddr("10.0.0.10"))
	if err != nil {
		t.Fatal(err)
	}
	a, b = node(hA, 5000, boot), node(hB, 6000, boot)
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		r, ok := a.Lookup(b.ID())
		if ok && !r.Inbound && r.OnionKey != [32]byte{} && r.Mapping.String() == "endpoint-independent" &&
			a.Stats().NAT.Mapping == "endpoint-independent" && len(r.Neighbors) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A never learnt B's record with its NAT class: %+v", r)
		}
	}
	return lab, pubs, a, b, natA, natB
}

// flow streams numbered 1 KiB chunks through B's echo service and checks
// every byte that comes back, recording the longest gap between two
// arrivals (the stall).
type flow struct {
	c        net.Conn
	sent     atomic.Int64
	stall    time.Duration
	last     time.Time
	readErr  chan error
	stop     chan struct{}
	finished chan error
}

const flowChunk = 1024

func startFlow(t *testing.T, c net.Conn, every time.Duration) *flow {
	f := &flow{c: c, last: time.Now(), readErr: make(chan error, 1), stop: make(chan struct{}), finished: make(chan error, 1)}
	go func() { // writer
		defer c.(interface{ CloseWrite() error }).CloseWrite()
		buf := make([]byte, flowChunk)
		for seq := uint64(0); ; seq++ {
			select {
			case <-f.stop:
				f.finished <- nil
				return
			default:
			}
			for i := 0; i < flowChunk; i += 8 {
				binary.BigEndian.PutUint64(buf[i:], seq*flowChunk/8+uint64(i/8))
			}
			if _, err := c.Write(buf); err != nil {
				f.finished <- err
				return
			}
			f.sent.Add(flowChunk)
			time.Sleep(every)
		}
	}()
	go func() { // reader: every 8 bytes hold their own index
		buf := make([]byte, 8)
		for idx := uint64(0); ; idx++ {
			if _, err := io.ReadFull(c, buf); err != nil {
				if err == io.EOF {
					err = nil
				}
				if err == nil && int64(idx*8) != f.sent.Load() {
					err = fmt.Errorf("read %d bytes back, sent %d", idx*8, f.sent.Load())
				}
				f.readErr <- err
				return
			}
			if got := binary.BigEndian.Uint64(buf); got != idx {
				f.readErr <- fmt.Errorf("byte %d: word %d arrived where %d was due", idx*8, got, idx)
				return
			}
			if now := time.Now(); idx%(flowChunk/8) == 0 {
				f.stall = max(f.stall, now.Sub(f.last))
				f.last = now
			}
		}
	}()
	return f
}

// end stops the writer and waits for every byte to come back.
func (f *flow) end(t *testing.T) {
	t.Helper()
	close(f.stop)
	if err := <-f.finished; err != nil {
		t.Fatalf("writing the stream: %v", err)
	}
	if err := <-f.readErr; err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	f.c.Close()
}

// sessionOf returns the path layer of n's connections to peer that began
// in a circuit.
func sessionOf(n *Node, peer NodeID) *pathSession {
	n.sessMu.Lock()
	defer n.sessMu.Unlock()
	for _, s := range n.sessions {
		if s.peer == peer {
			return s
		}
	}
	return nil
}

// circuitBytes is what n relays on circuits, both ways.
func circuitBytes(n *Node) uint64 {
	var sum uint64
	for _, c := range n.Circuits() {
		if c.Role == "relay" {
			sum += c.BytesForward + c.BytesBackward
		}
	}
	return sum
}

// TestSynctestCircuitUpgradedToDirect (issue 8, acceptance 1): A reaches
// B, both behind punchable NATs, over a circuit first, and opens a stream
// that carries 1 KiB every 20 ms through B's echo service the whole time.
// Nobody asks for a punch: A's migration machine asks for one
// (TryUpgrade) a few seconds in, the punch gives a direct connection,
// and both path layers validate the direct path with authenticated
// PINGs and move the connection onto it. The stream sees no error and
// every byte comes back in order; after the move the relay carries only
// the keep-alive PINGs, not the stream.
func TestSynctestCircuitUpgradedToDirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, pubs, a, b, _, _ := migrationLab(t, 25*time.Millisecond)
		serveEcho(t, mustListen(t, b, "echo"))
		rec, _ := a.Lookup(b.ID())
		ctx, cancel := context.WithTimeout(withCircuits(context.Background()), time.Minute)
		defer cancel()
		pc, err := a.dialCircuit(ctx, rec)
		if err != nil {
			t.Fatalf("circuit to B: %v", err)
		}
		s, err := a.openStream(ctx, pc, "echo")
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		f := startFlow(t, s, 20*time.Millisecond)
		sa := pc.session
		if sa == nil {
			t.Fatal("the circuit's connection has no path layer")
		}
		var sb *pathSession
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
			if sb == nil {
				sb = sessionOf(b, a.ID())
			}
			if sa.stats().kind == migration.Direct && sb != nil && sb.stats().kind == migration.Direct {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no move to a direct path within 2 min: A %+v, B on %v; A counters %+v",
					sa.stats(), sb, a.Stats().Counters)
			}
		}
		moved := time.Now()
		var relay *Node
		for _, p := range pubs {
			if p.ID() == pc.via[0] {
				relay = p
			}
		}
		time.Sleep(time.Second) // packets in flight at the move, and their ACKs
		before := circuitBytes(relay)
		time.Sleep(4 * time.Second) // 200 chunks each way
		relayed := circuitBytes(relay) - before
		// The stream's connection still lives (it drains: the punch's
		// direct connection took new streams), so the status counts it.
		var peer PeerStats
		for _, p := range a.Stats().Peers {
			if p.ID == b.ID() {
				peer = p
			}
		}
		if peer.Path != "direct" || peer.Migrations != 1 || a.Stats().Counters.Migrations != 1 {
			t.Errorf("A's status for B: path %q, migrations %d (node: %d); want direct, 1 (1)", peer.Path, peer.Migrations, a.Stats().Counters.Migrations)
		}
		f.end(t)
		st := sa.stats()
		t.Logf("moved to direct %v after the stream began; stream stall (longest gap between chunks) %v; A on circuit %v, direct %v; %d migrations; relay carried %d B in 4 s from 1 s after the move; %d KiB echoed intact",
			moved.Sub(began), f.stall, st.onPath[migration.Circuit], st.onPath[migration.Direct], st.migrations, relayed, f.sent.Load()/1024)
		if st.migrations != 1 || sb.stats().migrations != 1 {
			t.Errorf("migrations: A %d, B %d; want 1 each (circuit to direct)", st.migrations, sb.stats().migrations)
		}
		// 200 KiB each way crossed the direct path meanwhile; the
		// circuit's share is the standby keep-alives: a PING and a
		// PONG every 2 s from each end, under 100 bytes each.
		if relayed > 2048 {
			t.Errorf("the relay carried %d bytes in 4 s well after the move: the stream still crosses the circuit", relayed)
		}
	})
}
