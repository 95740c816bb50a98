package migration

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Machine is the path watchdog of one peer connection. It is not safe for
// concurrent use: one driver goroutine (or the simulator) owns it.
type Machine struct {
	cfg Config
	rng *rand.Rand

	paths []*path // sorted by ID, at most MaxPaths
	cur   *path   // the current path, or nil

	// lastCause is the cause of the last switch. An upgrade right after a
	// degraded switch is itself a quality switch (see tryUpgrade).
	lastCause Cause
	// lost says why the connection has no current path (when cur is
	// nil): the cause, and whether the path lost was direct, so that the
	// next switch to a circuit is a fallback. Zero before the first path.
	lost struct {
		cause  Cause
		direct bool
	}

	// The dwell: no quality switch before dwellUntil. backoff is the
	// index of the next quality switch in its backoff streak, and
	// lastQuality the time of the last quality switch.
	dwellUntil  time.Time
	backoff     int
	lastQuality time.Time
	heldUntil   time.Time // dwellUntil when the last EventSuppressed went out

	dwellTimer struct {
		armed bool
		at    time.Time
		seq   uint64
	}
	upgrade struct {
		armed bool
		seq   uint64
		wait  time.Duration // the next wait before TryUpgrade
	}
	fallback struct {
		armed bool
		seq   uint64
		wait  time.Duration // the next wait before FallBack again
		cause Cause
	}

	seq   uint64 // last sequence number handed to a timer
	now   time.Time
	out   []Output
	stats Stats
}

// New returns a machine with no paths. It emits nothing until a path is
// added.
func New(cfg Config, rng *rand.Rand) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, fmt.Errorf("%w: nil rand", ErrBadConfig)
	}
	m := &Machine{cfg: cfg, rng: rng}
	m.upgrade.wait = cfg.UpgradeBackoff
	m.fallback.wait = cfg.FallBackRetry
	return m, nil
}

// Current returns the current path, or NoPath.
func (m *Machine) Current() PathID {
	if m.cur == nil {
		return NoPath
	}
	return m.cur.id
}

// Stats returns the counters.
func (m *Machine) Stats() Stats {
	s := m.stats
	s.Current = m.Current()
	s.Paths = len(m.paths)
	return s
}

// begin and end bracket every entry point: they fix the time and collect
// the outputs. Time never goes backwards inside the machine: an input
// dated before the last one is taken at the last one's time.
func (m *Machine) begin(now time.Time) {
	if now.Before(m.now) {
		m.stats.Invalid.TimeBackwards++
		now = m.now
	}
	m.now, m.out = now, nil
}

func (m *Machine) end() []Output {
	out := m.out
	m.out = nil
	return out
}

func (m *Machine) emit(o Output) { m.out = append(m.out, o) }

func (m *Machine) event(k EventKind, p, from *path, c Cause) {
	m.emit(Event{Kind: k, Path: idOf(p), From: idOf(from), Cause: c})
}

func idOf(p *path) PathID {
	if p == nil {
		return NoPath
	}
	return p.id
}

func (m *Machine) nextSeq() uint64 {
	m.seq++
	return m.seq
}

// AddPath adds a candidate path, not yet validated, and asks for it to be
// probed. It refuses, with an error and a count, NoPath, an unknown kind,
// an ID already known, and a path past MaxPaths.
func (m *Machine) AddPath(now time.Time, id PathID, kind Kind) ([]Output, error) {
	m.begin(now)
	err := m.add(id, kind, CauseNewPath)
	return m.end(), err
}

// PunchSucceeded adds the direct path a hole punch (or a direct dial)
// opened, as AddPath does, and asks for it to be probed. Once validated it
// replaces a circuit unless clearly worse.
func (m *Machine) PunchSucceeded(now time.Time, id PathID) ([]Output, error) {
	m.begin(now)
	err := m.add(id, Direct, CauseUpgrade)
	if err == nil {
		m.stats.Punches++
	}
	return m.end(), err
}

func (m *Machine) add(id PathID, kind Kind, cause Cause) error {
	switch {
	case id == NoPath || !kind.valid():
		m.stats.Refused++
		return fmt.Errorf("%w: id %v, kind %v", ErrBadPath, id, kind)
	case m.find(id) != nil:
		m.stats.Refused++
		return fmt.Errorf("%w: %v", ErrDuplicatePath, id)
	case len(m.paths) >= MaxPaths:
		m.stats.Refused++
		return fmt.Errorf("%w: %v would be path %d, limit %d", ErrTooManyPaths, id, len(m.paths)+1, MaxPaths)
	}
	p := &path{id: id, kind: kind, state: unvalidated}
	m.insert(p)
	m.probe(p, cause)
	return nil
}

// RemovePath forgets a path the driver closed or found dead. If it was
// current, the best usable path replaces it at once; with none, the
// connection has no current path and a circuit is asked for.
func (m *Machine) RemovePath(now time.Time, id PathID) []Output {
	m.begin(now)
	p := m.known(id)
	if p == nil {
		return m.end()
	}
	m.remove(p)
	switch {
	case p == m.cur:
		p.state = failed // gone: it cannot stay current
		m.replaceCurrent(CausePathDead)
	case m.needsFallBack():
		// It may have been the circuit a FallBack was waiting for.
		m.requestFallBack(m.fallbackCause())
	}
	return m.end()
}

