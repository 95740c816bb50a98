package mycelium

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/migration"
)

// upgradeChunk is what the upgrade benchmark times at once: one MiB, then
// a one-byte acknowledgement from the sink.
const upgradeChunk = 1 << 20

// serveAckSink answers each stream on l by reading upgradeChunk bytes at
// a time and acknowledging each with one byte, until EOF.
func serveAckSink(tb testing.TB, l net.Listener) {
	serveBench(tb, l, func(c benchStream) {
		defer c.Close()
		buf := make([]byte, upgradeChunk)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write([]byte{1}); err != nil {
				return
			}
		}
	})
}

// timeChunks sends n chunks on c, each waiting for its acknowledgement,
// and returns the time taken.
func timeChunks(tb testing.TB, c net.Conn, data []byte, n int) time.Duration {
	tb.Helper()
	ack := make([]byte, 1)
	start := time.Now()
	for range n {
		if _, err := c.Write(data); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(c, ack); err != nil {
			tb.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkUpgradeThroughput (issue 8, acceptance 5): on loopback, A
// reaches B through a one-relay circuit and opens one stream; 8 MiB go
// over the circuit, then A dials B directly, the path layer moves
// the connection to the direct path, and 8 MiB more go over the same
// stream. It reports both rates and their ratio. Every node runs in this
// process and shares its cores, as in BenchmarkCircuitThroughput.
func BenchmarkUpgradeThroughput(b *testing.B) {
	const chunks = 8
	data := make([]byte, upgradeChunk)
	rand.Read(data)
	var before, after time.Duration
	n := 0
	for ; b.Loop(); n++ {
		sink := newTestNode(b)
		l, err := sink.Listen("acksink")
		if err != nil {
			b.Fatal(err)
		}
		serveAckSink(b, l)
		a := circuitChain(b, 1, sink)
		pc := a.peers.active(sink.ID())
		if pc == nil || pc.session == nil {
			b.Fatal("no circuit connection with a path layer")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c, err := a.openStream(ctx, pc, "acksink")
		if err != nil {
			b.Fatal(err)
		}
		timeChunks(b, c, data, 1) // out of slow start
		before += timeChunks(b, c, data, chunks)
		// A direct connection, as a punch would give (Connect would
		// return the circuit's connection, the active one).
		tr, err := a.transport()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.dialAddrs(ctx, tr, sink.ID(), []net.Addr{sink.LocalAddr()}); err != nil {
			b.Fatal(err)
		}
		for pc.session.stats().kind != migration.Direct {
			if ctx.Err() != nil {
				b.Fatalf("the connection never moved to the direct path: %+v", pc.session.stats())
			}
			time.Sleep(10 * time.Millisecond) // a benchmark on real time: poll the move
		}
		timeChunks(b, c, data, 1)
		after += timeChunks(b, c, data, chunks)
		c.Close()
		cancel()
	}
	mbps := func(d time.Duration) float64 { return float64(n*chunks*upgradeChunk) / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(before), "circuit_MB/s")
	b.ReportMetric(mbps(after), "upgraded_MB/s")
	b.ReportMetric(mbps(after)/mbps(before), "after/before")
}
