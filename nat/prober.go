package nat

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/registry"
)

// ProberConfig tunes a Prober. Start from DefaultProberConfig; NewProber
// calls Validate.
type ProberConfig struct {
	// Timeout is how long to wait for an answer to each try. Default
	// 500 ms (RFC 8489 section 6.2.1 suggests an initial RTO of 500 ms;
	// we do not back off, rounds are short).
	Timeout time.Duration

	// Tries is how many requests (first one included) each observer is
	// sent before we give up on it. Default 3 (guess: with 500 ms, a round
	// ends within 1.5 s).
	Tries int

	// MaxObservers bounds the observers of one round; extra ones are
	// dropped in the order given. Default 8 (guess: enough IPs and same-IP
	// pairs to classify, few enough to be cheap).
	MaxObservers int
}

// DefaultProberConfig returns the defaults documented on each field.
func DefaultProberConfig() ProberConfig {
	return ProberConfig{Timeout: 500 * time.Millisecond, Tries: 3, MaxObservers: 8}
}

// Bounds on ProberConfig.
const (
	MaxProberTries     = 16
	MaxProberObservers = 256
)

// Validate reports the first field that is out of range.
func (c ProberConfig) Validate() error {
	switch {
	case c.Timeout <= 0 || c.Timeout > time.Minute:
		return fmt.Errorf("%w: Timeout %v, want in (0, 1m]", ErrBadConfig, c.Timeout)
	case c.Tries < 1 || c.Tries > MaxProberTries:
		return fmt.Errorf("%w: Tries %d, want 1..%d", ErrBadConfig, c.Tries, MaxProberTries)
	case c.MaxObservers < 1 || c.MaxObservers > MaxProberObservers:
		return fmt.Errorf("%w: MaxObservers %d, want 1..%d", ErrBadConfig, c.MaxObservers, MaxProberObservers)
	}
	return nil
}

// Output is one thing the driver must do, or one event it must pass on.
// The driver performs a call's outputs in slice order.
type Output interface{ isOutput() }

// Send asks the driver to send Msg, a Binding request, to To from the
// node's one UDP socket (the one QUIC uses, so the mapping measured is
// QUIC's).
type Send struct {
	To  netip.AddrPort
	Msg []byte
}

// SetTimer asks the driver to call HandleTimer(At, Timer) at At. Timers
// are never cancelled; stale ones are ignored.
type SetTimer struct {
	At    time.Time
	Timer Timer
}

// Done ends a round. Observations holds one entry per observer that
// answered, in the order the observers were given; Mapping is
// ClassifyMapping(Observations); Reflexive the distinct Mapped addresses,
// sorted.
type Done struct {
	Observations []Observation
	Mapping      registry.NATClass
	Reflexive    []netip.AddrPort
}

func (Send) isOutput()     {}
func (SetTimer) isOutput() {}
func (Done) isOutput()     {}

// Timer is opaque to the driver, which hands the same value back at the
// time asked. It is comparable.
type Timer struct {
	round uint64 // which round; timers of other rounds are stale
	try   int    // which try the timer ends
}

func (t Timer) String() string { return fmt.Sprintf("probe#%d.%d", t.round, t.try) }

// ProberStats are a Prober's plain counters since NewProber.
type ProberStats struct {
	Rounds    uint64 // Start calls
	Abandoned uint64 // rounds replaced by Start before their Done
	Done      uint64 // Done outputs

	Requests  uint64 // Binding requests sent, retries included
	Retries   uint64 // of which retries after a timeout
	Answered  uint64 // observers that answered
	GaveUp    uint64 // observers that did not answer in Tries tries
	Skipped   uint64 // observers given to Start dropped: invalid, repeated or over MaxObservers
	ErrorResp uint64 // Binding error responses to our requests (that observer is given up)

	NotOurs     uint64 // packets not consumed: not STUN, unknown transaction ID, not a response
	WrongSource uint64 // responses with our transaction ID from another address than asked (ignored)
	Malformed   uint64 // responses with our transaction ID that did not parse (ignored)
	Duplicates  uint64 // responses from an observer already answered or given up, the round's Done included
}

// probe is one observer of the current round.
type probe struct {
	to       netip.AddrPort
	tx       TxID
	msg      []byte
	answered bool
	failed   bool // gave up or got an error response
	mapped   netip.AddrPort
}

// Prober runs mapping discovery rounds: it sends a Binding request to
// each observer from the node's socket, retries on timeout, and reports
// the reflexive addresses seen and the mapping behaviour they show
// (ClassifyMapping). It has no goroutines, sockets or clock: time comes
// in as now, transaction IDs from the *rand.Rand given to NewProber. It
// is not safe for concurrent use.
type Prober struct {
	cfg   ProberConfig
	rng   *rand.Rand
	stats ProberStats

	round   uint64
	active  bool // a round is under way
	try     int  // tries sent to pending observers so far
	probes  []probe
	byTx    map[TxID]int // index into probes
	pending int          // probes neither answered nor failed
}

// NewProber returns an idle Prober.
func NewProber(cfg ProberConfig, rng *rand.Rand) (*Prober, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, fmt.Errorf("%w: nil rng", ErrBadConfig)
	}
	return &Prober{cfg: cfg, rng: rng}, nil
}

// Stats returns the counters.
func (p *Prober) Stats() ProberStats { return p.stats }

