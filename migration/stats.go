package migration

import (
	"fmt"
	"time"
)

// Stats are plain counters since New, and the current path. The driver
// exports them.
type Stats struct {
	Current PathID // the current path, NoPath if none
	Paths   int    // paths known now

	Switches SwitchCounts // Switch outputs, by cause

	Probes        uint64 // Probe outputs
	Validations   uint64 // Validated inputs
	ProbeFailures uint64 // ProbeFailed inputs
	ProbeTimeouts uint64 // probes unanswered after ProbeTimeout (counted as failures too)

	FallBacks     uint64 // FallBack outputs
	UpgradesTried uint64 // TryUpgrade outputs
	Punches       uint64 // PunchSucceeded inputs accepted

	Misses     uint64 // KeepAliveMissed inputs for known paths
	Suspects   uint64 // paths made suspect by keep-alive loss
	Recoveries uint64 // suspect paths that carried traffic again
	Kept       uint64 // current paths validated again after an address change or keep-alive loss

	LocalAddressChanges uint64 // LocalAddressChanged inputs
	ReflexiveChanges    uint64 // ReflexiveChanged inputs

	// SuppressedHold counts evaluations at which a candidate beat the
	// current path by the margin but had not yet held for HoldSamples
	// and HoldTime. SuppressedDwell counts those at which a candidate
	// that had held (or a direct path that could replace a circuit) was
	// kept back by the dwell after the last switch. Together they say
	// how hard the brakes worked.
	SuppressedHold  uint64
	SuppressedDwell uint64

	Refused     uint64        // AddPath and PunchSucceeded calls refused with an error
	Invalid     InvalidCounts // inputs ignored, by reason
	StaleTimers uint64        // timers that fired after they stopped mattering
}

// SwitchCounts count switches by cause.
type SwitchCounts struct {
	Initial, Upgrade, Rebinding, LocalAddress, PathDead, Degraded, Fallback uint64
}

func (s *SwitchCounts) add(c Cause) {
	switch c {
	case CauseInitial:
		s.Initial++
	case CauseUpgrade:
		s.Upgrade++
	case CauseRebinding:
		s.Rebinding++
	case CauseLocalAddress:
		s.LocalAddress++
	case CausePathDead:
		s.PathDead++
	case CauseDegraded:
		s.Degraded++
	case CauseFallback:
		s.Fallback++
	}
}

// Total is the sum over all causes.
func (s SwitchCounts) Total() uint64 {
	return s.Initial + s.Upgrade + s.Rebinding + s.LocalAddress + s.PathDead + s.Degraded + s.Fallback
}

func (s SwitchCounts) String() string {
	return fmt.Sprintf("initial %d upgrade %d rebinding %d local-address %d path-dead %d degraded %d fallback %d",
		s.Initial, s.Upgrade, s.Rebinding, s.LocalAddress, s.PathDead, s.Degraded, s.Fallback)
}

// InvalidCounts count inputs ignored because they make no sense. A driver
// bug shows here; the machine never panics or errs on them.
type InvalidCounts struct {
	UnknownPath   uint64 // input naming a path the machine does not know
	BadRTT        uint64 // RTT negative or above MaxRTT
	BadLoss       uint64 // loss rate NaN or outside [0, 1]
	TimeBackwards uint64 // now before the last input's; the last input's time is used
}

// Total is the sum over all reasons.
func (c InvalidCounts) Total() uint64 {
	return c.UnknownPath + c.BadRTT + c.BadLoss + c.TimeBackwards
}

// PathInfo is what the machine knows of one path.
type PathInfo struct {
	Kind   Kind
	SRTT   time.Duration // smoothed RTT; 0 before the first sample
	Loss   float64       // smoothed loss rate, 0..1, from Observe
	Usable bool          // validated, or suspect but not yet given up
	Misses int           // keep-alives unanswered in a row
}

// Path returns what the machine knows of path id, and false when it
// knows no such path.
func (m *Machine) Path(id PathID) (PathInfo, bool) {
	p := m.known(id)
	if p == nil {
		return PathInfo{}, false
	}
	return PathInfo{
		Kind:   p.kind,
		SRTT:   time.Duration(p.srtt * float64(time.Second)),
		Loss:   p.loss,
		Usable: p.usable(),
		Misses: p.misses,
	}, true
}
