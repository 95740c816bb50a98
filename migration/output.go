package migration

import (
	"fmt"
	"time"
)

// PathID names one path of a peer connection. The driver chooses it and
// never reuses it for another path while the first is known to the
// machine. NoPath (zero) names no path and is refused by AddPath.
type PathID uint32

// NoPath is the zero PathID: "no path".
const NoPath PathID = 0

func (id PathID) String() string {
	if id == NoPath {
		return "none"
	}
	return fmt.Sprintf("p%d", uint32(id))
}

// Kind says how a path carries the connection's packets.
type Kind uint8

// Path kinds.
const (
	// Direct is a UDP 4-tuple between the two peers: punched, dialled
	// directly, or rebound.
	Direct Kind = 1
	// Circuit is an onion circuit through relays (see package circuit).
	Circuit Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Direct:
		return "direct"
	case Circuit:
		return "circuit"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k == Direct || k == Circuit }

// Cause says why the machine decided something. Every Switch, FallBack
// and Event carries one.
type Cause uint8

// Causes. The zero Cause is never emitted.
const (
	// CauseInitial: the connection's first validated path became current.
	CauseInitial Cause = iota + 1
	// CauseNewPath: the driver added a path; it must be validated.
	CauseNewPath
	// CauseUpgrade: a direct path replaces a circuit, or a punch is asked
	// for while on a circuit.
	CauseUpgrade
	// CauseRebinding: our reflexive address (NAT mapping) changed.
	CauseRebinding
	// CauseLocalAddress: a local interface or address changed.
	CauseLocalAddress
	// CausePathDead: keep-alives went unanswered, a probe failed, or the
	// driver removed the path.
	CausePathDead
	// CauseDegraded: another path has been clearly better than the
	// current one for the hold time (a quality switch).
	CauseDegraded
	// CauseFallback: the direct path was lost and the connection moves to
	// (or asks for) a circuit.
	CauseFallback
)

func (c Cause) String() string {
	switch c {
	case CauseInitial:
		return "initial"
	case CauseNewPath:
		return "new-path"
	case CauseUpgrade:
		return "upgrade"
	case CauseRebinding:
		return "rebinding"
	case CauseLocalAddress:
		return "local-address"
	case CausePathDead:
		return "path-dead"
	case CauseDegraded:
		return "degraded"
	case CauseFallback:
		return "fallback"
	}
	return fmt.Sprintf("cause(%d)", uint8(c))
}

// Output is one thing the driver must do, or one event it must log.
// Outputs come in a slice; the driver performs them in slice order.
type Output interface{ isOutput() }

// Probe asks the driver to validate Path (RFC 9000 §8.2 path validation:
// PATH_CHALLENGE, PATH_RESPONSE) and to answer, later, with Validated or
// ProbeFailed. A probe the driver never answers fails after
// Config.ProbeTimeout.
type Probe struct{ Path PathID }

// Switch asks the driver to make Path the connection's current path: the
// one it sends on (quic-go's Path.Switch where this node is the client).
// Path is always validated.
type Switch struct {
	Path  PathID
	Cause Cause
}

// FallBack asks the driver to build a circuit to the peer and add it with
// AddPath: no usable path is left. It is asked again, with backoff, while
// none is, unless a circuit path is being probed.
type FallBack struct{ Cause Cause }

// TryUpgrade asks the driver to try for a direct path (a hole punch, or a
// direct dial) while the connection runs over a circuit. A punch that
// works is reported with PunchSucceeded.
type TryUpgrade struct{}

// SetTimer asks the driver to call HandleTimer(at, Timer) at At. Timers
// are never cancelled: one that is no longer wanted is ignored when it
// fires, so the driver need not track or dedupe them.
type SetTimer struct {
	At    time.Time
	Timer Timer
}

func (Probe) isOutput()      {}
func (Switch) isOutput()     {}
func (FallBack) isOutput()   {}
func (TryUpgrade) isOutput() {}
func (SetTimer) isOutput()   {}
func (Event) isOutput()      {}

