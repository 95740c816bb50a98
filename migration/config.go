package migration

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadConfig is returned by Config.Validate and New.
var ErrBadConfig = errors.New("migration: bad config")

// Errors AddPath and PunchSucceeded return. The path is not added, and
// the refusal is counted in Stats.Refused.
var (
	// ErrBadPath: the ID is NoPath or the kind is neither Direct nor
	// Circuit.
	ErrBadPath = errors.New("migration: bad path")
	// ErrDuplicatePath: a path with this ID is already known.
	ErrDuplicatePath = errors.New("migration: duplicate path")
	// ErrTooManyPaths: MaxPaths paths are known already.
	ErrTooManyPaths = errors.New("migration: too many paths")
)

// MaxPaths bounds the paths one Machine knows. quic-go probes a path with
// one of the peer's 4 connection IDs (DESIGN.md), so a connection rarely
// has more than a handful; 8 leaves room for a circuit or two and for
// paths the driver has not yet removed.
const MaxPaths = 8

// MaxRTT bounds an RTT sample; a longer one is counted as invalid. No path
// worth keeping has a minute of round trip, and the bound keeps the
// arithmetic far from overflow.
const MaxRTT = time.Minute

// maxDuration bounds every duration in a Config, so that a typo cannot
// push a timer past any useful horizon (or overflow time arithmetic).
const maxDuration = 24 * time.Hour

// maxHoldSamples and maxSuspectAfter bound the counts in a Config.
const (
	maxHoldSamples  = 1000
	maxSuspectAfter = 100
)

