//go:build linux

package netns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

// TestMyceliumNATClassified runs the real binary behind every recipe and
// checks that each node classifies both its NAT's mapping and its
// filtering as the recipe gives them (the recipes themselves are checked
// against coturn's turnutils_natdiscovery in TestRecipesAgreeWithNATDiscovery).
//
// Filtering probes need public nodes the NATed node has never sent to
// (natprobe.go), so there are 16: two on each of 8 public hosts. The node
// sends to at most 4 STUN observers and its overlay neighbours.
//
// Then the theory's "give up" is checked on real NATs: two nodes behind
// `MASQUERADE --random-fully` (address-and-port-dependent mapping and
// filtering) cannot be hole-punched, so a dial between them makes no
// coordinated try and sends no opener, and goes over a circuit.
func TestMyceliumNATClassified(t *testing.T) {
	leakcheck.Check(t)
	tb := New(t)
	bin := myceliumBinary(t)
	var pubs []*node
	var boot string
	for i := range 8 {
		h := tb.AddPublicHost(fmt.Sprintf("pub%d", i))
		for _, port := range []uint16{4242, 4243} {
			extra := []string{}
			if boot != "" {
				extra = append(extra, boot)
			}
			n := startNodeHome(t, tb, bin, h, fmt.Sprintf("pub%d-%d", i, port), netip.AddrPortFrom(h.Addr, port), extra...)
			pubs = append(pubs, n)
			if boot == "" {
				boot = "--bootstrap=" + n.id + "@" + n.listen
			}
		}
	}
	recipes := append(Recipes(), MasqueradeRandomFully)
	nated := make([]*node, len(recipes))
	for i, recipe := range recipes {
		h := tb.AddNAT(fmt.Sprintf("nat%d", i), recipe).AddHost(fmt.Sprintf("h%d", i))
		nated[i] = startNode(t, tb, bin, h, netip.AddrPortFrom(h.Addr, 4242), boot)
	}
	var fully []*node
	for i, recipe := range recipes {
		want := regexp.MustCompile(`msg="nat classified"[^\n]* mapping=` + recipe.Mapping().String() +
			` filtering=` + recipe.Filtering().String() + ` public=false`)
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		_, err := nated[i].proc.WaitFor(ctx, want)
		cancel()
		if err != nil {
			last := "none"
			if m := regexp.MustCompile(`msg="nat classified"[^\n]*`).FindAllString(nated[i].proc.Output(), -1); len(m) > 0 {
				last = m[len(m)-1]
			}
			t.Errorf("%s: never classified as mapping %s, filtering %s; last: %s", recipe, recipe.Mapping(), recipe.Filtering(), last)
			continue
		}
		t.Logf("%s: classified as mapping %s, filtering %s:\n%s", recipe, recipe.Mapping(), recipe.Filtering(),
			strings.Join(regexp.MustCompile(`[^\n]*msg="nat (classified|filtering)[^\n]*`).FindAllString(nated[i].proc.Output(), -1), "\n"))
		if recipe == MasqueradeRandomFully {
			fully = append(fully, nated[i])
		}
	}

	if len(fully) == 2 {
		a, b := fully[0], fully[1]
		// A must know B's record with its classification first.
		waitRecord(t, a, b, "address-and-port-dependent")
		// The overlay may have tried to connect the two on its own before
		// they were classified; count from here.
		ca0 := counters(t, a)
		// B exposes no service "anything": the dial's error says it got
		// there, over a circuit, since the punch was not even tried.
		_, stderr, err := a.tryCLI(nil, "dial", b.id+"/anything")
		if err == nil || !strings.Contains(string(stderr), "unknown service") {
			t.Errorf("dial between two --random-fully nodes: err %v, stderr %q; want B's answer that it has no such service", err, stderr)
		}
		var st struct {
			Peers []struct{ ID, Path string }
		}
		if err := json.Unmarshal(a.cli(t, nil, "status", "--json"), &st); err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Peers {
			if p.ID == b.id && p.Path != "circuit" {
				t.Errorf("A's connection to B: path %s, want circuit", p.Path)
			}
		}
		ca := counters(t, a)
		delta := func(now, before map[string]uint64, k string) uint64 { return now[k] - before[k] }
		// (B's own counters are not checked: other NATed nodes' overlay
		// links may punch to B meanwhile; CI once saw B answer one.)
		if s, at, op := delta(ca, ca0, "punch_skipped"), delta(ca, ca0, "punch_attempts"), delta(ca, ca0, "punch_openers_sent"); s != 1 || at != 0 || op != 0 {
			t.Errorf("during the dial: A skipped %d, attempted %d, sent %d openers; want 1, 0, 0", s, at, op)
		}
	}
	for _, n := range nated {
		n.stop(t)
	}
	for i := len(pubs) - 1; i >= 0; i-- {
		pubs[i].stop(t)
	}
}

