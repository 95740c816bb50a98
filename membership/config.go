package membership

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadConfig is returned by Config.Validate and New.
var ErrBadConfig = errors.New("membership: bad config")

// Config tunes a Machine. Start from DefaultConfig; New calls Validate.
// "Paper" is Leitão, Pereira, Rodrigues, DSN 2007, whose simulations use
// these values for a 10,000-node overlay.
type Config struct {
	// ActiveSize bounds the active view: the peers this node holds a link
	// to and gossips with. Default 5 (paper: log10(n)+1 for n = 10,000).
	ActiveSize int

	// PassiveSize bounds the passive view: known peers held in reserve to
	// replace failed active ones. Default 30 (paper: k(log10(n)+c) with
	// k = 6, c = 1).
	PassiveSize int

	// ARWL, the active random walk length, is the TTL a FORWARD_JOIN
	// starts with; the walk's end adds the new node to its active view.
	// Default 6 (paper). At most MaxTTL.
	ARWL int

	// PRWL, the passive random walk length, is the TTL at which a
	// FORWARD_JOIN adds the new node to the passive view of the node it
	// passes. Default 3 (paper). At most ARWL.
	PRWL int

	// ShuffleActive (the paper's ka) is how many active peers a SHUFFLE
	// carries. Default 3 (paper).
	ShuffleActive int

	// ShufflePassive (the paper's kp) is how many passive peers a SHUFFLE
	// carries. Default 4 (paper). 1 + ShuffleActive + ShufflePassive is
	// at most MaxShufflePeers.
	ShufflePassive int

	// ShuffleTTL is the TTL a SHUFFLE walk starts with. Default 6: the
	// paper gives the walk a time to live but no separate value, so ARWL
	// is reused (guess). At most MaxTTL.
	ShuffleTTL int

	// ShuffleInterval is the mean time between two SHUFFLEs started by
	// this node; each wait is drawn uniformly from [ShuffleInterval/2,
	// 3*ShuffleInterval/2) so nodes do not shuffle in lockstep. The same
	// tick retries filling an active view that is not full. Default 10 s
	// (guess: the paper counts in cycles, not seconds).
	ShuffleInterval time.Duration

	// JoinTimeout is how long a JOIN waits for its contact's accept before
	// it is sent again; a node keeps trying while its active view is
	// empty. Default 10 s (guess: two QUIC handshake timeouts).
	JoinTimeout time.Duration

	// StarveTicks drives two escalations that are not in the paper; both
	// wait StarveTicks shuffle ticks in a row, then twice as long after
	// each escalation, up to MaxStarveBackoff times StarveTicks. Default
	// 3; 0 turns both off.
	//
	// A node whose active view is at most half full (and not empty) at
	// each of those ticks, every polite request refused, sends its next
	// NEIGHBOR with high priority, which the peer must accept, evicting
	// one of its own; a full active view resets the wait. A node whose
	// passive view is not full at each of those ticks, while its contact
	// (see Join) is not its neighbour, probes the contact: a SHUFFLE that
	// the contact answers with a sample of its passive view. If the
	// sample names nobody the node knows, it sends one of them a
	// high-priority NEIGHBOR; a full passive view resets the wait.
	//
	// Why: with 3,000 or 10,000 nodes joining 3 ms apart, some ended up
	// in islands of 2 to 16 nodes that held only each other, the small
	// ones with free active slots that every full node outside refused,
	// the larger ones with full active views and passive views that could
	// not fill, as they knew nobody outside. In a large overlay a passive
	// view fills within a few shuffles; one that cannot says the node's
	// component is smaller than ActiveSize+PassiveSize+1 nodes, which is
	// normal only in a small overlay, and there the contact's sample
	// names peers the node knows.
	StarveTicks int

	// NeighborTimeout is how long a NEIGHBOR request waits, from the
	// Connect to the reply, before the peer is taken for dead and removed
	// from the passive view. Default 5 s (guess: a QUIC handshake
	// timeout).
	NeighborTimeout time.Duration
}

// DefaultConfig returns the paper's parameters, with guessed timers.
func DefaultConfig() Config {
	return Config{
		ActiveSize:      5,
		PassiveSize:     30,
		ARWL:            6,
		PRWL:            3,
		ShuffleActive:   3,
		ShufflePassive:  4,
		ShuffleTTL:      6,
		ShuffleInterval: 10 * time.Second,
		StarveTicks:     3,
		JoinTimeout:     10 * time.Second,
		NeighborTimeout: 5 * time.Second,
	}
}

// Bounds on view sizes, so that a typo in a config cannot make a node
// hold unbounded state.
const (
	MaxActiveSize  = 64
	MaxPassiveSize = 1024
	MaxStarveTicks = 1000
)

// MaxStarveBackoff bounds the wait between two escalations, in
// StarveTicks.
const MaxStarveBackoff = 8

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.ActiveSize < 1 || c.ActiveSize > MaxActiveSize:
		return fmt.Errorf("%w: ActiveSize %d, want 1..%d", ErrBadConfig, c.ActiveSize, MaxActiveSize)
	case c.PassiveSize < 1 || c.PassiveSize > MaxPassiveSize:
		return fmt.Errorf("%w: PassiveSize %d, want 1..%d", ErrBadConfig, c.PassiveSize, MaxPassiveSize)
	case c.ARWL < 0 || c.ARWL > MaxTTL:
		return fmt.Errorf("%w: ARWL %d, want 0..%d", ErrBadConfig, c.ARWL, MaxTTL)
	case c.PRWL < 0 || c.PRWL > c.ARWL:
		return fmt.Errorf("%w: PRWL %d, want 0..ARWL (%d)", ErrBadConfig, c.PRWL, c.ARWL)
	case c.ShuffleActive < 0 || c.ShufflePassive < 0 || 1+c.ShuffleActive+c.ShufflePassive > MaxShufflePeers:
		return fmt.Errorf("%w: ShuffleActive %d + ShufflePassive %d + 1, want 1..%d", ErrBadConfig, c.ShuffleActive, c.ShufflePassive, MaxShufflePeers)
	case c.ShuffleTTL < 0 || c.ShuffleTTL > MaxTTL:
		return fmt.Errorf("%w: ShuffleTTL %d, want 0..%d", ErrBadConfig, c.ShuffleTTL, MaxTTL)
	case c.ShuffleInterval <= 0:
		return fmt.Errorf("%w: ShuffleInterval %v, want > 0", ErrBadConfig, c.ShuffleInterval)
	case c.StarveTicks < 0 || c.StarveTicks > MaxStarveTicks:
		return fmt.Errorf("%w: StarveTicks %d, want 0..%d", ErrBadConfig, c.StarveTicks, MaxStarveTicks)
	case c.JoinTimeout <= 0:
		return fmt.Errorf("%w: JoinTimeout %v, want > 0", ErrBadConfig, c.JoinTimeout)
	case c.NeighborTimeout <= 0:
		return fmt.Errorf("%w: NeighborTimeout %v, want > 0", ErrBadConfig, c.NeighborTimeout)
	}
	return nil
}
