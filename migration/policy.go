package migration

// This file holds the decisions: which path is current, and when that
// changes. See "Policy" in the package doc.

// maxBackoffSteps bounds Machine.backoff; Config.dwell stops doubling at
// MaxDwell long before.
const maxBackoffSteps = 64

// probe emits a Probe for p and arms its timeout, unless one is out.
func (m *Machine) probe(p *path, cause Cause) {
	if p.probing {
		return
	}
	p.probing, p.probeSeq, p.probeCause = true, m.nextSeq(), cause
	m.stats.Probes++
	m.emit(Probe{Path: p.id})
	m.event(EventProbe, p, nil, cause)
	m.emit(SetTimer{At: m.now.Add(m.cfg.ProbeTimeout), Timer: Timer{Kind: TimerProbe, Path: p.id, seq: p.probeSeq}})
}

// failProbe marks p failed after a failed or timed-out probe. A failed
// current path is replaced at once.
func (m *Machine) failProbe(p *path) {
	cause := p.probeCause
	if p.doubt != 0 {
		cause = p.doubt
	}
	p.probing, p.doubt, p.state, p.streak = false, 0, failed, 0
	m.event(EventProbeFailed, p, nil, cause)
	switch {
	case p == m.cur:
		m.replaceCurrent(lossCause(cause))
	case m.needsFallBack():
		// The path we waited on (say, the circuit asked for) is no good.
		m.requestFallBack(m.fallbackCause())
	}
}

// lossCause is the cause of losing a path whose probe, made for cause,
// failed: an address change if that was what the probe checked, else
// path-dead.
func lossCause(cause Cause) Cause {
	if cause == CauseRebinding || cause == CauseLocalAddress {
		return cause
	}
	return CausePathDead
}

// probeAlternatives probes the paths that might serve once the current
// one turned suspect: those failed or suspect, with no probe out.
func (m *Machine) probeAlternatives() {
	for _, p := range m.paths {
		if p != m.cur && !p.probing && (p.state == failed || p.state == suspect) {
			m.probe(p, CausePathDead)
		}
	}
}

// addressChanged probes every direct path again: an address change may
// have killed them (a new local address), moved them (a NAT rebinding),
// or revived them. Until its probe answers, a validated direct path is in
// doubt: no candidate, though the current path stays current. A probe
// that was out is superseded, as it went from the old address. On a
// circuit, a punch is worth trying again soon: the upgrade backoff
// starts over. With no usable path, a circuit is asked for at once, and
// the FallBack backoff starts over: the circuit builds that failed went
// from the old address, or found no route while the host had none.
func (m *Machine) addressChanged(cause Cause) {
	for _, p := range m.paths {
		if p.kind != Direct {
			continue
		}
		if p.usable() {
			p.doubt = cause
		}
		p.probing, p.streak = false, 0
		m.probe(p, cause)
	}
	m.restartUpgrade()
	if m.needsFallBack() {
		m.fallback.armed, m.fallback.wait = false, m.cfg.FallBackRetry // the armed timer turns stale
		m.requestFallBack(m.fallbackCause())
	}
}

// evaluate runs the quality rules after fresh data on fresh (nil: no new
// data, as when the dwell ends). With no current path, the best usable
// path becomes current at once.
func (m *Machine) evaluate(fresh *path) {
	if m.cur == nil {
		m.adopt()
		return
	}
	c := m.cur
	if !c.eligible() {
		return // suspect or in doubt: the liveness rules decide, not quality
	}
	m.updateStreaks(fresh)
	if c.kind == Circuit {
		if d := m.bestUpgrade(c); d != nil {
			m.tryUpgrade(d)
			return
		}
	}
	m.tryQuality()
}

// candidate reports whether x competes with the current path c under the
// quality rules. A direct path against a circuit is an upgrade instead.
func (m *Machine) candidate(x, c *path) bool {
	return x != c && x.eligible() && !(x.kind == Direct && c.kind == Circuit)
}

