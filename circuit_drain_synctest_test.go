package mycelium

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// labCircuitNodes starts n nodes on one netlab (5 ms links, public
// addresses), each with mutate applied to its config (started: the nodes
// started before it).
func labCircuitNodes(t *testing.T, n int, mutate func(i int, c *Config, started []*Node)) []*Node {
	t.Helper()
	nodes, _ := labNodesHosts(t, n, mutate)
	return nodes
}

// labNodesHosts is labCircuitNodes that also returns each node's host.
func labNodesHosts(t *testing.T, n int, mutate func(i int, c *Config, started []*Node)) ([]*Node, []*netlab.Host) {
	t.Helper()
	cfg := netlab.DefaultConfig()
	cfg.Link.Latency = 5 * time.Millisecond
	lab, err := netlab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	var nodes []*Node
	var hosts []*netlab.Host
	for i := range n {
		h, err := lab.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}))
		if err != nil {
			t.Fatal(err)
		}
		pc, err := h.ListenPacket(4433)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := GenerateKey()
		c := DefaultConfig()
		c.Key, c.PacketConn = key, pc
		if mutate != nil {
			mutate(i, &c, nodes)
		}
		nd, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := nd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		nodes, hosts = append(nodes, nd), append(hosts, h)
	}
	return nodes, hosts
}

// pingPong writes a message on c and checks its echo, leaving c open.
func pingPong(t *testing.T, c net.Conn) {
	t.Helper()
	msg := []byte("still flowing")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo: %q, %v", got, err)
	}
}

// circuitEcho dials target's echo service from a over the circuit
// through r and checks one exchange, leaving the stream open.
func circuitEcho(t *testing.T, a, r, target *Node) net.Conn {
	t.Helper()
	if _, err := a.dialVia(ctxT(t), []hopRef{onionHop(r)}, onionHop(target)); err != nil {
		t.Fatalf("circuit: %v", err)
	}
	c, err := a.Dial(ctxT(t), target.ID(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	pingPong(t, c)
	if p := peerOf(a, target.ID()); p.Path != "circuit" {
		t.Fatalf("a's connection to the target: %+v, want a circuit", p)
	}
	return c
}

// wantClosedFor waits for c's connection to end and checks the error
// names reason.
func wantClosedFor(t *testing.T, c net.Conn, reason string) {
	t.Helper()
	_, err := io.ReadAll(c)
	if err == nil || !strings.Contains(err.Error(), "circuit closed: "+reason) {
		t.Fatalf("read after the circuit ended: %v, want the reason %q", err, reason)
	}
}

// TestSynctestRelayDrain: a relay asked to drain refuses new circuits
// with "draining", publishes itself as full, keeps carrying the circuit
// it has until RelayResources.DrainTimeout, then ends it; both ends see
// "circuit closed: draining" as their connection's close reason.
func TestSynctestRelayDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const drain = 20 * time.Second
		ns := labCircuitNodes(t, 4, func(i int, c *Config, _ []*Node) {
			if i == 1 {
				c.Relay = true
				c.RelayResources.DrainTimeout = drain
			}
		})
		a, r, target, x := ns[0], ns[1], ns[2], ns[3]
		serveEcho(t, mustListen(t, target, "echo"))
		for _, p := range [][2]*Node{{a, r}, {r, target}, {x, r}} {
			if err := p[0].Connect(ctxT(t), p[1].ID(), p[1].LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		c := circuitEcho(t, a, r, target)

		start := time.Now()
		type result struct {
			ended int
			err   error
		}
		done := make(chan result, 1)
		go func() {
			n, err := r.Drain(context.Background())
			done <- result{n, err}
		}()
		synctest.Wait()
		if !r.circ.table.Stats().Draining {
			t.Fatal("the relay's table is not draining")
		}
		if rec, ok := r.Lookup(r.ID()); !ok || rec.RelayCapacity == 0 || rec.RelayLoad != rec.RelayCapacity {
			t.Fatalf("the draining relay's own record: %+v, want load = capacity", rec)
		}
		_, err := x.buildCircuit(ctxT(t), []hopRef{onionHop(r)}, onionHop(target))
		if !errors.Is(err, ErrCircuitRefused) || !strings.Contains(err.Error(), "draining") {
			t.Fatalf("a new circuit through the draining relay: %v, want refused for draining", err)
		}
		pingPong(t, c) // the circuit it has still flows

		res := <-done
		if res.err != nil || res.ended != 1 {
			t.Fatalf("Drain = %d, %v; want 1 circuit ended at the deadline", res.ended, res.err)
		}
		if took := time.Since(start); took < drain {
			t.Fatalf("Drain returned after %v, before its %v deadline", took, drain)
		}
		wantClosedFor(t, c, "draining")
		synctest.Wait()
		if p := peerOf(target, a.ID()); p.Path == "circuit" {
			t.Fatalf("the target still holds a's circuit connection: %+v", p)
		}
	})
}

// TestSynctestCircuitLinkLost: when the relay loses its link to the
// target, it ends the circuits over that link and the initiator's
// connection closes with "circuit closed: no-route" at once, not after an
// idle timeout.
func TestSynctestCircuitLinkLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ns := labCircuitNodes(t, 3, nil)
		a, r, target := ns[0], ns[1], ns[2]
		serveEcho(t, mustListen(t, target, "echo"))
		for _, p := range [][2]*Node{{a, r}, {r, target}} {
			if err := p[0].Connect(ctxT(t), p[1].ID(), p[1].LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		c := circuitEcho(t, a, r, target)
		start := time.Now()
		r.peers.active(target.ID()).qc.CloseWithError(0, "test: link lost")
		wantClosedFor(t, c, "no-route")
		if took := time.Since(start); took >= r.cfg.IdleTimeout {
			t.Fatalf("the initiator learnt of the lost link after %v, an idle timeout", took)
		}
		if got := len(r.Circuits()); got != 0 {
			t.Fatalf("the relay still lists %d circuits", got)
		}
	})
}

