//go:build linux

package netns

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

// TestCircuitAcrossSymmetricNATs: two nodes, each behind a `MASQUERADE
// --random-fully` router, and one public node running `mycelium relay`.
// No hole punch can work between two such NATs. `mycelium dial` from one
// to the other's echo service by node ID carries 1 MiB there and back
// intact, and the dialer's status shows the peer on path "circuit" through
// the relay.
func TestCircuitAcrossSymmetricNATs(t *testing.T) {
	leakcheck.Check(t)
	tb := New(t)
	bin := myceliumBinary(t)
	pubHost := tb.AddPublicHost("relay")
	rl := startRole(t, tb, bin, pubHost, "relay", "relay", netip.AddrPortFrom(pubHost.Addr, 4242))
	boot := "--bootstrap=" + rl.id + "@" + rl.listen
	ha := tb.AddNAT("nata", MasqueradeRandomFully).AddHost("ha")
	hb := tb.AddNAT("natb", MasqueradeRandomFully).AddHost("hb")
	a := startNode(t, tb, bin, ha, netip.AddrPortFrom(ha.Addr, 4242), boot)
	b := startNode(t, tb, bin, hb, netip.AddrPortFrom(hb.Addr, 4242), boot)

	// A must know B's record (behind a NAT, with the relay as neighbour).
	known := false
	for range 30 {
		var res struct {
			Peers []struct {
				ID      string
				Inbound bool
			}
		}
		if err := json.Unmarshal(a.cli(t, nil, "peers", "--json", "--min", "3", "--wait", "30s"), &res); err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Peers {
			if p.ID == b.id && !p.Inbound {
				known = true
			}
		}
		if known {
			break
		}
		a.cli(t, nil, "peers", "--min", "1000", "--wait", "2s") // wait on registry changes, bounded
	}
	if !known {
		t.Fatal("A never learnt B's record as behind a NAT")
	}

	ln, err := hb.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { echo.Serve(ln); close(served) }()
	defer func() { ln.Close(); <-served }()
	b.cli(t, nil, "expose", "echo", ln.Addr().String())

	payload := make([]byte, 1<<20)
	rand.Read(payload)
	got, stderr, err := a.tryCLI(payload, "dial", "--timeout", "30s", b.id+"/echo")
	if err != nil {
		t.Fatalf("dial B by ID: %v: %s", err, stderr)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo returned %d bytes differing from the %d sent", len(got), len(payload))
	}
	var st struct {
		Peers []struct {
			ID, Path string
			Hops     int
			Via      []string
		}
		Counters map[string]uint64
	}
	if err := json.Unmarshal(a.cli(t, nil, "status", "--json"), &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range st.Peers {
		if p.ID == b.id {
			found = true
			if p.Path != "circuit" || p.Hops != 1 || len(p.Via) != 1 || p.Via[0] != rl.id {
				t.Errorf("A's peer B: %+v, want path circuit via the relay %s", p, rl.id)
			}
			t.Logf("A's peer B: %+v; A's counters: punch attempts %d, skipped %d, dials failed %d, circuits built %d", p, st.Counters["punch_attempts"], st.Counters["punch_skipped"], st.Counters["dials_failed"], st.Counters["circuits_built"])
		}
	}
	if !found {
		t.Errorf("A's status lists no peer B: %+v", st.Peers)
	}
	// `mycelium circuits` at the relay lists a relayed circuit from A to B,
	// and at A the one A built, toward the relay.
	var rc, ac struct {
		Circuits []struct {
			Role       string
			Prev, Next string
		}
	}
	if err := json.Unmarshal(rl.cli(t, nil, "circuits", "--json"), &rc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(a.cli(t, nil, "circuits", "--json"), &ac); err != nil {
		t.Fatal(err)
	}
	relayed, built := false, false
	for _, c := range rc.Circuits {
		relayed = relayed || (c.Role == "relay" && c.Prev == a.id && c.Next == b.id)
	}
	for _, c := range ac.Circuits {
		built = built || (c.Role == "initiator" && c.Next == rl.id)
	}
	if !relayed || !built {
		t.Errorf("circuits: the relay lists %+v, A lists %+v; want A -> B relayed and A's own toward the relay", rc.Circuits, ac.Circuits)
	}
	if c := counters(t, rl); c["circuits_relayed"] < 1 {
		t.Errorf("the relay relayed %d circuits", c["circuits_relayed"])
	}
	for _, n := range []*node{a, b, rl} {
		n.stop(t)
	}
}