// compared is x's cost as compared with the current path c: biased
// against circuits when c is direct.
func (m *Machine) compared(x, c *path) float64 {
	if x.kind == Circuit && c.kind == Direct {
		return x.biased(&m.cfg)
	}
	return x.cost(&m.cfg)
}

// beats reports whether x is better than c by both the relative margin
// and the absolute minimum.
func (m *Machine) beats(x, c *path) bool {
	cx, cc := m.compared(x, c), c.cost(&m.cfg)
	return cx*(1+m.cfg.Margin) < cc && cc-cx >= secs(m.cfg.MinImprovement)
}

// updateStreaks checks the candidates against the sample just taken. A
// sample of the current path can break any candidate's streak; only a
// sample of the candidate itself extends it, so that a path measured once
// (at its validation, say) cannot win on old news.
func (m *Machine) updateStreaks(fresh *path) {
	if fresh == nil {
		return
	}
	c := m.cur
	for _, x := range m.paths {
		if !m.candidate(x, c) || (fresh != c && fresh != x) {
			continue
		}
		switch {
		case !m.beats(x, c):
			x.streak = 0
		case fresh == x:
			if x.streak == 0 {
				x.since = m.now
			}
			x.streak++
		}
	}
}

// held reports whether x's streak is long enough for a switch.
func (m *Machine) held(x *path) bool {
	return x.streak >= max(1, m.cfg.HoldSamples) && m.now.Sub(x.since) >= m.cfg.HoldTime
}

// tryQuality switches to the best candidate that has held, unless the
// dwell says wait.
func (m *Machine) tryQuality() {
	c := m.cur
	var best *path
	var bestCost float64
	pending := false
	for _, x := range m.paths {
		if !m.candidate(x, c) || x.streak == 0 {
			continue
		}
		if !m.held(x) {
			pending = true
			continue
		}
		if cx := m.compared(x, c); best == nil || cx < bestCost {
			best, bestCost = x, cx
		}
	}
	switch {
	case best == nil:
		if pending {
			m.stats.SuppressedHold++
		}
	case m.now.Before(m.dwellUntil):
		m.suppress(best, CauseDegraded)
	default:
		m.switchTo(best, CauseDegraded, true)
	}
}

// bestUpgrade returns the cheapest eligible direct path that is not
// clearly worse than the circuit c, or nil.
func (m *Machine) bestUpgrade(c *path) *path {
	limit := c.biased(&m.cfg)
	var best *path
	for _, x := range m.paths {
		if x.kind == Direct && x.eligible() && x.cost(&m.cfg) <= limit &&
			(best == nil || x.cost(&m.cfg) < best.cost(&m.cfg)) {
			best = x
		}
	}
	return best
}

// tryUpgrade moves from a circuit to the direct path d. An upgrade needs
// no hold, and waits for no dwell, except right after a degraded switch:
// going back to direct is then a quality switch like the one before, or
// direct and circuit could trade places as fast as a path's quality
// wobbles around the bias.
func (m *Machine) tryUpgrade(d *path) {
	quality := m.lastCause == CauseDegraded
	if quality && m.now.Before(m.dwellUntil) {
		m.suppress(d, CauseUpgrade)
		return
	}
	m.switchTo(d, CauseUpgrade, quality)
}

// suppress notes a switch to x that the dwell holds back, and makes sure
// it is reconsidered when the dwell ends.
func (m *Machine) suppress(x *path, cause Cause) {
	m.stats.SuppressedDwell++
	if !m.heldUntil.Equal(m.dwellUntil) {
		m.heldUntil = m.dwellUntil
		m.event(EventSuppressed, x, m.cur, cause)
	}
	m.armDwell()
}