// TestSynctestDialRacesCircuit: a direct attempt that hangs (an address
// from a stale record, say) holds a user's dial for circuitHeadStart
// only: then a circuit starts alongside it, and a connection is returned
// one circuit setup later while the direct attempt is still running.
// (Here the target, which used a as a STUN observer, already holds a
// direct link to it, so the built circuit yields to that link: the
// check is on timing and on the circuit being built.)
func TestSynctestDialRacesCircuit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// r first; a and the target join the overlay through it, so both
		// are its neighbours and their records say so.
		ns := labCircuitNodes(t, 3, func(i int, c *Config, started []*Node) {
			if i > 0 {
				c.Bootstrap = []Peer{{ID: started[0].ID(), Addr: started[0].LocalAddr()}}
			}
		})
		r, a, target := ns[0], ns[1], ns[2]
		for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) { // virtual time
			if rec, ok := a.Lookup(target.ID()); ok && slices.Contains(rec.Neighbors, r.ID()) {
				break
			}
			if time.Now().After(deadline) {
				rec, ok := a.Lookup(target.ID())
				t.Fatalf("after 5 virtual minutes a holds the target's record %v: %+v", ok, rec)
			}
		}
		hung := make(chan struct{})
		direct := func(ctx context.Context) (*peerConn, error) {
			<-ctx.Done()
			close(hung)
			return nil, ctx.Err()
		}
		ctx, cancel := context.WithCancel(withCircuits(context.Background()))
		start := time.Now()
		pc, err := a.raceCircuit(ctx, target.ID(), direct)
		took := time.Since(start)
		if err != nil || pc == nil {
			t.Fatalf("raceCircuit: %v", err)
		}
		if got := a.Stats().Counters.CircuitsBuilt; got != 1 {
			t.Fatalf("a built %d circuits, want 1", got)
		}
		if took < circuitHeadStart || took > circuitHeadStart+time.Second {
			t.Fatalf("the circuit came after %v; want it started at %v, with one setup after", took, circuitHeadStart)
		}
		select {
		case <-hung:
			t.Fatal("the direct attempt was cancelled when the circuit won; it should run on")
		default:
		}
		cancel()
		<-hung
	})
}