// Start begins a round against observers: unmapped, deduplicated,
// invalid ones (unspecified, port 0) skipped, at most MaxObservers in the
// order given. It returns a Send per observer and a SetTimer, or at once
// an empty Done if no observer is left. A new Start abandons the round
// under way: its timers go stale and its responses are no longer ours.
func (p *Prober) Start(now time.Time, observers []netip.AddrPort) []Output {
	p.stats.Rounds++
	if p.active {
		p.stats.Abandoned++
	}
	p.round++
	p.active = true
	p.try = 1
	p.probes = p.probes[:0]
	p.byTx = make(map[TxID]int, min(len(observers), p.cfg.MaxObservers))
	seen := make(map[netip.AddrPort]bool, len(p.byTx))
	for _, o := range observers {
		a, ok := cleanAddr(o)
		if !ok || seen[a] || len(p.probes) == p.cfg.MaxObservers {
			p.stats.Skipped++
			continue
		}
		seen[a] = true
		tx := NewTxID(p.rng)
		if _, dup := p.byTx[tx]; dup {
			tx = NewTxID(p.rng) // 96 random bits: a second clash is not worth a loop
		}
		p.byTx[tx] = len(p.probes)
		p.probes = append(p.probes, probe{to: a, tx: tx, msg: AppendBindingRequest(nil, tx)})
	}
	p.pending = len(p.probes)
	if p.pending == 0 {
		return []Output{p.finish()}
	}
	out := make([]Output, 0, len(p.probes)+1)
	for i := range p.probes {
		out = append(out, p.send(&p.probes[i]))
	}
	return append(out, p.timer(now))
}

// send returns a Send of pr's request (the same transaction ID each try,
// so a late answer to an earlier try still counts).
func (p *Prober) send(pr *probe) Output {
	p.stats.Requests++
	return Send{To: pr.to, Msg: slices.Clone(pr.msg)}
}

func (p *Prober) timer(now time.Time) Output {
	return SetTimer{At: now.Add(p.cfg.Timeout), Timer: Timer{round: p.round, try: p.try}}
}

// HandleResponse takes a packet from `from` that may be a Binding
// response to one of our requests. consumed is false if it is not ours
// (not STUN, not a response, or a transaction ID not of the latest
// round), so the caller can pass it on (to the Server, say). Responses
// carrying our transaction ID are consumed, but ignored and counted if
// they come from another address than the request went to, or do not
// parse. A Binding error response gives up on that observer.
func (p *Prober) HandleResponse(now time.Time, pkt []byte, from netip.AddrPort) (consumed bool, out []Output) {
	if len(pkt) > MaxSTUNSize || !IsSTUN(pkt) {
		p.stats.NotOurs++
		return false, nil
	}
	var tx TxID
	copy(tx[:], pkt[8:20])
	i, ok := p.byTx[tx]
	typ := uint16(pkt[0])<<8 | uint16(pkt[1])
	if !ok || (typ != typeBindingSuccess && typ != typeBindingError) {
		p.stats.NotOurs++
		return false, nil
	}
	pr := &p.probes[i]
	if f, ok := cleanAddr(from); !ok || f != pr.to {
		p.stats.WrongSource++
		return true, nil
	}
	if pr.answered || pr.failed {
		p.stats.Duplicates++
		return true, nil
	}
	if typ == typeBindingError {
		if _, _, err := parseMessage(pkt, knownInResponse); err != nil {
			p.stats.Malformed++
			return true, nil
		}
		p.stats.ErrorResp++
		pr.failed = true
	} else {
		_, mapped, err := ParseBindingResponse(pkt)
		if err != nil {
			p.stats.Malformed++
			return true, nil
		}
		p.stats.Answered++
		pr.answered, pr.mapped = true, mapped
	}
	p.pending--
	if p.pending == 0 {
		return true, []Output{p.finish()}
	}
	return true, nil
}

// HandleTimer resends the request to every observer that has not
// answered, up to Tries in all, then gives up on them; when every
// observer has answered or been given up, it returns Done. Stale timers
// (of another round or try) return nothing.
func (p *Prober) HandleTimer(now time.Time, t Timer) []Output {
	if !p.active || t.round != p.round || t.try != p.try {
		return nil
	}
	if p.try >= p.cfg.Tries {
		for i := range p.probes {
			if pr := &p.probes[i]; !pr.answered && !pr.failed {
				pr.failed = true
				p.stats.GaveUp++
			}
		}
		p.pending = 0
		return []Output{p.finish()}
	}
	p.try++
	out := make([]Output, 0, p.pending+1)
	for i := range p.probes {
		if pr := &p.probes[i]; !pr.answered && !pr.failed {
			p.stats.Retries++
			out = append(out, p.send(pr))
		}
	}
	return append(out, p.timer(now))
}

// finish ends the round and returns its Done.
func (p *Prober) finish() Output {
	p.active = false
	p.stats.Done++
	d := Done{}
	for _, pr := range p.probes {
		if pr.answered {
			d.Observations = append(d.Observations, Observation{Observer: pr.to, Mapped: pr.mapped})
			d.Reflexive = append(d.Reflexive, pr.mapped)
		}
	}
	slices.SortFunc(d.Reflexive, netip.AddrPort.Compare)
	d.Reflexive = slices.Compact(d.Reflexive)
	d.Mapping = ClassifyMapping(d.Observations)
	return d
}