// waitRecord waits, bounded, until a's registry holds b's record with its
// NAT filtering classified as filtering.
func waitRecord(t *testing.T, a, b *node, filtering string) {
	t.Helper()
	for range 30 {
		var res struct {
			Peers []struct {
				ID  string
				NAT struct{ Filtering string }
			}
		}
		if err := json.Unmarshal(a.cli(t, nil, "peers", "--json"), &res); err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Peers {
			if p.ID == b.id && p.NAT.Filtering == filtering {
				return
			}
		}
		a.cli(t, nil, "peers", "--min", "1000", "--wait", "2s") // wait on registry changes, bounded
	}
	t.Fatalf("%s's registry never showed %s's filtering as %s", a.id[:8], b.id[:8], filtering)
}

// counters reads n's status counters.
func counters(t *testing.T, n *node) map[string]uint64 {
	t.Helper()
	var st struct{ Counters map[string]uint64 }
	if err := json.Unmarshal(n.cli(t, nil, "status", "--json"), &st); err != nil {
		t.Fatal(err)
	}
	return st.Counters
}

// TestMyceliumNATRediscoveredAfterMove: a node bound to 0.0.0.0 behind a
// MASQUERADE router classifies its NAT; its host then moves to the LAN of a
// `--random-fully` router (a laptop changing networks). The node notices its
// local address change within a few seconds, runs discovery again and
// reports the new router's address and mapping.
func TestMyceliumNATRediscoveredAfterMove(t *testing.T) {
	leakcheck.Check(t)
	tb := New(t)
	bin := myceliumBinary(t)
	pubHost := tb.AddPublicHost("pub")
	pub := startNode(t, tb, bin, pubHost, netip.AddrPortFrom(pubHost.Addr, 4242))
	boot := "--bootstrap=" + pub.id + "@" + pub.listen
	pubHost2 := tb.AddPublicHost("pub2")
	others := []*node{
		startNodeHome(t, tb, bin, pubHost, "pub-b", netip.AddrPortFrom(pubHost.Addr, 4243), boot),
		startNodeHome(t, tb, bin, pubHost2, "pub2", netip.AddrPortFrom(pubHost2.Addr, 4242), boot),
	}
	r1, r2 := tb.AddNAT("nat1", Masquerade), tb.AddNAT("nat2", MasqueradeRandomFully)
	h := r1.AddHost("h")
	n := startNodeHome(t, tb, bin, h, "h", netip.MustParseAddrPort("0.0.0.0:4242"), boot)
	classified := func(mapping string, router *Router) *regexp.Regexp {
		return regexp.MustCompile(`msg="nat classified"[^\n]* mapping=` + mapping + ` [^\n]*public=false reflexive=` + regexp.QuoteMeta(router.PublicAddr().String()) + `:`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := n.proc.WaitFor(ctx, classified("endpoint-independent", r1)); err != nil {
		t.Fatal(err)
	}
	was := h.Addr
	now, err := h.MoveTo(r2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("moved the host from %v behind %v to %v behind %v", was, r1.PublicAddr(), now, r2.PublicAddr())
	if _, err := n.proc.WaitFor(ctx, regexp.MustCompile(`msg="local address changed[^\n]*now=[^\n]*`+regexp.QuoteMeta(now.String()))); err != nil {
		t.Fatal(err)
	}
	if _, err := n.proc.WaitFor(ctx, classified("address-and-port-dependent", r2)); err != nil {
		t.Fatal(err)
	}
	if c := counters(t, n); c["nat_local_changes"] != 1 {
		t.Errorf("nat_local_changes %d, want 1", c["nat_local_changes"])
	}
	n.stop(t)
	for _, o := range append(others, pub) {
		o.stop(t)
	}
}