// Config tunes a Machine. Start from DefaultConfig; New calls Validate.
// Most defaults are guesses, marked so; the simulator is where to measure
// them.
type Config struct {
	// RTTGain is the weight of a new RTT sample in the smoothed RTT
	// (EWMA), in (0, 1]. Default 1/8 (RFC 9002 §5.3, RFC 6298).
	RTTGain float64

	// LossGain is the weight of a new loss-rate sample in the smoothed
	// loss rate, in (0, 1]. Default 1/8 (guess: the RTT's time constant,
	// so both move together).
	LossGain float64

	// LossPenalty is what a path's cost adds per unit of smoothed loss
	// rate: cost = srtt + LossPenalty × loss, so with the default 1 s, 10%
	// loss weighs as much as 100 ms of RTT. Default 1 s (guess: a lost
	// packet waits about one PTO, and QUIC's first PTO is about 1 s, RFC
	// 9002 §6.2.2).
	LossPenalty time.Duration

	// CircuitFactor and CircuitPenalty make direct paths preferred: a
	// circuit's cost is compared as cost × CircuitFactor + CircuitPenalty,
	// so a direct path is "not clearly worse" than a circuit, and wins,
	// until its cost passes that. Defaults 1.5 and 20 ms (guess: a direct
	// path spares the relays' CPU and bandwidth and the circuit's 1200-byte
	// MTU squeeze, which is worth some latency). CircuitFactor ≥ 1.
	CircuitFactor  float64
	CircuitPenalty time.Duration

	// Margin is the relative gain a quality switch needs: a candidate must
	// cost at most current/(1+Margin). Default 0.25 (guess: well above the
	// few percent an EWMA of a steady path wanders, and a switch resets
	// the congestion controller, RFC 9000 §9.4, so it must buy something).
	// 0 turns the margin off.
	Margin float64

	// MinImprovement is the absolute gain a quality switch needs, on top
	// of Margin, so that sub-millisecond LAN paths do not trade places on
	// noise. Default 5 ms (guess: below what an interactive user notices).
	MinImprovement time.Duration

	// HoldSamples and HoldTime are how long a candidate must keep beating
	// the current path before a quality switch: for HoldSamples samples
	// of its own in a row, spanning HoldTime, with no sample of the
	// current path in between saying otherwise. Defaults 3 and 2 s
	// (guess: longer than a queueing burst, short next to Dwell). Both 0
	// turn the hold off.
	HoldSamples int
	HoldTime    time.Duration

	// Dwell is the least time after any switch before a quality switch.
	// Each quality switch doubles the next dwell, up to MaxDwell; the
	// doubling starts again after BackoffReset without a quality switch.
	// Switches away from a dead path never wait. Defaults 10 s, 5 min and
	// 1 h (10 s and 5 min are guesses; BackoffReset at an hour keeps the
	// bound of the package doc true for any hour: at most 16 quality
	// switches). Dwell 0 turns the dwell off.
	Dwell        time.Duration
	MaxDwell     time.Duration
	BackoffReset time.Duration

	// SuspectAfter is how many keep-alives in a row a path may leave
	// unanswered (KeepAliveMissed) before it is suspect: the current path
	// is then left at once and the suspect one probed. Default 3 (guess:
	// one lost keep-alive is noise, three in a row at a 5 s keep-alive
	// is 15 s of silence, inside the 30 s idle timeout, DESIGN.md).
	SuspectAfter int

	// ProbeTimeout is how long a Probe may go unanswered before it counts
	// as failed. Default 5 s (guess: above RFC 9000 §8.2.4's validation
	// timeout, max(3 PTO, 6 kInitialRtt) ≈ 2 s, on a path of a few
	// hundred ms).
	ProbeTimeout time.Duration

	// UpgradeBackoff is the wait, on a circuit, before the first
	// TryUpgrade; it doubles after each, up to MaxUpgradeBackoff, and
	// starts again after a successful upgrade or an address change.
	// Defaults 5 s and 5 min (guess: a punch costs a few packets and a
	// coordination message, so try soon, but do not pester relays for a
	// pair whose NATs will not punch). Each wait is jittered by ±25%.
	UpgradeBackoff    time.Duration
	MaxUpgradeBackoff time.Duration

	// FallBackRetry is the wait before a FallBack is asked again while no
	// usable path is left; it doubles up to MaxFallBackRetry. Defaults 1 s
	// and 1 min. A build that fails fails fast (no route while a host
	// changes networks, a relay that refuses), and 5 s, the first
	// default, was most of the stall when a host moved (measured in the
	// kernel test bed). Jittered by ±25%.
	FallBackRetry    time.Duration
	MaxFallBackRetry time.Duration
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		RTTGain:           0.125,
		LossGain:          0.125,
		LossPenalty:       time.Second,
		CircuitFactor:     1.5,
		CircuitPenalty:    20 * time.Millisecond,
		Margin:            0.25,
		MinImprovement:    5 * time.Millisecond,
		HoldSamples:       3,
		HoldTime:          2 * time.Second,
		Dwell:             10 * time.Second,
		MaxDwell:          5 * time.Minute,
		BackoffReset:      time.Hour,
		SuspectAfter:      3,
		ProbeTimeout:      5 * time.Second,
		UpgradeBackoff:    5 * time.Second,
		MaxUpgradeBackoff: 5 * time.Minute,
		FallBackRetry:     time.Second,
		MaxFallBackRetry:  time.Minute,
	}
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	if err := c.validateWeights(); err != nil {
		return err
	}
	if err := c.validateHysteresis(); err != nil {
		return err
	}
	return c.validateTimers()
}

func (c Config) validateWeights() error {
	switch {
	case !(c.RTTGain > 0 && c.RTTGain <= 1):
		return fmt.Errorf("%w: RTTGain %v, want (0, 1]", ErrBadConfig, c.RTTGain)
	case !(c.LossGain > 0 && c.LossGain <= 1):
		return fmt.Errorf("%w: LossGain %v, want (0, 1]", ErrBadConfig, c.LossGain)
	case c.LossPenalty < 0 || c.LossPenalty > maxDuration:
		return fmt.Errorf("%w: LossPenalty %v, want 0..%v", ErrBadConfig, c.LossPenalty, maxDuration)
	case !(c.CircuitFactor >= 1 && c.CircuitFactor <= 100):
		return fmt.Errorf("%w: CircuitFactor %v, want 1..100", ErrBadConfig, c.CircuitFactor)
	case c.CircuitPenalty < 0 || c.CircuitPenalty > maxDuration:
		return fmt.Errorf("%w: CircuitPenalty %v, want 0..%v", ErrBadConfig, c.CircuitPenalty, maxDuration)
	}
	return nil
}

