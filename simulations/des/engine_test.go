package des

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestHeapOrder(t *testing.T) {
	var h eventHeap
	r := NewRand(1, 2)
	for i := range 5000 {
		h.push(event{at: time.Duration(r.IntN(50)), seq: uint64(i)})
	}
	var prev event
	for i := range 5000 {
		ev := h.pop()
		if i > 0 && (ev.at < prev.at || ev.at == prev.at && ev.seq < prev.seq) {
			t.Fatalf("pop %d: (%v,%d) after (%v,%d)", i, ev.at, ev.seq, prev.at, prev.seq)
		}
		prev = ev
	}
	if len(h) != 0 {
		t.Fatalf("%d left", len(h))
	}
}

func newEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestClockAndTieBreak(t *testing.T) {
	e := newEngine(t, DefaultConfig())
	var got []string
	for _, c := range []struct {
		at   time.Duration
		name string
	}{{3 * time.Second, "c1"}, {time.Second, "a"}, {3 * time.Second, "c2"}, {2 * time.Second, "b"}, {3 * time.Second, "c3"}} {
		e.At(c.at, func() {
			if e.Now() != c.at {
				t.Errorf("%s ran at %v, want %v", c.name, e.Now(), c.at)
			}
			got = append(got, c.name)
			if c.name == "a" {
				e.At(0, func() { got = append(got, "a-now") }) // the past means now, after what is queued for now
			}
		})
	}
	if n := e.Run(2 * time.Second); n != 3 || e.Now() != 2*time.Second {
		t.Fatalf("Run(2s) dispatched %d events, clock %v; want 3, 2s", n, e.Now())
	}
	e.Run(10 * time.Second)
	want := []string{"a", "a-now", "b", "c1", "c2", "c3"}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if e.Now() != 10*time.Second || e.Pending() != 0 {
		t.Fatalf("clock %v pending %d", e.Now(), e.Pending())
	}
}

