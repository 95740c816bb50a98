package des

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"time"
)

// Layer tags a message with the protocol machine it is for, so that one link
// carries the messages of every machine on a node.
type Layer uint8

// Handler is the protocol stack of one simulated node. The engine calls it
// with the virtual time of the event; the handler answers by calling the
// engine (Send, Connect, Disconnect, SetTimer), never by blocking. A
// handler is called only while its node is alive, and never for an event
// scheduled before its node's last restart.
type Handler interface {
	// HandleMessage: msg, sent by from with the given layer, arrived.
	HandleMessage(now time.Duration, from int, layer Layer, msg []byte)
	// HandleTimer: the timer set with SetTimer(node, layer, at, token) fired.
	HandleTimer(now time.Duration, layer Layer, token uint64)
	// HandleConnected: a Connect to peer succeeded; the link is up.
	HandleConnected(now time.Duration, peer int)
	// HandleConnectFailed: a Connect to peer failed.
	HandleConnectFailed(now time.Duration, peer int)
	// HandleDisconnected: the link to peer broke (the peer crashed or closed
	// it, or a partition cut it).
	HandleDisconnected(now time.Duration, peer int)
}

// Latency is the one-way delay model of links.
type Latency struct {
	// Base is the smallest one-way delay. Default 10 ms (guess: a
	// metropolitan round trip of 20 ms).
	Base time.Duration
	// Spread is the range of a fixed per-pair extra delay: each pair of
	// nodes gets a delay in [0, Spread) drawn from a hash of the seed and
	// the pair. Default 90 ms (guess: one-way delays of 10–100 ms, as
	// between continents).
	Spread time.Duration
	// Jitter is the range of a fresh per-message extra delay, in
	// [0, Jitter). Links stay FIFO. Default 5 ms (guess).
	Jitter time.Duration
}

// Config is an Engine's configuration.
type Config struct {
	// Seed seeds every random choice the engine makes (jitter, loss, the
	// per-pair delays). Default 0, a seed like any other.
	Seed uint64
	// Latency is the delay model. A zero Latency means DefaultConfig's.
	Latency Latency
	// Loss is the probability that a message is lost, in [0, 1). Default 0.
	Loss float64
	// ConnectTimeout is how long a Connect to a dead or unreachable node
	// takes to fail. Default 2 s (guess: a few QUIC handshake
	// retransmissions).
	ConnectTimeout time.Duration
	// DetectDelay is how long after a crash or a partition the other end
	// of a link learns that it broke. Default 2 s (guess: a missed
	// keep-alive and a probe timeout).
	DetectDelay time.Duration
	// Trace, if not nil, receives one line of text per event. Slow: for
	// debugging and for the determinism test.
	Trace io.Writer
	// NoHash turns the trace hash off (TraceHash then returns zeros).
	NoHash bool
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Latency:        Latency{Base: 10 * time.Millisecond, Spread: 90 * time.Millisecond, Jitter: 5 * time.Millisecond},
		ConnectTimeout: 2 * time.Second,
		DetectDelay:    2 * time.Second,
	}
}

// ErrConfig is returned by Validate for a bad configuration.
var ErrConfig = errors.New("des: bad config")

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Latency.Base < 0 || c.Latency.Spread < 0 || c.Latency.Jitter < 0:
		return fmt.Errorf("%w: negative latency", ErrConfig)
	case !(c.Loss >= 0 && c.Loss < 1):
		return fmt.Errorf("%w: loss %v not in [0, 1)", ErrConfig, c.Loss)
	case c.ConnectTimeout <= 0:
		return fmt.Errorf("%w: connect timeout %v not positive", ErrConfig, c.ConnectTimeout)
	case c.DetectDelay < 0:
		return fmt.Errorf("%w: detect delay %v negative", ErrConfig, c.DetectDelay)
	}
	return nil
}

// Stats counts what the engine did.
type Stats struct {
	Events       uint64 `json:"events"`        // events dispatched
	Sent         uint64 `json:"sent"`          // messages handed to Send
	SentBytes    uint64 `json:"sent_bytes"`    // their bytes
	Delivered    uint64 `json:"delivered"`     // messages that reached a handler
	Lost         uint64 `json:"lost"`          // messages lost to Config.Loss
	Dropped      uint64 `json:"dropped"`       // messages whose receiver was dead, restarted or partitioned away
	Connects     uint64 `json:"connects"`      // Connect calls
	ConnectFails uint64 `json:"connect_fails"` // HandleConnectFailed calls
	LinkBreaks   uint64 `json:"link_breaks"`   // HandleDisconnected calls
	MaxPending   int    `json:"max_pending"`   // the most events pending at once
}

// link is one end of a link: the peer and the arrival time of the last
// message sent towards it, which keeps the link FIFO.
type link struct {
	peer int32
	last time.Duration
}

type nodeState struct {
	h     Handler
	links []link
	epoch uint32
	group int32
	alive bool
}

// Engine is a discrete-event simulator. It is not safe for concurrent use:
// one goroutine runs it, and handlers call back into it from that goroutine.
type Engine struct {
	cfg    Config
	now    time.Duration
	seq    uint64
	events eventHeap
	rng    *rand.Rand
	nodes  []nodeState
	calls  []func()
	stats  Stats

	hash hash.Hash
	rec  []byte // scratch for the canonical encoding
}

// New returns an engine with no nodes at virtual time 0.
func New(cfg Config) (*Engine, error) {
	if cfg.Latency == (Latency{}) {
		cfg.Latency = DefaultConfig().Latency
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, rng: NewRand(cfg.Seed, 0x6e6574)} // "net"
	if !cfg.NoHash {
		e.hash = sha256.New()
	}
	return e, nil
}

