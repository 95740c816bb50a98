package mycelium

import (
	"context"
	"crypto/rand"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// onionHop names n as a hop of a circuit.
func onionHop(n *Node) hopRef {
	var k [32]byte
	copy(k[:], n.cfg.Key.OnionKey().PublicKey().Bytes())
	return hopRef{id: n.id, onion: k}
}

// circuitChain starts relays r1..rk and a sink node s on loopback, links
// them in a chain (r1-r2-...-rk-s) and returns a dialer node holding a
// circuit to s through the k relays (k = 0: a direct connection).
func circuitChain(tb testing.TB, k int, s *Node) *Node {
	tb.Helper()
	a := newTestNode(tb)
	if k == 0 {
		if err := a.Connect(ctxT(tb), s.ID(), s.LocalAddr()); err != nil {
			tb.Fatal(err)
		}
		return a
	}
	relays := make([]*Node, k)
	for i := range relays {
		relays[i] = newTestNode(tb, func(c *Config) {
			c.RelayResources.BytesPerSecond = 1 << 30 // measure the path, not the default per-circuit limit
			c.RelayResources.Burst = 16 << 20
		})
	}
	var hops []hopRef
	for i, r := range relays {
		next := s
		if i+1 < k {
			next = relays[i+1]
		}
		if err := r.Connect(ctxT(tb), next.ID(), next.LocalAddr()); err != nil {
			tb.Fatal(err)
		}
		hops = append(hops, onionHop(r))
	}
	if err := a.Connect(ctxT(tb), relays[0].ID(), relays[0].LocalAddr()); err != nil {
		tb.Fatal(err)
	}
	if _, err := a.dialVia(ctxT(tb), hops, onionHop(s)); err != nil {
		tb.Fatalf("circuit through %d relays: %v", k, err)
	}
	return a
}

// BenchmarkCircuitThroughput sends benchChunk bytes over a new stream to a
// sink over a direct connection and over circuits of 1, 2 and 3 relays,
// all on loopback, and over raw quic-go, each iteration, in rotating
// order. Read the MB/s of each and the ratios to quic-go (goals: 1 hop >=
// 0.5, 3 hops >= 0.25). Every node runs in this process, so the relays'
// crypto competes with the ends' for the same cores.
func BenchmarkCircuitThroughput(b *testing.B) {
	data := make([]byte, benchChunk)
	rand.Read(data)
	s := newTestNode(b)
	l, err := s.Listen("sink")
	if err != nil {
		b.Fatal(err)
	}
	counts := make(chan int64, 1)
	serveBench(b, l, benchSink(counts))

	type path struct {
		name string
		open func(context.Context) (benchStream, error)
		took time.Duration
		cpu  time.Duration // process CPU time (user + system) during its transfers
	}
	var paths []*path
	for k := range 4 {
		a := circuitChain(b, k, s)
		name := "direct"
		if k > 0 {
			name = fmt.Sprintf("%dhop", k)
		}
		paths = append(paths, &path{name: name, open: func(ctx context.Context) (benchStream, error) {
			c, err := a.Dial(ctx, s.ID(), "sink")
			if err != nil {
				return nil, err
			}
			return c.(benchStream), nil
		}})
	}
	rawOpen, rawCounts := rawSinkConn(b)
	raw := &path{name: "quic-go", open: rawOpen}

	for _, p := range paths { // one untimed transfer each, out of slow start
		timeTransfer(b, p.name, p.open, data, counts)
	}
	timeTransfer(b, raw.name, raw.open, data, rawCounts)
	n := 0
	for ; b.Loop(); n++ {
		var fs []func()
		for _, p := range paths {
			fs = append(fs, func() {
				c0 := processCPU(b)
				p.took += timeTransfer(b, p.name, p.open, data, counts)
				p.cpu += processCPU(b) - c0
			})
		}
		fs = append(fs, func() {
			c0 := processCPU(b)
			raw.took += timeTransfer(b, raw.name, raw.open, data, rawCounts)
			raw.cpu += processCPU(b) - c0
		})
		alternate(n, fs...)
	}
	mbps := func(d time.Duration) float64 { return float64(n) * benchChunk / 1e6 / d.Seconds() }
	// CPU time per MB moved, all nodes counted (they share the process):
	// with every core busy, throughput is at most cores / (CPU per MB),
	// so these bound the ratios whatever the scheduling.
	cpuPerMB := func(d time.Duration) float64 { return d.Seconds() * 1e3 / (float64(n) * benchChunk / 1e6) }
	b.ReportMetric(mbps(raw.took), "quic_MB/s")
	b.ReportMetric(cpuPerMB(raw.cpu), "quic_cpu_ms/MB")
	for _, p := range paths {
		b.ReportMetric(mbps(p.took), p.name+"_MB/s")
		b.ReportMetric(mbps(p.took)/mbps(raw.took), p.name+"_ratio")
		b.ReportMetric(cpuPerMB(p.cpu), p.name+"_cpu_ms/MB")
	}
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
