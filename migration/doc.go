// Package migration is the path watchdog policy of DESIGN.md ("The peer
// connection and its paths", job 3) as a sans-IO state machine: for one
// peer connection it decides which path is current, when to validate a
// path, when to leave one, when to ask for a circuit and when to try for
// a direct path again.
//
// A path is how the connection's packets travel: a Direct UDP 4-tuple or
// a Circuit. Streams belong to the connection, so changing path breaks
// nothing; but each switch costs a path validation and resets the
// congestion controller (RFC 9000 §9.4), so switching on noise is a cost,
// and switching back and forth (flapping) is a bug. The mechanics are the
// driver's: RFC 9000 §8.2 path validation (quic-go's Path.Probe), §9
// connection migration (Path.Switch where this node is the client; a
// request to the client where it is the server). The machine only
// decides.
//
// A Machine has no goroutines, sockets, clock or global randomness. Time
// comes in as `now`, randomness (timer jitter only) from the *rand.Rand
// given to New, and every input returns a slice of Outputs. The node's
// driver and the simulator run the same Machine. Paths are kept sorted by
// ID, so the same inputs and seed give the same outputs.
//
// # Paths
//
//	from          input                                       to
//	─────────────────────────────────────────────────────────────────────────
//	(none)        AddPath, PunchSucceeded: Probe              unvalidated
//	unvalidated   Validated                                   validated
//	any           ProbeFailed, or ProbeTimeout with no answer failed
//	validated     SuspectAfter keep-alives missed: Probe      suspect
//	suspect       Observe (traffic flows), Validated          validated
//	failed        Validated, after a Probe sent on an         validated
//	              address change or because the current
//	              path turned suspect
//	validated     LocalAddressChanged, ReflexiveChanged:      validated, in doubt
//	(direct)      Probe
//	in doubt      Validated                                   validated
//
// A path in doubt (from an address change until its new probe answers)
// is no candidate for a switch, though the current path stays current
// while in doubt. A path's quality is its cost:
// smoothed RTT plus LossPenalty × smoothed loss (EWMAs with gains
// RTTGain, LossGain; the first RTT sets the average, as RFC 9002 §5.3).
// Paths are removed only by the driver (RemovePath); at most MaxPaths.
//
// # Policy
//
// Direct before circuit. A circuit's cost is compared with a direct
// path's as cost × CircuitFactor + CircuitPenalty (1.5 and 20 ms): a
// direct path that is not clearly worse than that is preferred.
//
// Forced switches are immediate. When the current path dies (SuspectAfter
// keep-alives missed in a row, a failed or timed-out probe, RemovePath)
// the best validated path replaces it at once: no margin, no hold, no
// dwell. The cause is path-dead (or rebinding/local-address when the probe
// was checking an address change), and fallback when the move is from
// direct to a circuit. With nothing validated, a suspect current path
// stays current (it is all there is, and it may come back), a dead one
// leaves the connection with no current path, and either way FallBack
// asks the driver for a circuit, again after FallBackRetry (1 s, doubling
// to 1 min) while none is usable, but not while a new circuit is being
// validated (the probe of a suspect circuit does not hold it back), and
// at once, the backoff starting over, when an address changes. The
// first validated path becomes current at once (initial), as does the
// first after a loss.
//
// Address changes. LocalAddressChanged and ReflexiveChanged (a NAT
// rebinding seen by STUN) probe every direct path again. A successful
// probe keeps the current path (EventKept); a failed one is a dead path,
// as above; a direct path validated meanwhile (say, from the new local
// address) replaces a current path still in doubt. On a circuit, the
// upgrade backoff starts over.
//
// Upgrades. While the current path is a circuit and no direct path is
// validated or being probed, TryUpgrade asks for a punch after
// UpgradeBackoff (5 s), doubling to MaxUpgradeBackoff (5 min), jittered
// ±25%; the backoff starts over after a successful upgrade or an address
// change. A punched path (PunchSucceeded) is probed, and once validated
// replaces the circuit at once (upgrade) unless clearly worse.
//
// Quality switches, with hysteresis. Among usable paths, the machine
// leaves the current path for a better one (degraded) only if all of
// these hold:
//
//   - margin: the candidate's cost × (1 + Margin) is below the current
//     path's, and by at least MinImprovement (25% and 5 ms);
//   - hold: it has been so at HoldSamples samples of its own in a row,
//     spanning HoldTime (3 and 2 s); one contrary sample of either path
//     starts the count over, and a path not measured since its validation
//     never wins;
//   - dwell: it is at least the dwell past the last switch. Any switch
//     starts a dwell of Dwell (10 s); the k-th quality switch in a row
//     (from k = 0) starts one of Dwell × 2^k, capped at MaxDwell (5 min):
//     10, 20, 40, 80, 160, 300, 300, … s. The doubling starts over after
//     BackoffReset (1 h) without a quality switch. A switch held back by
//     the dwell happens when the dwell ends (TimerDwell), if the candidate
//     still holds.
//
// An upgrade needs no hold and no dwell, except right after a degraded
// switch: then it is a quality switch too, so that a direct path whose
// cost wobbles around the circuit's biased cost cannot flap either.
//
// # The bound on switches
//
// Quality switches are at least the backed-off dwell apart, so the n-th
// of a run comes at least 10 + 20 + 40 + 80 + 160 + 300 (n − 6) s after
// the first. In any hour at most 16 fit: six in the first 310 s, ten more
// at 300 s intervals (310 + 300 × 10 = 3,310 s; the 17th would need
// 3,610 s). A window of an hour also holds at most one start-over of the
// doubling, since that needs an hour with no quality switch, so 16 holds
// for any hour, whatever the trace. Every other switch is caused by
// something outside the quality rules (a dead path, an address change, a
// first path), and each is followed by at most one upgrade that skips the
// dwell. TestNoFlapping checks the 16 on traces that cross the threshold
// at every sample, every few seconds, and at random; with the hysteresis
// off, the same traces give hundreds to tens of thousands of switches an
// hour (TestNoFlappingControl).
//
// # Driver contract
//
// The driver performs the outputs of one call in slice order.
//
//   - AddPath(id, kind) for every path it opens, the connection's first
//     included; PunchSucceeded(id) for a punched direct path. Each gets a
//     Probe. A path already validated (the handshake's) may be reported
//     at once with Validated instead of probing it again.
//   - Probe{Path}: validate the path (PATH_CHALLENGE/RESPONSE) and answer
//     with Validated(id, rtt) or ProbeFailed(id). A probe unanswered for
//     ProbeTimeout counts as failed.
//   - Observe(id, rtt, loss) whenever it has an RTT sample for a path,
//     with the loss rate over the interval since the last one; for the
//     current path that is typically every ACK'd RTT sample or every
//     keep-alive, for others whatever probing it does.
//   - KeepAliveMissed(id) for each keep-alive left unanswered, on any
//     path.
//   - LocalAddressChanged on an interface or address event;
//     ReflexiveChanged when STUN reports a new mapping.
//   - Switch{Path, Cause}: make Path current.
//   - FallBack{Cause}: build a circuit to the peer, and AddPath it.
//   - TryUpgrade: try for a direct path (punch or dial); on success,
//     PunchSucceeded. Failure needs no report: the backoff asks again.
//   - RemovePath(id) when the driver closes a path, say one that failed
//     and that it gives up on (freeing the connection ID it used). The
//     machine never asks for a path to be closed.
//   - SetTimer{At, Timer}: call HandleTimer(At, Timer) at At. Never
//     cancelled; stale timers are ignored.
//   - Event: log and count; it asks for nothing.
//
// Inputs that make no sense (unknown path, RTT outside [0, MaxRTT], loss
// rate NaN or outside [0, 1], time running backwards) are counted in
// Stats.Invalid and ignored; AddPath refuses a bad or duplicate ID or a
// path past MaxPaths with an error and a count. Nothing panics.
package migration