// NewRand returns a random source for one purpose (stream) of a seeded run,
// independent of the engine's own: drivers use it to give each machine its
// own *rand.Rand.
func NewRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, mix(stream^0x5eed)))
}

// mix is the SplitMix64 finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Now is the virtual time: the time of the event being dispatched, or the
// time Run stopped at.
func (e *Engine) Now() time.Duration { return e.now }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats { return e.stats }

// Pending is the number of events waiting.
func (e *Engine) Pending() int { return len(e.events) }

// NumNodes is the number of nodes ever added.
func (e *Engine) NumNodes() int { return len(e.nodes) }

// AddNode adds a live node with handler h and returns its index.
func (e *Engine) AddNode(h Handler) int {
	e.nodes = append(e.nodes, nodeState{h: h, alive: true})
	return len(e.nodes) - 1
}

// Alive reports whether node i is alive.
func (e *Engine) Alive(i int) bool { return e.nodes[i].alive }

// Handler returns node i's handler.
func (e *Engine) Handler(i int) Handler { return e.nodes[i].h }

// Linked reports whether the link a–b is up.
func (e *Engine) Linked(a, b int) bool { return findLink(e.nodes[a].links, int32(b)) >= 0 }

// Links appends node i's linked peers to dst, in the order the links came up.
func (e *Engine) Links(dst []int, i int) []int {
	for _, l := range e.nodes[i].links {
		dst = append(dst, int(l.peer))
	}
	return dst
}

// Group returns node i's partition group (0 when there is no partition).
func (e *Engine) Group(i int) int { return int(e.nodes[i].group) }

// At schedules fn to run at virtual time t (or now, if t is past). Use it
// for scenario actions: crashes, partitions, broadcasts, measurements.
func (e *Engine) At(t time.Duration, fn func()) {
	e.calls = append(e.calls, fn)
	e.schedule(event{at: max(t, e.now), kind: evCall, token: uint64(len(e.calls) - 1), node: -1, peer: -1})
}

// SetTimer schedules HandleTimer(at, layer, token) on node i. Timers cannot
// be cancelled: a machine ignores timers it no longer wants. A crash or
// restart of the node voids its timers.
func (e *Engine) SetTimer(i int, layer Layer, at time.Duration, token uint64) {
	n := &e.nodes[i]
	if !n.alive {
		return
	}
	e.schedule(event{at: max(at, e.now), kind: evTimer, node: int32(i), peer: -1, layer: layer, token: token, epoch: n.epoch})
}

func (e *Engine) schedule(ev event) {
	ev.seq = e.seq
	e.seq++
	e.events.push(ev)
	if len(e.events) > e.stats.MaxPending {
		e.stats.MaxPending = len(e.events)
	}
}

// Step dispatches the next event, if any, and reports whether it did.
func (e *Engine) Step() bool {
	if len(e.events) == 0 {
		return false
	}
	e.dispatch(e.events.pop())
	return true
}

// Run dispatches every event due at or before t, then sets the clock to t
// (if it is later than now). It returns the number of events dispatched.
func (e *Engine) Run(t time.Duration) int {
	n := 0
	for len(e.events) > 0 && e.events[0].at <= t {
		e.dispatch(e.events.pop())
		n++
	}
	if t > e.now {
		e.now = t
	}
	return n
}

func (e *Engine) dispatch(ev event) {
	e.now = ev.at
	e.stats.Events++
	switch ev.kind {
	case evCall:
		fn := e.calls[ev.token]
		e.calls[ev.token] = nil
		e.record(ev, nil)
		fn()
	case evTimer:
		n := &e.nodes[ev.node]
		if !n.alive || n.epoch != ev.epoch {
			return
		}
		e.record(ev, nil)
		n.h.HandleTimer(e.now, ev.layer, ev.token)
	case evDeliver:
		n := &e.nodes[ev.node]
		if !n.alive || n.epoch != ev.epoch || n.group != e.nodes[ev.peer].group {
			e.stats.Dropped++
			ev.kind = evDrop
			e.record(ev, ev.msg)
			return
		}
		e.stats.Delivered++
		e.record(ev, ev.msg)
		n.h.HandleMessage(e.now, int(ev.peer), ev.layer, ev.msg)
	case evConnectOK:
		n := &e.nodes[ev.node]
		if !n.alive || n.epoch != ev.epoch {
			return
		}
		if !e.reachable(int(ev.node), int(ev.peer)) {
			// The peer died or was cut off during the handshake.
			e.schedule(event{at: e.now + e.cfg.ConnectTimeout, kind: evConnectFail, node: ev.node, peer: ev.peer, epoch: ev.epoch})
			return
		}
		e.addLink(int(ev.node), int(ev.peer))
		e.record(ev, nil)
		n.h.HandleConnected(e.now, int(ev.peer))
	case evConnectFail:
		n := &e.nodes[ev.node]
		if !n.alive || n.epoch != ev.epoch {
			return
		}
		e.stats.ConnectFails++
		e.record(ev, nil)
		n.h.HandleConnectFailed(e.now, int(ev.peer))
	case evDisconnected:
		n := &e.nodes[ev.node]
		if !n.alive || n.epoch != ev.epoch || findLink(n.links, ev.peer) >= 0 {
			return // gone, or linked again since
		}
		e.stats.LinkBreaks++
		e.record(ev, nil)
		n.h.HandleDisconnected(e.now, int(ev.peer))
	}
}
