//go:build linux

package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

// TestMigrationSurvivesRebindingAndRelayDeath (issue 8, acceptance 3):
// two nodes behind `MASQUERADE --random-fully` routers (no hole punch
// works between them, so their connection lives on circuits) and two
// public relays. `mycelium dial` carries 20 MiB from A to B's echo
// service and back. When the first 10 MiB have come back, A's router
// gives every mapping a new public port (RebindPort), and the relay the
// connection's circuit runs through is killed (SIGKILL: no goodbye).
// The second 10 MiB follow on the same stream; all 20 MiB must come back
// intact, and A's status must show the connection moved.
func TestMigrationSurvivesRebindingAndRelayDeath(t *testing.T) {
	leakcheck.Check(t)
	tb := New(t)
	bin := myceliumBinary(t)
	h1, h2 := tb.AddPublicHost("relay1"), tb.AddPublicHost("relay2")
	r1 := startRole(t, tb, bin, h1, "relay1", "relay", netip.AddrPortFrom(h1.Addr, 4242))
	r2 := startRole(t, tb, bin, h2, "relay2", "relay", netip.AddrPortFrom(h2.Addr, 4242), "--bootstrap="+r1.id+"@"+r1.listen)
	relays := []*node{r1, r2}
	boot := "--bootstrap=" + r1.id + "@" + r1.listen + "," + r2.id + "@" + r2.listen
	natA := tb.AddNAT("nata", MasqueradeRandomFully)
	ha := natA.AddHost("ha")
	hb := tb.AddNAT("natb", MasqueradeRandomFully).AddHost("hb")
	a := startNode(t, tb, bin, ha, netip.AddrPortFrom(ha.Addr, 4242), boot)
	b := startNode(t, tb, bin, hb, netip.AddrPortFrom(hb.Addr, 4242), boot)
	logPathsOnFailure(t, a, b)

	// A must know B's record (behind a NAT), and both relays must hold
	// a link to B, so that either can carry a circuit to it.
	ready := func() bool {
		var res struct{ Peers []struct{ ID string } }
		for _, r := range relays {
			if err := json.Unmarshal(r.cli(t, nil, "status", "--json"), &res); err != nil {
				t.Fatal(err)
			}
			linked := false
			for _, p := range res.Peers {
				linked = linked || p.ID == b.id
			}
			if !linked {
				return false
			}
		}
		var recs struct {
			Peers []struct {
				ID      string
				Inbound bool
			}
		}
		if err := json.Unmarshal(a.cli(t, nil, "peers", "--json"), &recs); err != nil {
			t.Fatal(err)
		}
		for _, p := range recs.Peers {
			if p.ID == b.id && !p.Inbound {
				return true
			}
		}
		return false
	}
	for i := 0; !ready(); i++ {
		if i == 60 {
			t.Fatal("A never learnt B's record, or the relays never both linked to B")
		}
		a.cli(t, nil, "peers", "--min", "1000", "--wait", "2s") // a bounded wait on registry changes
	}

	exposeEcho(t, b, hb)

	const half = 10 << 20
	var killed *node
	dialInSteps(t, a, b.id, half, 2, func(int) {
		// Mid-transfer: a new NAT mapping for A, and the death of the
		// relay the connection runs through.
		via := circuitVia(t, a, b.id)
		if err := natA.RebindPort(); err != nil {
			t.Fatal(err)
		}
		for _, r := range relays {
			if r.id == via {
				killed = r
			}
		}
		if killed == nil {
			t.Fatalf("A's connection to B runs through %q, none of the relays", via)
		}
		if err := killed.proc.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		t.Logf("first 10 MiB back; A's NAT rebound and relay %s (the circuit's) killed", killed.host.Role)
	})
	t.Logf("20 MiB came back intact")
	var st struct {
		Peers []struct {
			ID, Path   string
			Via        []string
			Migrations uint64
		}
		Counters map[string]uint64
	}
	if err := json.Unmarshal(a.cli(t, nil, "status", "--json"), &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("20 MiB intact; A's counters: migrations %d, circuits built %d; peers %+v", st.Counters["migrations"], st.Counters["circuits_built"], st.Peers)
	if st.Counters["migrations"] == 0 {
		t.Errorf("A made no migration, yet its relay died under the stream")
	}
	for _, p := range st.Peers {
		if p.ID == b.id && (p.Path != "circuit" || len(p.Via) == 0 || p.Via[0] == killed.id) {
			t.Errorf("A's peer B: %+v; want a circuit through the relay still alive", p)
		}
	}
}

// exposeEcho serves an echo service on B's loopback and exposes it as
// "echo" until the test ends.
func exposeEcho(t *testing.T, b *node, hb *Host) {
	t.Helper()
	ln, err := hb.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { echo.Serve(ln); close(served) }()
	t.Cleanup(func() { ln.Close(); <-served })
	b.cli(t, nil, "expose", "echo", ln.Addr().String())
}

// dialInSteps runs `mycelium dial` from a to peer's echo service and
// sends steps × step random bytes over the one stream; after each step
// but the last has come back in full, it calls between(i). It fails the
// test unless every byte comes back intact.
func dialInSteps(t *testing.T, a *node, peer string, step, steps int, between func(int)) []byte {
	t.Helper()
	payload := make([]byte, step*steps)
	rand.Read(payload)
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitLimit)
	defer cancel()
	cmd := a.host.Command(ctx, a.bin, "dial", "--control", a.control, "--timeout", "30s", peer+"/echo")
	cmd.Env = a.env()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer // read on failure while the process may still write
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	progress := make(chan int, steps) // steps back in full
	got := make(chan []byte, 1)
	// The stall of a step is the longest gap between two reads from
	// when its write began (the gap between steps is the test's pause).
	// The first step's includes the dial and QUIC's slow start.
	var (
		mu    sync.Mutex
		start time.Time // the current step's write began
		last  time.Time // the last read
		stall = make([]time.Duration, steps)
	)
	go func() {
		buf := make([]byte, 0, len(payload))
		tmp := make([]byte, 64<<10)
		done := 0
		for {
			n, err := stdout.Read(tmp)
			if n > 0 {
				now := time.Now()
				mu.Lock()
				if i := min(done, steps-1); !start.IsZero() {
					stall[i] = max(stall[i], now.Sub(later(last, start)))
				}
				last = now
				mu.Unlock()
			}
			buf = append(buf, tmp[:n]...)
			for done < steps && len(buf) >= (done+1)*step {
				done++
				progress <- done
			}
			if err != nil {
				got <- buf
				return
			}
		}
	}()
	var began time.Time
	stallOf := func(i int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return stall[i].Round(time.Millisecond)
	}
	for i := range steps {
		began = time.Now()
		mu.Lock()
		start = began
		mu.Unlock()
		if _, err := stdin.Write(payload[i*step : (i+1)*step]); err != nil {
			t.Fatalf("writing step %d: %v; %s", i, err, stderr.String())
		}
		if i == steps-1 {
			break
		}
		select {
		case <-progress:
			t.Logf("step %d: %d bytes back in %v; longest gap between reads %v", i+1, step, time.Since(began).Round(time.Millisecond), stallOf(i))
		case <-ctx.Done():
			t.Fatalf("step %d never came back; %s", i, stderr.String())
		}
		between(i)
	}
	stdin.Close()
	back := <-got
	t.Logf("step %d: %d bytes back in %v; longest gap between reads %v", steps, len(back)-(steps-1)*step, time.Since(began).Round(time.Millisecond), stallOf(steps-1))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("mycelium dial: %v; %s", err, stderr.String())
	}
	if !bytes.Equal(back, payload) {
		t.Fatalf("%d bytes came back of %d; equal prefix %d", len(back), len(payload), commonPrefix(back, payload))
	}
	return back
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// circuitVia returns the first relay of the circuit A's status shows for
// peer.
func circuitVia(t *testing.T, a *node, peer string) string {
	t.Helper()
	var st struct {
		Peers []struct {
			ID, Path string
			Via      []string
		}
	}
	if err := json.Unmarshal(a.cli(t, nil, "status", "--json"), &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Peers {
		if p.ID == peer && p.Path == "circuit" && len(p.Via) > 0 {
			return p.Via[0]
		}
	}
	t.Fatalf("A's status shows no circuit to %s: %+v", peer, st.Peers)
	return ""
}

// pathLogRE picks the log lines that tell how a connection moved between
// paths.
var pathLogRE = regexp.MustCompile(`path|migrat|circuit|silent|punch|rebuil|local address`)

// logPathsOnFailure logs, if the test fails (or MYCELIUM_TEST_LOG is
// set), the lines of each node's log
// that pathLogRE picks (at most the last 300 of each), so that a failure
// in CI says how the connection moved.
func logPathsOnFailure(t *testing.T, nodes ...*node) {
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("MYCELIUM_TEST_LOG") == "" {
			return
		}
		for _, n := range nodes {
			var picked []string
			for line := range strings.Lines(n.proc.Output()) {
				if pathLogRE.MatchString(line) {
					picked = append(picked, line)
				}
			}
			picked = picked[max(0, len(picked)-300):]
			t.Logf("%s's log, path lines (%d):\n%s", n.host.Role, len(picked), strings.Join(picked, ""))
		}
	})
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// TestMigrationSurvivesHostMoves (issue 8, a local address change on each
// side): A and B as above, each node bound to 0.0.0.0. While 21 MiB go
// to B's echo service and back on one stream, A's host moves to the LAN
// of another `--random-fully` router after the first 7 MiB (a laptop
// changing networks: a new local address and a new NAT), then B's host
// after the next 7. Every byte must come back intact.
func TestMigrationSurvivesHostMoves(t *testing.T) {
	leakcheck.Check(t)
	tb := New(t)
	bin := myceliumBinary(t)
	h1, h2 := tb.AddPublicHost("relay1"), tb.AddPublicHost("relay2")
	r1 := startRole(t, tb, bin, h1, "relay1", "relay", netip.AddrPortFrom(h1.Addr, 4242))
	r2 := startRole(t, tb, bin, h2, "relay2", "relay", netip.AddrPortFrom(h2.Addr, 4242), "--bootstrap="+r1.id+"@"+r1.listen)
	boot := "--bootstrap=" + r1.id + "@" + r1.listen + "," + r2.id + "@" + r2.listen
	ha := tb.AddNAT("nata", MasqueradeRandomFully).AddHost("ha")
	hb := tb.AddNAT("natb", MasqueradeRandomFully).AddHost("hb")
	away := []*Router{tb.AddNAT("nata2", MasqueradeRandomFully), tb.AddNAT("natb2", MasqueradeRandomFully)}
	a := startNode(t, tb, bin, ha, netip.MustParseAddrPort("0.0.0.0:4242"), boot)
	b := startNode(t, tb, bin, hb, netip.MustParseAddrPort("0.0.0.0:4242"), boot)
	logPathsOnFailure(t, a, b)
	for i := 0; ; i++ {
		var recs struct {
			Peers []struct {
				ID      string
				Inbound bool
			}
		}
		if err := json.Unmarshal(a.cli(t, nil, "peers", "--json"), &recs); err != nil {
			t.Fatal(err)
		}
		known := false
		for _, p := range recs.Peers {
			known = known || p.ID == b.id && !p.Inbound
		}
		if known {
			break
		}
		if i == 60 {
			t.Fatal("A never learnt B's record")
		}
		a.cli(t, nil, "peers", "--min", "1000", "--wait", "2s") // a bounded wait on registry changes
	}
	exposeEcho(t, b, hb)
	hosts := []*Host{ha, hb}
	dialInSteps(t, a, b.id, 7<<20, 3, func(i int) {
		was := hosts[i].Addr
		now, err := hosts[i].MoveTo(away[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("step %d back; host %s moved from %v to %v behind %v", i+1, hosts[i].Role, was, now, away[i].PublicAddr())
	})
	var st struct{ Counters map[string]uint64 }
	if err := json.Unmarshal(a.cli(t, nil, "status", "--json"), &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("21 MiB intact across both moves; A's counters: migrations %d, circuits built %d, local address changes %d",
		st.Counters["migrations"], st.Counters["circuits_built"], st.Counters["nat_local_changes"])
}