// Validated reports that a probe of the path succeeded, with the RTT it
// measured. A validation nobody asked for (the driver validated the path
// on its own, as a QUIC handshake does) is taken all the same.
func (m *Machine) Validated(now time.Time, id PathID, rtt time.Duration) []Output {
	m.begin(now)
	p := m.known(id)
	if p == nil || !m.goodRTT(rtt) {
		return m.end()
	}
	m.stats.Validations++
	doubt, wasSuspect := p.doubt, p.state == suspect
	p.probing, p.doubt, p.state, p.misses = false, 0, validated, 0
	p.sampleRTT(rtt, m.cfg.RTTGain)
	switch {
	case p == m.cur:
		if doubt != 0 || wasSuspect {
			m.stats.Kept++
			m.event(EventKept, p, nil, keptCause(doubt))
		}
	case m.cur != nil && m.cur.state == suspect:
		// Nothing was usable when the current path turned suspect (or
		// it would have been left): this path is the way out.
		m.replaceCurrent(CausePathDead)
		return m.end()
	case m.cur != nil && m.cur.doubt != 0 && p.kind == Direct:
		// A direct path proven since the address change beats one whose
		// re-validation is still out.
		m.switchTo(p, m.cur.doubt, false)
		return m.end()
	}
	m.evaluate(p)
	return m.end()
}

func keptCause(doubt Cause) Cause {
	if doubt != 0 {
		return doubt
	}
	return CausePathDead
}

// ProbeFailed reports that a probe of the path failed. If the path was
// current, the best usable path replaces it at once; with none, the
// connection has no current path and a circuit is asked for.
func (m *Machine) ProbeFailed(now time.Time, id PathID) []Output {
	m.begin(now)
	if p := m.known(id); p != nil {
		m.stats.ProbeFailures++
		m.failProbe(p)
	}
	return m.end()
}

// Observe feeds one measurement of a path: an RTT sample and the loss
// rate over the interval it closes, in [0, 1]. The RTT must be within
// [0, MaxRTT]. A sample shows the path carries packets, so it clears
// keep-alive misses and a suspect state (and the probe that was to
// settle it).
func (m *Machine) Observe(now time.Time, id PathID, rtt time.Duration, loss float64) []Output {
	m.begin(now)
	p := m.known(id)
	if p == nil || !m.goodRTT(rtt) || !m.goodLoss(loss) {
		return m.end()
	}
	p.sampleRTT(rtt, m.cfg.RTTGain)
	p.sampleLoss(loss, m.cfg.LossGain)
	p.misses = 0
	if p.state == suspect {
		// The sample answers what the suspect's probe asked; its
		// timeout must not fail a path that works.
		p.state, p.probing = validated, false
		m.stats.Recoveries++
		m.event(EventRecovered, p, nil, CausePathDead)
	}
	if p.state == validated {
		m.evaluate(p)
	}
	return m.end()
}

// KeepAliveMissed reports one keep-alive on the path that went
// unanswered. At Config.SuspectAfter in a row the path is suspect: it is
// probed, and if current it is left at once for the best validated path
// (or, with none, kept while a circuit is asked for).
func (m *Machine) KeepAliveMissed(now time.Time, id PathID) []Output {
	m.begin(now)
	p := m.known(id)
	if p == nil {
		return m.end()
	}
	p.misses++
	m.stats.Misses++
	if p.misses < m.cfg.SuspectAfter || p.state != validated {
		return m.end()
	}
	p.state, p.streak = suspect, 0
	m.stats.Suspects++
	m.event(EventSuspect, p, nil, CausePathDead)
	m.probe(p, CausePathDead)
	if p == m.cur {
		m.probeAlternatives()
		m.replaceCurrent(CausePathDead)
	}
	return m.end()
}

// LocalAddressChanged reports that a local interface or address changed.
// Every direct path is probed again; see addressChanged.
func (m *Machine) LocalAddressChanged(now time.Time) []Output {
	m.begin(now)
	m.stats.LocalAddressChanges++
	m.addressChanged(CauseLocalAddress)
	return m.end()
}

// ReflexiveChanged reports that STUN showed a new reflexive address: the
// NAT mapping changed (a NAT rebinding). Every direct path is probed
// again; see addressChanged.
func (m *Machine) ReflexiveChanged(now time.Time) []Output {
	m.begin(now)
	m.stats.ReflexiveChanges++
	m.addressChanged(CauseRebinding)
	return m.end()
}

// HandleTimer handles a timer that fell due. Stale timers are ignored.
func (m *Machine) HandleTimer(now time.Time, t Timer) []Output {
	m.begin(now)
	var live bool
	switch t.Kind {
	case TimerProbe:
		live = m.onProbeTimer(t)
	case TimerUpgrade:
		live = m.onUpgradeTimer(t)
	case TimerFallBack:
		live = m.onFallBackTimer(t)
	case TimerDwell:
		live = m.onDwellTimer(t)
	}
	if !live {
		m.stats.StaleTimers++
	}
	return m.end()
}

func (m *Machine) onProbeTimer(t Timer) bool {
	p := m.find(t.Path)
	if p == nil || !p.probing || p.probeSeq != t.seq {
		return false
	}
	m.stats.ProbeTimeouts++
	m.failProbe(p)
	return true
}

// known returns the path with the given id, counting an unknown one.
func (m *Machine) known(id PathID) *path {
	p := m.find(id)
	if p == nil {
		m.stats.Invalid.UnknownPath++
	}
	return p
}

func (m *Machine) goodRTT(rtt time.Duration) bool {
	if rtt < 0 || rtt > MaxRTT {
		m.stats.Invalid.BadRTT++
		return false
	}
	return true
}

func (m *Machine) goodLoss(loss float64) bool {
	if math.IsNaN(loss) || loss < 0 || loss > 1 {
		m.stats.Invalid.BadLoss++
		return false
	}
	return true
}
