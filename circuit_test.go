package mycelium

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/relay"
)

// TestRelayLimits: a relay allows 3 circuits per previous hop and 5 in
// all. Peer X builds circuits through it in a loop: the 4th is refused
// with the reason "peer-limit", while peer Y's circuit, built after that,
// carries an echo. Then W fills the relay to 5, and V is refused with
// "capacity". The refusals are counted at the relay.
func TestRelayLimits(t *testing.T) {
	r := newTestNode(t, func(c *Config) {
		c.RelayResources = relay.DefaultResources()
		c.RelayResources.MaxCircuitsPerPeer = 3
		c.RelayResources.MaxCircuits = 5
	})
	target := newTestNode(t)
	serveEcho(t, mustListen(t, target, "echo"))
	if err := r.Connect(ctxT(t), target.ID(), target.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	dialer := func() *Node {
		n := newTestNode(t)
		if err := n.Connect(ctxT(t), r.ID(), r.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		return n
	}
	through := []hopRef{onionHop(r)}

	x := dialer()
	var built []*builtCircuit
	for i := range 4 {
		bc, err := x.buildCircuit(ctxT(t), through, onionHop(target))
		if i < 3 {
			if err != nil {
				t.Fatalf("X's circuit %d: %v", i+1, err)
			}
			built = append(built, bc)
			continue
		}
		if !errors.Is(err, ErrCircuitRefused) || !strings.Contains(err.Error(), "peer-limit") {
			t.Fatalf("X's circuit 4: %v, want refused for peer-limit", err)
		}
	}

	y := dialer()
	if _, err := y.dialVia(ctxT(t), through, onionHop(target)); err != nil {
		t.Fatalf("Y's circuit, with X at its limit: %v", err)
	}
	c, err := y.Dial(ctxT(t), target.ID(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("still flowing")
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("Y's echo over its circuit: %q %v", got, err)
	}
	c.Close()
	if p := peerOf(y, target.ID()); p.Path != "circuit" {
		t.Fatalf("Y's connection to the target: %+v, want a circuit", p)
	}

	w := dialer()
	if _, err := w.buildCircuit(ctxT(t), through, onionHop(target)); err != nil {
		t.Fatalf("W's circuit (the 5th): %v", err)
	}
	v := dialer()
	_, err = v.buildCircuit(ctxT(t), through, onionHop(target))
	if !errors.Is(err, ErrCircuitRefused) || !strings.Contains(err.Error(), "capacity") {
		t.Fatalf("V's circuit (the 6th): %v, want refused for capacity", err)
	}
	if got := r.Stats().Counters.CircuitsRefused; got != 2 {
		t.Errorf("the relay counted %d refusals, want 2", got)
	}
	relayed := 0
	for _, c := range r.Circuits() {
		if c.Role == "relay" && c.Prev != nil && c.Next != nil && *c.Next == target.ID() {
			relayed++
		}
	}
	if relayed != 5 {
		t.Errorf("the relay lists %d relayed circuits to the target, want 5: %+v", relayed, r.Circuits())
	}
	for _, bc := range built {
		bc.close(x)
	}
}

func peerOf(n *Node, id NodeID) PeerStats {
	for _, p := range n.Stats().Peers {
		if p.ID == id {
			return p
		}
	}
	return PeerStats{}
}

func mustListen(t testing.TB, n *Node, service string) net.Listener {
	t.Helper()
	l, err := n.Listen(service)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestCircuitSetupRate: a previous hop gets setupBurst setups at once,
// then setupRate a second; another peer has its own bucket.
func TestCircuitSetupRate(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := newCircuitState(key, relay.DefaultResources())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	var x, y NodeID
	x[0], y[0] = 1, 2
	for i := range setupBurst {
		if !cs.allowSetup(x, now) {
			t.Fatalf("setup %d of the burst refused", i+1)
		}
	}
	if cs.allowSetup(x, now) {
		t.Fatal("a setup past the burst was allowed")
	}
	if !cs.allowSetup(y, now) {
		t.Fatal("another peer was refused")
	}
	later := now.Add(time.Second)
	for i := range setupRate {
		if !cs.allowSetup(x, later) {
			t.Fatalf("after a second, setup %d refused", i+1)
		}
	}
	if cs.allowSetup(x, later) {
		t.Fatal("more than setupRate setups in a second")
	}
}
