package broadcast

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadConfig is returned by Config.Validate and New.
var ErrBadConfig = errors.New("broadcast: bad config")

// Config tunes a Machine. Every node of an overlay should use the same
// values (the paper assumes so). Start from DefaultConfig.
type Config struct {
	// LazyPushDelay is how long IHAVE announcements wait in a per-peer
	// queue before they go out together, batching announcements of
	// messages that arrive close together. Zero sends them at once. Unit:
	// duration; default 50 ms (guess: well under MissingTimeout, long
	// enough to batch a burst). A queue that reaches MaxIHaveBatch goes
	// out at once.
	LazyPushDelay time.Duration

	// MissingTimeout is the paper's timeout1: how long after the first
	// IHAVE of an unknown message to wait for the payload by eager push
	// before sending a GRAFT. The paper (§3.6) says to set it from the
	// overlay's diameter and the target recovery latency. Unit: duration;
	// default 1 s (guess).
	MissingTimeout time.Duration

	// SecondTimeout is the paper's timeout2: after each GRAFT, how long to
	// wait for the payload before grafting the next announcer. The paper
	// says it should be smaller than timeout1, about a round trip to a
	// neighbour. Unit: duration; default 500 ms (guess). Must not exceed
	// MissingTimeout.
	SecondTimeout time.Duration

	// OptimizationThreshold is the paper's threshold (§3.8): when a lazy
	// peer announces a message at a round at least this many hops smaller
	// than the round by which it came from the eager parent, the node
	// grafts the announcer and prunes the parent. Unit: hops; default 7
	// (guess: the paper leaves it a parameter; 7 is also iroh-gossip's
	// default). Zero turns the optimisation off.
	OptimizationThreshold int

	// MaxIHaveBatch bounds the announcements in one IHAVE message.
	// Unit: announcements, 1..MaxIHaveBatch (the wire limit, 1024);
	// default 256 (guess: 4.6 KB, a few QUIC packets).
	MaxIHaveBatch int

	// CacheSize bounds the IDs remembered for deduplication, each with its
	// payload while CacheBytes allows. Unit: entries; default 8192 (guess:
	// CacheTTL at about 68 messages a second). Beyond it the oldest go,
	// and a late copy of a forgotten message is delivered again.
	CacheSize int

	// CacheTTL is how long a received message is remembered: its ID for
	// deduplication and its payload for answering GRAFTs. Unit: duration;
	// default 2 min (guess: far above MissingTimeout plus a few
	// SecondTimeouts times the overlay's diameter). A copy arriving after
	// it is delivered again, so it must exceed the longest propagation.
	CacheTTL time.Duration

	// CacheBytes bounds the payload bytes kept for GRAFT answers. Beyond
	// it the oldest payloads are dropped (their IDs stay for dedupe) and
	// GRAFTs for them go unanswered, so the requester tries its next
	// announcer. Unit: bytes; default 16 MiB (guess). Must be at least
	// MaxPayload.
	CacheBytes int

	// MaxPayload bounds a payload, sent or received. Unit: bytes,
	// 0..MaxPayload (the wire limit, 64 KiB); default 64 KiB.
	MaxPayload int

	// MaxMissing bounds the unknown message IDs announced by IHAVE and
	// awaited at once; announcements beyond it are dropped and counted.
	// Unit: IDs; default 4096 (guess).
	MaxMissing int

	// CatchUpWindow: a new neighbour is sent one IHAVE announcing the
	// messages this node received within the last CatchUpWindow (at most
	// CatchUpMax of them, newest first), so that a node that changed
	// neighbours while a message was passing, or whose parent died before
	// anyone noticed, grafts what it missed. Not in the paper. Unit:
	// duration; default 30 s (guess: the QUIC idle timeout, the longest
	// a dead neighbour goes unnoticed). Zero turns it off. Must be below
	// CacheTTL, so a neighbour still remembers what it already delivered.
	CatchUpWindow time.Duration

	// CatchUpMax bounds the announcements of a catch-up IHAVE. Unit:
	// announcements, 0..MaxIHaveBatch; default 64 (guess).
	CatchUpMax int

	// SweepInterval is how often expired cache entries are swept out
	// (they are also checked on every access). Unit: duration; default
	// 5 s (guess).
	SweepInterval time.Duration
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		LazyPushDelay:         50 * time.Millisecond,
		MissingTimeout:        time.Second,
		SecondTimeout:         500 * time.Millisecond,
		OptimizationThreshold: 7,
		MaxIHaveBatch:         256,
		CacheSize:             8192,
		CacheTTL:              2 * time.Minute,
		CacheBytes:            16 << 20,
		MaxPayload:            MaxPayload,
		MaxMissing:            4096,
		SweepInterval:         5 * time.Second,
		CatchUpWindow:         30 * time.Second,
		CatchUpMax:            64,
	}
}

// Validate reports the first field out of range.
func (c Config) Validate() error {
	switch {
	case c.LazyPushDelay < 0:
		return fmt.Errorf("%w: LazyPushDelay %v is negative", ErrBadConfig, c.LazyPushDelay)
	case c.MissingTimeout <= 0:
		return fmt.Errorf("%w: MissingTimeout %v must be positive", ErrBadConfig, c.MissingTimeout)
	case c.SecondTimeout <= 0 || c.SecondTimeout > c.MissingTimeout:
		return fmt.Errorf("%w: SecondTimeout %v must be positive and at most MissingTimeout %v", ErrBadConfig, c.SecondTimeout, c.MissingTimeout)
	case c.OptimizationThreshold < 0:
		return fmt.Errorf("%w: OptimizationThreshold %d is negative", ErrBadConfig, c.OptimizationThreshold)
	case c.MaxIHaveBatch < 1 || c.MaxIHaveBatch > MaxIHaveBatch:
		return fmt.Errorf("%w: MaxIHaveBatch %d, want 1..%d", ErrBadConfig, c.MaxIHaveBatch, MaxIHaveBatch)
	case c.CacheSize < 1:
		return fmt.Errorf("%w: CacheSize %d must be positive", ErrBadConfig, c.CacheSize)
	case c.CacheTTL <= 0:
		return fmt.Errorf("%w: CacheTTL %v must be positive", ErrBadConfig, c.CacheTTL)
	case c.MaxPayload < 0 || c.MaxPayload > MaxPayload:
		return fmt.Errorf("%w: MaxPayload %d, want 0..%d", ErrBadConfig, c.MaxPayload, MaxPayload)
	case c.CacheBytes < c.MaxPayload:
		return fmt.Errorf("%w: CacheBytes %d is below MaxPayload %d", ErrBadConfig, c.CacheBytes, c.MaxPayload)
	case c.MaxMissing < 1:
		return fmt.Errorf("%w: MaxMissing %d must be positive", ErrBadConfig, c.MaxMissing)
	case c.CatchUpWindow < 0 || c.CatchUpWindow >= c.CacheTTL:
		return fmt.Errorf("%w: CatchUpWindow %v, want 0 up to CacheTTL %v", ErrBadConfig, c.CatchUpWindow, c.CacheTTL)
	case c.CatchUpMax < 0 || c.CatchUpMax > c.MaxIHaveBatch:
		return fmt.Errorf("%w: CatchUpMax %d, want 0..MaxIHaveBatch (%d)", ErrBadConfig, c.CatchUpMax, c.MaxIHaveBatch)
	case c.SweepInterval <= 0:
		return fmt.Errorf("%w: SweepInterval %v must be positive", ErrBadConfig, c.SweepInterval)
	}
	return nil
}