// switchTo makes x current. quality says whether the switch was a
// quality switch, which backs the dwell off.
func (m *Machine) switchTo(x *path, cause Cause, quality bool) {
	from := m.cur
	m.cur, m.lastCause = x, cause
	for _, p := range m.paths {
		p.streak = 0 // streaks were against the old current path
	}
	m.stats.Switches.add(cause)
	m.emit(Switch{Path: x.id, Cause: cause})
	m.event(EventSwitch, x, from, cause)
	m.startDwell(quality)
	m.fallback.armed, m.fallback.wait = false, m.cfg.FallBackRetry
	if cause == CauseUpgrade {
		m.upgrade.wait = m.cfg.UpgradeBackoff
	}
	if x.kind == Circuit {
		m.armUpgrade()
	} else {
		m.upgrade.armed = false // off the circuit: the armed timer turns stale
	}
}

// startDwell sets the earliest time of the next quality switch: Dwell
// after any switch, and after a quality switch the backed-off dwell.
func (m *Machine) startDwell(quality bool) {
	d := m.cfg.Dwell
	if quality {
		if !m.lastQuality.IsZero() && m.now.Sub(m.lastQuality) >= m.cfg.BackoffReset {
			m.backoff = 0
		}
		d = m.cfg.dwell(m.backoff)
		m.backoff = min(m.backoff+1, maxBackoffSteps)
		m.lastQuality = m.now
	}
	if until := m.now.Add(d); until.After(m.dwellUntil) {
		m.dwellUntil = until
	}
}

// replaceCurrent leaves the current path, which is suspect, failed or
// removed, for the best usable path, at once. With none, a suspect path
// stays current (it is all there is, and it may come back) and a dead
// one is dropped; either way a circuit is asked for.
func (m *Machine) replaceCurrent(reason Cause) {
	from := m.cur
	if x := m.pickBest(from); x != nil {
		m.switchTo(x, m.forcedCause(from, x, reason), false)
		return
	}
	if from != nil && from.usable() {
		m.requestFallBack(reason)
		return
	}
	m.lose(reason)
}

// adopt makes the best usable path current when there is none.
func (m *Machine) adopt() {
	x := m.pickBest(nil)
	if x == nil {
		return
	}
	cause := m.lost.cause
	if cause == 0 {
		cause = CauseInitial
	}
	m.switchTo(x, m.forcedCause(nil, x, cause), false)
}

// lose drops the current path with nothing to replace it.
func (m *Machine) lose(reason Cause) {
	from := m.cur
	m.lost.cause, m.lost.direct = reason, from != nil && from.kind == Direct
	m.cur = nil
	m.event(EventLost, nil, from, reason)
	m.requestFallBack(reason)
}

// forcedCause names a switch away from a lost path: a fallback when it
// goes from direct to a circuit, else the reason the path was lost.
func (m *Machine) forcedCause(from, to *path, reason Cause) Cause {
	fromDirect := m.lost.direct
	if from != nil {
		fromDirect = from.kind == Direct
	}
	if fromDirect && to.kind == Circuit {
		return CauseFallback
	}
	return reason
}

// pickBest returns the path to move to other than exclude: the best
// eligible one, or failing that the best validated one in doubt (better
// than no path while its re-validation is out).
func (m *Machine) pickBest(exclude *path) *path {
	if x := m.bestUsable(exclude, false); x != nil {
		return x
	}
	return m.bestUsable(exclude, true)
}

// bestUsable prefers the cheapest direct path unless it is clearly worse
// than the cheapest circuit. Ties go to the lower ID.
func (m *Machine) bestUsable(exclude *path, inDoubt bool) *path {
	var direct, circuit *path
	for _, x := range m.paths {
		if x == exclude || x.state != validated || (x.doubt != 0) != inDoubt {
			continue
		}
		best := &direct
		if x.kind == Circuit {
			best = &circuit
		}
		if *best == nil || x.cost(&m.cfg) < (*best).cost(&m.cfg) {
			*best = x
		}
	}
	if direct != nil && (circuit == nil || direct.cost(&m.cfg) <= circuit.biased(&m.cfg)) {
		return direct
	}
	return circuit
}
