package relay

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycelium-net/mycelium/circuit"
)

// Kind says what this node is on a circuit.
type Kind uint8

// Kinds of circuit.
const (
	// KindRelay: we carry the circuit between Prev and Next.
	KindRelay Kind = iota + 1
	// KindTerminal: the circuit ends here; Prev opened it.
	KindTerminal
	// KindInitiator: we opened the circuit toward Next.
	KindInitiator
)

// String returns "relay", "terminal" or "initiator".
func (k Kind) String() string {
	switch k {
	case KindRelay:
		return "relay"
	case KindTerminal:
		return "terminal"
	case KindInitiator:
		return "initiator"
	}
	return "unknown"
}

// Circuit is one circuit in a Table. Its exported fields are set by the
// Table when it admits the circuit and must not be changed. Forward is
// the direction from the initiator to the terminal: a forward packet
// arrives from Prev and leaves to Next, a backward one the other way.
type Circuit struct {
	Kind Kind
	// Prev and PrevCID name the circuit on the link from the previous
	// hop (zero for KindInitiator); the previous hop chose PrevCID.
	Prev    NodeID
	PrevCID uint32
	// Next and NextCID name it on the link to the next hop (zero for
	// KindTerminal); the Table chose NextCID.
	Next    NodeID
	NextCID uint32
	// Keys is our relay layer (KindRelay only).
	Keys *circuit.RelayKeys
	// Term is our end when the circuit ends here (KindTerminal only).
	Term *circuit.Terminal
	// Init is our end when we opened it (KindInitiator only).
	Init *circuit.Initiator

	table  *Table
	opened time.Time
	last   atomic.Int64  // nanoseconds after opened of the latest packet
	reason atomic.Uint32 // why it was closed; 0 while open
	fwd    bucket
	bwd    bucket
}

// bucket is one direction of a circuit: its token bucket and counters.
type bucket struct {
	mu     sync.Mutex
	tokens int64 // in nano-bytes: one byte is 1e9
	at     int64 // nanoseconds after opened of the last refill
	flow   Flow
}

// Flow counts the packets of one direction.
type Flow struct {
	Packets, Bytes               uint64 // allowed through
	DroppedPackets, DroppedBytes uint64 // refused by the rate limit
}

// add adds o to f.
func (f *Flow) add(o Flow) {
	f.Packets += o.Packets
	f.Bytes += o.Bytes
	f.DroppedPackets += o.DroppedPackets
	f.DroppedBytes += o.DroppedBytes
}

// Reason returns why the circuit was closed (a wire.Reason constant), or
// 0 while it is open. Sweep and PeerGone set it on what they return, so
// the caller knows what to put in its DESTROY.
func (c *Circuit) Reason() byte {
	if c == nil {
		return 0
	}
	return byte(c.reason.Load())
}

// AllowForward reports whether a forward packet of n bytes may pass now,
// and records it: as activity, and as passed or dropped. A relayed
// circuit takes n from its forward token bucket and refuses the packet
// (false: drop it) when the bucket holds less; ends are not rate
// limited. A closed circuit refuses every packet without counting it.
// n should be the size of the datagram as received.
func (c *Circuit) AllowForward(now time.Time, n int) bool {
	if c == nil {
		return false
	}
	return c.allow(&c.fwd, now, n)
}

// AllowBackward is AllowForward for a backward packet, with its own
// bucket.
func (c *Circuit) AllowBackward(now time.Time, n int) bool {
	if c == nil {
		return false
	}
	return c.allow(&c.bwd, now, n)
}

// allow is AllowForward and AllowBackward on bucket b.
func (c *Circuit) allow(b *bucket, now time.Time, n int) bool {
	if n < 0 || c.table == nil {
		return false
	}
	el := int64(now.Sub(c.opened))
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.reason.Load() != 0 {
		return false
	}
	c.touch(el)
	if c.Kind == KindRelay && !b.take(c.table, el, int64(n)) {
		b.flow.DroppedPackets++
		b.flow.DroppedBytes += uint64(n)
		return false
	}
	b.flow.Packets++
	b.flow.Bytes += uint64(n)
	return true
}

// touch records activity el nanoseconds after the circuit opened; the
// latest time wins.
func (c *Circuit) touch(el int64) {
	for {
		old := c.last.Load()
		if el <= old || c.last.CompareAndSwap(old, el) {
			return
		}
	}
}

// take refills b for the time up to el and takes n bytes from it if it
// holds them. A clock that went back refills nothing.
func (b *bucket) take(t *Table, el, n int64) bool {
	if n > t.burst {
		return false
	}
	if el > b.at {
		if dt := el - b.at; dt >= t.fillNs {
			b.tokens = t.capacity
		} else {
			b.tokens = min(t.capacity, b.tokens+dt*t.rate)
		}
		b.at = el
	}
	if b.tokens < n*1e9 {
		return false
	}
	b.tokens -= n * 1e9
	return true
}

// idle returns how long the circuit has had no packet, at now.
func (c *Circuit) idle(now time.Time) time.Duration {
	return now.Sub(c.opened) - time.Duration(c.last.Load())
}

// flows returns the counters of both directions.
func (c *Circuit) flows() (fwd, bwd Flow) {
	c.fwd.mu.Lock()
	fwd = c.fwd.flow
	c.fwd.mu.Unlock()
	c.bwd.mu.Lock()
	bwd = c.bwd.flow
	c.bwd.mu.Unlock()
	return fwd, bwd
}
