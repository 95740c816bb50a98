package relay

import (
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/wire"
)

// rateTable returns a table whose relayed circuits get rate bytes/s
// and a burst of burst bytes.
func rateTable(tb testing.TB, rate, burst int) *Table {
	tb.Helper()
	res := DefaultResources()
	res.BytesPerSecond, res.Burst = rate, burst
	return newTestTable(tb, res, 20)
}

// allow calls f and fails tb unless it returns want.
func allow(tb testing.TB, f func(time.Time, int) bool, now time.Time, n int, want bool, what string) {
	tb.Helper()
	if got := f(now, n); got != want {
		tb.Fatalf("%s: allowed %v, want %v", what, got, want)
	}
}

func TestTokenBucketBurstAndRefill(t *testing.T) {
	tab := rateTable(t, 10_000, 2000) // 10 bytes per ms
	c := mustOpen(t, tab, t0, node(1), 1, node(2))
	fwd := c.AllowForward

	allow(t, fwd, t0, 1000, true, "first half of the burst")
	allow(t, fwd, t0, 1000, true, "second half of the burst")
	allow(t, fwd, t0, 1, false, "past the burst")
	allow(t, fwd, at(99*time.Millisecond), 1000, false, "990 bytes refilled, 1000 asked")
	allow(t, fwd, at(100*time.Millisecond), 1000, true, "1000 bytes refilled in 100 ms")
	allow(t, fwd, at(100*time.Millisecond), 1, false, "emptied again")
	// A long pause refills to the burst, not beyond.
	allow(t, fwd, at(time.Hour), 2000, true, "full burst after an hour")
	allow(t, fwd, at(time.Hour), 1, false, "no more than the burst after an hour")
	// A datagram larger than the burst can never pass.
	allow(t, fwd, at(2*time.Hour), 2001, false, "larger than the burst")
	allow(t, fwd, at(2*time.Hour), 2000, true, "the bucket was not charged for it")
}

// TestTokenBucketFractions refills in steps worth a fraction of a byte
// each: no fraction is lost.
func TestTokenBucketFractions(t *testing.T) {
	tab := rateTable(t, 10_000, 2000) // 1 byte per 100 µs
	c := mustOpen(t, tab, t0, node(1), 1, node(2))
	allow(t, c.AllowForward, t0, 2000, true, "empty the bucket")
	now := t0
	for range 10_000 { // 10_000 × 33 µs = 330 ms = 3300 bytes
		now = now.Add(33 * time.Microsecond)
		if !c.AllowForward(now, 0) {
			t.Fatal("a zero-byte packet was refused")
		}
	}
	// 3300 bytes refilled, capped at the burst of 2000.
	allow(t, c.AllowForward, now, 2000, true, "refilled by small steps")
	passed := 0
	for range 1000 { // 1000 × 250 µs = 250 ms = 2500 bytes, taken 1 at a time
		now = now.Add(250 * time.Microsecond)
		for c.AllowForward(now, 1) {
			passed++
		}
	}
	if passed != 2500 {
		t.Fatalf("passed %d bytes in 250 ms at 10 kB/s, want 2500", passed)
	}
}

func TestTokenBucketDirectionsAreIndependent(t *testing.T) {
	tab := rateTable(t, 10_000, 2000)
	c := mustOpen(t, tab, t0, node(1), 1, node(2))
	allow(t, c.AllowForward, t0, 2000, true, "forward burst")
	allow(t, c.AllowForward, t0, 1, false, "forward empty")
	allow(t, c.AllowBackward, t0, 2000, true, "backward burst, after forward emptied")
	allow(t, c.AllowBackward, t0, 1, false, "backward empty")
	other := mustOpen(t, tab, t0, node(1), 2, node(2))
	allow(t, other.AllowForward, t0, 2000, true, "another circuit's own bucket")
}

func TestTokenBucketClockBack(t *testing.T) {
	tab := rateTable(t, 10_000, 2000)
	c := mustOpen(t, tab, at(time.Minute), node(1), 1, node(2))
	allow(t, c.AllowForward, at(time.Minute), 2000, true, "burst")
	allow(t, c.AllowForward, t0, 1, false, "a clock a minute back refills nothing")
	allow(t, c.AllowForward, at(time.Minute+50*time.Millisecond), 500, true, "refill from the latest time seen")
	allow(t, c.AllowForward, at(time.Minute+50*time.Millisecond), 1, false, "and no more")
}

func TestEndsAreNotRateLimited(t *testing.T) {
	tab := rateTable(t, 10_000, 2000)
	term, _ := tab.OpenTerminal(t0, node(1), 1, testTerm(t))
	init, _ := tab.OpenInitiator(t0, node(2), testInit(t))
	for i := range 1000 {
		if !term.AllowForward(t0, wire.MaxCircuitData) || !term.AllowBackward(t0, wire.MaxCircuitData) ||
			!init.AllowForward(t0, wire.MaxCircuitData) || !init.AllowBackward(t0, wire.MaxCircuitData) {
			t.Fatalf("an end refused packet %d", i)
		}
	}
	s := tab.Stats()
	if s.Forward.Packets != 2000 || s.Forward.DroppedPackets != 0 || s.Backward.Bytes != 2000*wire.MaxCircuitData {
		t.Fatalf("stats %+v", s)
	}
}

func TestClosedCircuitPassesNothing(t *testing.T) {
	tab := rateTable(t, 10_000, 2000)
	c := mustOpen(t, tab, t0, node(1), 1, node(2))
	allow(t, c.AllowForward, t0, 100, true, "open")
	tab.Close(c, wire.ReasonIdle)
	allow(t, c.AllowForward, t0, 100, false, "closed, forward")
	allow(t, c.AllowBackward, t0, 100, false, "closed, backward")
	s := tab.Stats()
	if s.Forward.Packets != 1 || s.Forward.DroppedPackets != 0 || s.Backward.Packets != 0 {
		t.Fatalf("packets on a closed circuit were counted: %+v", s)
	}
	if c.Reason() != wire.ReasonIdle || s.Closed[wire.ReasonIdle] != 1 {
		t.Fatalf("reason %d, closed %v", c.Reason(), s.Closed)
	}
}