func TestConfigValidate(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"negative_base": func(c *Config) { c.Latency.Base = -1 },
		"loss_one":      func(c *Config) { c.Loss = 1 },
		"loss_nan":      func(c *Config) { c.Loss = nan() },
		"no_timeout":    func(c *Config) { c.ConnectTimeout = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			mod(&c)
			if _, err := New(c); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func nan() float64 { z := 0.0; return z / z }

// recorder is a handler that notes every call.
type recorder struct {
	log  []string
	msgs []time.Duration // arrival times
	body [][]byte
}

func (r *recorder) HandleMessage(now time.Duration, from int, layer Layer, msg []byte) {
	r.log = append(r.log, fmt.Sprintf("%v msg from %d layer %d", now, from, layer))
	r.msgs = append(r.msgs, now)
	r.body = append(r.body, msg)
}
func (r *recorder) HandleTimer(now time.Duration, layer Layer, token uint64) {
	r.log = append(r.log, fmt.Sprintf("%v timer %d/%d", now, layer, token))
}
func (r *recorder) HandleConnected(now time.Duration, peer int) {
	r.log = append(r.log, fmt.Sprintf("%v connected %d", now, peer))
}
func (r *recorder) HandleConnectFailed(now time.Duration, peer int) {
	r.log = append(r.log, fmt.Sprintf("%v connect-failed %d", now, peer))
}
func (r *recorder) HandleDisconnected(now time.Duration, peer int) {
	r.log = append(r.log, fmt.Sprintf("%v disconnected %d", now, peer))
}

func recorders(e *Engine, n int) []*recorder {
	rs := make([]*recorder, n)
	for i := range rs {
		rs[i] = &recorder{}
		e.AddNode(rs[i])
	}
	return rs
}

func TestLatencyAndFIFO(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 7
	cfg.Latency = Latency{Base: 10 * time.Millisecond, Spread: 50 * time.Millisecond, Jitter: 20 * time.Millisecond}
	e := newEngine(t, cfg)
	rs := recorders(e, 3)
	rtt := e.RTT(0, 1)
	if rtt != e.RTT(1, 0) || rtt < 20*time.Millisecond || rtt >= 120*time.Millisecond {
		t.Fatalf("RTT(0,1) = %v, RTT(1,0) = %v; want equal, in [20ms, 120ms)", rtt, e.RTT(1, 0))
	}
	e.Connect(0, 1)
	e.Run(time.Second)
	if !e.Linked(0, 1) || !e.Linked(1, 0) || len(rs[0].log) != 1 || rs[0].log[0] != fmt.Sprintf("%v connected 1", rtt) {
		t.Fatalf("after connect: linked %v/%v, log %v", e.Linked(0, 1), e.Linked(1, 0), rs[0].log)
	}
	if len(rs[1].log) != 0 {
		t.Fatalf("the accepting side was told: %v", rs[1].log)
	}
	start := e.Now()
	for i := range 200 {
		e.Send(0, 1, 3, []byte{byte(i)})
	}
	e.Run(2 * time.Second)
	if len(rs[1].body) != 200 {
		t.Fatalf("%d of 200 arrived", len(rs[1].body))
	}
	oneWay := rtt / 2
	for i, b := range rs[1].body {
		if b[0] != byte(i) {
			t.Fatalf("message %d arrived as %d: the link is not FIFO", b[0], i)
		}
		d := rs[1].msgs[i] - start
		if d < oneWay || d >= oneWay+20*time.Millisecond {
			t.Fatalf("message %d took %v, want in [%v, %v)", i, d, oneWay, oneWay+20*time.Millisecond)
		}
	}
	// No link: a handshake round trip, then the one-way delay.
	start = e.Now()
	e.Send(0, 2, 1, []byte("x"))
	e.Run(3 * time.Second)
	if d := rs[2].msgs[0] - start; d < e.RTT(0, 2)*3/2 || d >= e.RTT(0, 2)*3/2+20*time.Millisecond {
		t.Fatalf("unlinked message took %v, RTT %v", d, e.RTT(0, 2))
	}
	if e.Linked(0, 2) {
		t.Fatal("an unlinked send opened a link")
	}
}

func TestLoss(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Loss = 0.25
	e := newEngine(t, cfg)
	rs := recorders(e, 2)
	for range 4000 {
		e.Send(0, 1, 1, nil)
	}
	e.Run(time.Minute)
	st := e.Stats()
	if got := len(rs[1].msgs); got < 2800 || got > 3200 || st.Lost+st.Delivered != 4000 || int(st.Delivered) != got {
		t.Fatalf("delivered %d of 4000 with loss 0.25 (stats %+v)", got, st)
	}
}

func TestCrashAndRestart(t *testing.T) {
	e := newEngine(t, DefaultConfig())
	rs := recorders(e, 3)
	e.Connect(0, 1)
	e.Connect(2, 1)
	e.Run(time.Second)
	e.SetTimer(1, 1, 5*time.Second, 99)
	e.Send(0, 1, 1, []byte("in flight"))
	e.Crash(1)
	if e.Alive(1) || e.Linked(0, 1) || e.Linked(2, 1) {
		t.Fatal("crash left the node alive or linked")
	}
	e.Send(2, 1, 1, []byte("to the dead"))
	e.Connect(0, 1)
	e.Run(time.Second + e.cfg.DetectDelay)
	want0 := []string{fmt.Sprintf("%v connected 1", e.RTT(0, 1)), "3s disconnected 1", "3s connect-failed 1"}
	if !slices.Equal(rs[0].log, want0) {
		t.Fatalf("node 0 saw %q, want %q", rs[0].log, want0)
	}
	if !slices.Equal(rs[2].log[1:], []string{"3s disconnected 1"}) {
		t.Fatalf("node 2 saw %q", rs[2].log)
	}
	fresh := &recorder{}
	if !e.Restart(1, fresh) || e.Restart(1, fresh) {
		t.Fatal("Restart: want true once, then false for a live node")
	}
	e.Run(10 * time.Second)
	if len(rs[1].log) != 0 || len(fresh.log) != 0 {
		t.Fatalf("old handler saw %q, new one %q: the timer and messages of the old life must be void", rs[1].log, fresh.log)
	}
	if st := e.Stats(); st.Dropped != 2 {
		t.Fatalf("dropped %d, want 2", st.Dropped)
	}
	e.Send(0, 1, 1, []byte("hello again"))
	e.Run(20 * time.Second)
	if len(fresh.msgs) != 1 {
		t.Fatalf("restarted node got %d messages, want 1", len(fresh.msgs))
	}
}

func TestDisconnect(t *testing.T) {
	e := newEngine(t, DefaultConfig())
	rs := recorders(e, 2)
	e.Connect(0, 1)
	e.Run(time.Second)
	for i := range 50 {
		e.Send(0, 1, 1, []byte{byte(i)})
	}
	e.Disconnect(0, 1)
	if e.Linked(0, 1) || e.Linked(1, 0) {
		t.Fatal("still linked")
	}
	e.Disconnect(0, 1) // no link: nothing
	e.Run(5 * time.Second)
	if n := len(rs[1].log); n != 51 || rs[1].log[50][len(rs[1].log[50])-len("disconnected 0"):] != "disconnected 0" {
		t.Fatalf("node 1 log has %d entries, last %q; want 50 messages then the disconnect", n, rs[1].log[n-1])
	}
	if len(rs[0].log) != 1 {
		t.Fatalf("the closing side was told: %q", rs[0].log)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	e := newEngine(t, DefaultConfig())
	rs := recorders(e, 4)
	e.Connect(0, 1)
	e.Connect(0, 2)
	e.Connect(2, 3)
	e.Run(time.Second)
	e.Send(0, 2, 1, []byte("crosses at arrival"))
	e.Partition(func(i int) int { return i / 2 }) // {0,1} {2,3}
	if e.Linked(0, 2) || !e.Linked(0, 1) || !e.Linked(2, 3) {
		t.Fatal("partition broke the wrong links")
	}
	e.Send(1, 3, 1, []byte("across"))
	e.Connect(1, 2)
	e.Run(4 * time.Second)
	if !slices.Contains(rs[0].log, "3s disconnected 2") || !slices.Contains(rs[2].log, "3s disconnected 0") {
		t.Fatalf("both ends must learn: %q / %q", rs[0].log, rs[2].log)
	}
	if !slices.Contains(rs[1].log, "3s connect-failed 2") || len(rs[3].msgs)+len(rs[2].msgs) != 0 {
		t.Fatalf("across the partition: %q, %d+%d messages", rs[1].log, len(rs[2].msgs), len(rs[3].msgs))
	}
	e.Heal()
	e.Connect(1, 2)
	e.Send(1, 3, 1, []byte("healed"))
	e.Run(6 * time.Second)
	if !e.Linked(1, 2) || len(rs[3].msgs) != 1 {
		t.Fatalf("after heal: linked %v, %d messages", e.Linked(1, 2), len(rs[3].msgs))
	}
}

func TestFloodReachesAll(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 3
	e, fs := floodNet(cfg, 500, 2)
	e.Run(5 * time.Second)
	e.At(5*time.Second, func() { fs[0].originate(1) })
	e.Run(30 * time.Second)
	for i, f := range fs {
		if _, ok := f.seen[1]; !ok {
			t.Fatalf("node %d did not get the flood", i)
		}
	}
	// Crash a fifth of the nodes; the rest still flood among themselves
	// wherever the ring and chords hold them together.
	r := NewRand(3, 9)
	dead := map[int]bool{}
	for len(dead) < 100 {
		i := 1 + r.IntN(499)
		dead[i] = true
		e.Crash(i)
	}
	e.Run(40 * time.Second)
	fs[0].originate(2)
	e.Run(60 * time.Second)
	got := 0
	for i, f := range fs {
		if _, ok := f.seen[2]; ok {
			if dead[i] {
				t.Fatalf("dead node %d got the flood", i)
			}
			got++
		}
	}
	if got < 300 {
		t.Fatalf("only %d of 400 live nodes got the flood", got)
	}
}

// floodRun runs a scenario with crashes, a partition, a heal, loss and
// restarts, and returns the trace hash and text.
func floodRun(seed uint64) ([32]byte, []byte) {
	var trace bytes.Buffer
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Loss = 0.05
	cfg.Trace = &trace
	e, fs := floodNet(cfg, 200, 2)
	r := NewRand(seed, 5)
	for k := range 20 {
		at := time.Duration(k) * 500 * time.Millisecond
		src := r.IntN(200)
		e.At(at, func() {
			if e.Alive(src) {
				fs[src].originate(uint64(k))
			}
		})
	}
	e.At(2*time.Second, func() {
		for i := range 30 {
			e.Crash(r.IntN(200))
			_ = i
		}
	})
	e.At(4*time.Second, func() { e.Partition(func(i int) int { return i % 2 }) })
	e.At(7*time.Second, func() { e.Heal() })
	e.At(8*time.Second, func() {
		for i, f := range fs {
			if !e.Alive(i) {
				nf := newFlood(e, f.want)
				nf.self = i
				fs[i] = nf
				e.Restart(i, nf)
				nf.start()
			}
		}
	})
	e.Run(20 * time.Second)
	return e.TraceHash(), trace.Bytes()
}

func TestDeterministicTrace(t *testing.T) {
	h1, t1 := floodRun(11)
	h2, t2 := floodRun(11)
	if h1 != h2 || !bytes.Equal(t1, t2) {
		t.Fatalf("same seed, different traces: %x vs %x (%d vs %d bytes)", h1, h2, len(t1), len(t2))
	}
	if bytes.Count(t1, []byte("\n")) < 10000 {
		t.Fatalf("trace has only %d events: the scenario did little", bytes.Count(t1, []byte("\n")))
	}
	for _, k := range []string{" deliver ", " lost ", " drop ", " disconnected ", " connect-failed ", " timer ", " call "} {
		if !bytes.Contains(t1, []byte(k)) {
			t.Errorf("trace has no %q event", k)
		}
	}
	h3, _ := floodRun(12)
	if h3 == h1 {
		t.Fatal("different seeds gave the same trace")
	}
	if h1 == sha256.Sum256(nil) {
		t.Fatal("empty hash")
	}
}

func BenchmarkFlood(b *testing.B) {
	cfg := DefaultConfig()
	e, fs := floodNet(cfg, 2000, 3)
	e.Run(5 * time.Second)
	b.ResetTimer()
	ev0 := e.Stats().Events
	for i := range b.N {
		fs[i%len(fs)].originate(uint64(i))
		e.Run(e.Now() + 5*time.Second)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(e.Stats().Events-ev0), "ns/event")
}
