//go:build linux

package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

// TestPunchMasqueradePair: two nodes, each behind its own MASQUERADE NAT
// (endpoint-independent mapping, address-and-port-dependent filtering),
// with three public nodes between them, on links with no added delay.
// When one dials the other by node ID it must end up with a direct
// connection between the two routers' public addresses, through Linux
// conntrack's race in simultaneous opens (DESIGN.md), in every one of 10
// runs, each on fresh namespaces and nodes (MYCELIUM_PUNCH_RUNS=N for
// another count).
//
// What gets it through the race is the openers (punch.go): each side's
// TTL-2 packets open its own router for the peer and die in the internet
// namespace, so neither router sees the peer's packet first. Both sides
// must have sent openers, and neither may have received one.
func TestPunchMasqueradePair(t *testing.T) {
	leakcheck.Check(t)
	runs := 10
	if s := os.Getenv("MYCELIUM_PUNCH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("MYCELIUM_PUNCH_RUNS=%q: want a positive count", s)
		}
		runs = n
	}
	direct := 0
	for run := range runs {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			r := punchOnce(t, Masquerade, "endpoint-independent")
			if !r.direct {
				t.Errorf("no direct connection from A to B: %s", r.detail)
			}
			if r.a["punch_openers_sent"] == 0 || r.b["punch_openers_sent"] == 0 {
				t.Errorf("openers sent: A %d, B %d; want both", r.a["punch_openers_sent"], r.b["punch_openers_sent"])
			}
			if r.a["punch_openers_seen"] != 0 || r.b["punch_openers_seen"] != 0 {
				t.Errorf("openers received: A %d, B %d; want none (they must die before the peer's router)", r.a["punch_openers_seen"], r.b["punch_openers_seen"])
			}
			if r.direct {
				direct++
			}
		})
	}
	t.Logf("MASQUERADE x MASQUERADE, no added delay, with openers: direct in %d of %d fresh runs", direct, runs)
}

// TestPunchMasqueradePairNoOpeners is the control for the test above: the
// same topology with openers off (--punch-ttl 0), so the simultaneous dial
// meets conntrack's race unaided. It measures, and asserts only that no
// opener was sent; it runs with MYCELIUM_PUNCH_RACE=1 (as root):
// `MYCELIUM_PUNCH_RACE=1 go test -run TestPunchMasqueradePairNoOpeners -v
// ./simulations/netns`.
func TestPunchMasqueradePairNoOpeners(t *testing.T) {
	if os.Getenv("MYCELIUM_PUNCH_RACE") != "1" {
		t.Skip("a measurement of conntrack's race; set MYCELIUM_PUNCH_RACE=1 to run it")
	}
	leakcheck.Check(t)
	const runs = 5
	direct := 0
	for run := range runs {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			r := punchOnce(t, Masquerade, "endpoint-independent", "--punch-ttl=0")
			if r.a["punch_openers_sent"] != 0 || r.b["punch_openers_sent"] != 0 {
				t.Errorf("openers sent with --punch-ttl=0: A %d, B %d", r.a["punch_openers_sent"], r.b["punch_openers_sent"])
			}
			t.Logf("direct %v: %s", r.direct, r.detail)
			if r.direct {
				direct++
			}
		})
	}
	t.Logf("MASQUERADE x MASQUERADE, no added delay, no openers: direct in %d of %d fresh runs", direct, runs)
}

// punchResult is what one punch run saw.
type punchResult struct {
	direct     bool              // A holds a direct connection to B's router
	dialErr    error             // the dial command's failure, if any
	dialStderr string            // and what it said
	a, b       map[string]uint64 // the two nodes' counters after the dial
	detail     string            // for messages
}

// punchOnce builds fresh namespaces: three public nodes (two on one host,
// for STUN observers on two ports of one IP), and A and B each behind a
// router of recipe, each node started with extra flags. It waits until
// both have classified their mapping as mapping and A knows B's record as
// NATed, then dials B's echo service from A with 64 KiB and reads A's
// connection to B from status.
func punchOnce(t *testing.T, recipe Recipe, mapping string, extra ...string) punchResult {
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
	ra, rb := tb.AddNAT("nata", recipe), tb.AddNAT("natb", recipe)
	ha, hb := ra.AddHost("ha"), rb.AddHost("hb")
	a := startNode(t, tb, bin, ha, netip.AddrPortFrom(ha.Addr, 4242), append([]string{boot}, extra...)...)
	b := startNode(t, tb, bin, hb, netip.AddrPortFrom(hb.Addr, 4242), append([]string{boot}, extra...)...)
	classified := regexp.MustCompile(`msg="nat classified"[^\n]* mapping=` + regexp.QuoteMeta(mapping) + ` [^\n]*public=false`)
	for _, n := range []*node{a, b} {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		_, err := n.proc.WaitFor(ctx, classified)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	// A must know B's record as NATed before it dials.
	bShort := b.id[:8]
	for {
		out := a.cli(t, nil, "peers", "--json", "--min", "5", "--wait", "1m")
		var res struct {
			Peers []struct {
				ID        string
				Inbound   bool
				Reflexive []string
			}
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatal(err)
		}
		ok := false
		for _, p := range res.Peers {
			if strings.HasPrefix(p.ID, bShort) && !p.Inbound && len(p.Reflexive) > 0 {
				ok = true
			}
		}
		if ok {
			break
		}
		a.cli(t, nil, "peers", "--min", "6", "--wait", "2s") // wait on registry changes, bounded
	}

	ln, err := hb.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { echo.Serve(ln); close(served) }()
	defer func() { ln.Close(); <-served }()
	b.cli(t, nil, "expose", "echo", ln.Addr().String())

	payload := make([]byte, 64<<10)
	rand.Read(payload)
	got, stderr, dialErr := a.tryCLI(payload, "dial", b.id+"/echo")
	if dialErr == nil && !bytes.Equal(got, payload) {
		t.Fatalf("echo returned %d bytes differing from the %d sent", len(got), len(payload))
	}
	type status struct {
		Peers    []struct{ ID, Path, Addr string }
		Counters map[string]uint64
	}
	var sa, sb status
	if err := json.Unmarshal(a.cli(t, nil, "status", "--json"), &sa); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.cli(t, nil, "status", "--json"), &sb); err != nil {
		t.Fatal(err)
	}
	r := punchResult{dialErr: dialErr, dialStderr: strings.TrimSpace(string(stderr)), a: sa.Counters, b: sb.Counters}
	conn := "none"
	for _, p := range sa.Peers {
		if p.ID == b.id {
			ap, err := netip.ParseAddrPort(p.Addr)
			r.direct = err == nil && ap.Addr() == rb.PublicAddr() && p.Path == "direct"
			conn = fmt.Sprintf("%s at %s", p.Path, p.Addr)
		}
	}
	r.detail = fmt.Sprintf("A's connection to B: %s (B's router %v); dial error %v %q; punch: attempts %d direct %d failed %d skipped %d, dial %d µs, openers sent A %d B %d, seen A %d B %d",
		conn, rb.PublicAddr(), dialErr, r.dialStderr, sa.Counters["punch_attempts"], sa.Counters["punch_direct"], sa.Counters["punch_failed"],
		sa.Counters["punch_skipped"], sa.Counters["punch_dial_us"], sa.Counters["punch_openers_sent"], sb.Counters["punch_openers_sent"],
		sa.Counters["punch_openers_seen"], sb.Counters["punch_openers_seen"])
	t.Log(r.detail)
	for _, n := range append(others, a, b, pub) {
		n.stop(t)
	}
	return r
}