func (p Probe) String() string    { return fmt.Sprintf("Probe(%v)", p.Path) }
func (s Switch) String() string   { return fmt.Sprintf("Switch(%v, %v)", s.Path, s.Cause) }
func (f FallBack) String() string { return fmt.Sprintf("FallBack(%v)", f.Cause) }
func (TryUpgrade) String() string { return "TryUpgrade" }
func (s SetTimer) String() string { return fmt.Sprintf("SetTimer(%v)", s.Timer) }

// TimerKind says what a timer is for.
type TimerKind uint8

// Timer kinds.
const (
	TimerProbe    TimerKind = 1 // Timer.Path's probe went unanswered
	TimerUpgrade  TimerKind = 2 // time to ask for a punch again (TryUpgrade)
	TimerFallBack TimerKind = 3 // time to ask for a circuit again (FallBack)
	TimerDwell    TimerKind = 4 // the dwell after a switch is over: reconsider held-back switches
)

func (t TimerKind) String() string {
	switch t {
	case TimerProbe:
		return "probe"
	case TimerUpgrade:
		return "upgrade"
	case TimerFallBack:
		return "fallback"
	case TimerDwell:
		return "dwell"
	}
	return fmt.Sprintf("timer(%d)", uint8(t))
}

// Timer is opaque to the driver: it hands the same value back at the time
// asked. Kind and Path are exported for logs and traces. Timer is
// comparable, so a driver may use it as a map key.
type Timer struct {
	Kind TimerKind
	Path PathID // the path of a probe timer
	seq  uint64 // which arming of the timer this is; stale ones are ignored
}

func (t Timer) String() string {
	if t.Path == NoPath {
		return fmt.Sprintf("%v#%d", t.Kind, t.seq)
	}
	return fmt.Sprintf("%v(%v)#%d", t.Kind, t.Path, t.seq)
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds: the decisions the machine takes.
const (
	// EventProbe: Path is to be validated (Probe emitted), for Cause.
	EventProbe EventKind = iota + 1
	// EventSwitch: Path became current instead of From (Switch emitted).
	EventSwitch
	// EventSuppressed: a switch from From to Path was held back by the
	// dwell after the last switch. Reported once per dwell; Stats count
	// every held-back evaluation.
	EventSuppressed
	// EventSuspect: Path missed Config.SuspectAfter keep-alives in a row.
	EventSuspect
	// EventRecovered: a suspect Path carried traffic again.
	EventRecovered
	// EventProbeFailed: Path failed validation (the driver said so, or
	// the probe timed out); Cause is what the probe was for.
	EventProbeFailed
	// EventKept: the current Path was validated again after Cause (an
	// address change, keep-alive loss), so the connection stays on it.
	EventKept
	// EventLost: the current path From was lost with nothing to replace
	// it; the connection has no current path.
	EventLost
	// EventFallBack: a circuit was asked for (FallBack emitted).
	EventFallBack
	// EventTryUpgrade: a punch was asked for (TryUpgrade emitted) while on
	// the circuit Path.
	EventTryUpgrade
)

func (e EventKind) String() string {
	switch e {
	case EventProbe:
		return "probe"
	case EventSwitch:
		return "switch"
	case EventSuppressed:
		return "suppressed"
	case EventSuspect:
		return "suspect"
	case EventRecovered:
		return "recovered"
	case EventProbeFailed:
		return "probe-failed"
	case EventKept:
		return "kept"
	case EventLost:
		return "lost"
	case EventFallBack:
		return "fallback"
	case EventTryUpgrade:
		return "try-upgrade"
	}
	return fmt.Sprintf("event(%d)", uint8(e))
}

// Event reports one decision and its cause, for the driver to log and
// count. It asks nothing of the driver.
type Event struct {
	Kind  EventKind
	Path  PathID // the path decided about (NoPath if none)
	From  PathID // the path left, for EventSwitch, EventSuppressed, EventLost
	Cause Cause
}

func (e Event) String() string {
	switch e.Kind {
	case EventSwitch, EventSuppressed:
		return fmt.Sprintf("%v %v→%v (%v)", e.Kind, e.From, e.Path, e.Cause)
	case EventLost:
		return fmt.Sprintf("%v %v (%v)", e.Kind, e.From, e.Cause)
	}
	return fmt.Sprintf("%v %v (%v)", e.Kind, e.Path, e.Cause)
}