func (c Config) validateHysteresis() error {
	switch {
	case !(c.Margin >= 0 && c.Margin <= 10):
		return fmt.Errorf("%w: Margin %v, want 0..10", ErrBadConfig, c.Margin)
	case c.MinImprovement < 0 || c.MinImprovement > maxDuration:
		return fmt.Errorf("%w: MinImprovement %v, want 0..%v", ErrBadConfig, c.MinImprovement, maxDuration)
	case c.HoldSamples < 0 || c.HoldSamples > maxHoldSamples:
		return fmt.Errorf("%w: HoldSamples %d, want 0..%d", ErrBadConfig, c.HoldSamples, maxHoldSamples)
	case c.HoldTime < 0 || c.HoldTime > maxDuration:
		return fmt.Errorf("%w: HoldTime %v, want 0..%v", ErrBadConfig, c.HoldTime, maxDuration)
	case c.Dwell < 0 || c.Dwell > maxDuration:
		return fmt.Errorf("%w: Dwell %v, want 0..%v", ErrBadConfig, c.Dwell, maxDuration)
	case c.MaxDwell < c.Dwell || c.MaxDwell > maxDuration:
		return fmt.Errorf("%w: MaxDwell %v, want Dwell (%v)..%v", ErrBadConfig, c.MaxDwell, c.Dwell, maxDuration)
	case c.BackoffReset <= 0 || c.BackoffReset > maxDuration:
		return fmt.Errorf("%w: BackoffReset %v, want > 0 and at most %v", ErrBadConfig, c.BackoffReset, maxDuration)
	}
	return nil
}

func (c Config) validateTimers() error {
	switch {
	case c.SuspectAfter < 1 || c.SuspectAfter > maxSuspectAfter:
		return fmt.Errorf("%w: SuspectAfter %d, want 1..%d", ErrBadConfig, c.SuspectAfter, maxSuspectAfter)
	case c.ProbeTimeout <= 0 || c.ProbeTimeout > maxDuration:
		return fmt.Errorf("%w: ProbeTimeout %v, want > 0 and at most %v", ErrBadConfig, c.ProbeTimeout, maxDuration)
	case c.UpgradeBackoff <= 0 || c.UpgradeBackoff > maxDuration:
		return fmt.Errorf("%w: UpgradeBackoff %v, want > 0 and at most %v", ErrBadConfig, c.UpgradeBackoff, maxDuration)
	case c.MaxUpgradeBackoff < c.UpgradeBackoff || c.MaxUpgradeBackoff > maxDuration:
		return fmt.Errorf("%w: MaxUpgradeBackoff %v, want UpgradeBackoff (%v)..%v", ErrBadConfig, c.MaxUpgradeBackoff, c.UpgradeBackoff, maxDuration)
	case c.FallBackRetry <= 0 || c.FallBackRetry > maxDuration:
		return fmt.Errorf("%w: FallBackRetry %v, want > 0 and at most %v", ErrBadConfig, c.FallBackRetry, maxDuration)
	case c.MaxFallBackRetry < c.FallBackRetry || c.MaxFallBackRetry > maxDuration:
		return fmt.Errorf("%w: MaxFallBackRetry %v, want FallBackRetry (%v)..%v", ErrBadConfig, c.MaxFallBackRetry, c.FallBackRetry, maxDuration)
	}
	return nil
}

// dwell returns the dwell after the k-th quality switch of a backoff
// streak (k from 0): Dwell × 2^k, at most MaxDwell.
func (c Config) dwell(k int) time.Duration {
	d := c.Dwell
	for i := 0; i < k && d > 0 && d < c.MaxDwell; i++ {
		d *= 2
	}
	return min(d, c.MaxDwell)
}

// secs converts d to float seconds, the unit of path costs.
func secs(d time.Duration) float64 { return d.Seconds() }
