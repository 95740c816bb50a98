package migration

import "time"

// This file holds the machine's own timers: asking for a circuit while
// no path is usable, asking for a punch while on a circuit, and waking
// up when a dwell ends.

// needsFallBack reports whether the connection has no path it can rely
// on: none at all, or a suspect one kept only because nothing else is
// usable.
func (m *Machine) needsFallBack() bool {
	return m.cur == nil || m.cur.state == suspect
}

// fallbackCause is the cause to give a FallBack asked for now.
func (m *Machine) fallbackCause() Cause {
	if m.cur == nil && m.lost.cause != 0 {
		return m.lost.cause
	}
	return CausePathDead
}

// circuitProbing reports whether a new circuit path is being validated:
// a FallBack would ask for what is already on its way. The probe of a
// suspect (or failed) circuit is not one: it asks whether that circuit
// still lives, and waiting for its timeout before asking for another
// would add ProbeTimeout to the stall when a relay dies.
func (m *Machine) circuitProbing() bool {
	for _, p := range m.paths {
		if p.kind == Circuit && p.probing && p.state == unvalidated {
			return true
		}
	}
	return false
}

// requestFallBack asks for a circuit, unless one is on its way or a
// FallBack is already out (its timer asks again).
func (m *Machine) requestFallBack(cause Cause) {
	if m.fallback.armed || m.circuitProbing() {
		return
	}
	m.fallback.cause = cause
	m.askFallBack()
}

func (m *Machine) askFallBack() {
	m.stats.FallBacks++
	m.emit(FallBack{Cause: m.fallback.cause})
	m.event(EventFallBack, nil, nil, m.fallback.cause)
	m.armFallBack()
}

func (m *Machine) armFallBack() {
	m.fallback.armed = true
	m.fallback.seq = m.nextSeq()
	m.emit(SetTimer{At: m.now.Add(m.jitter(m.fallback.wait)), Timer: Timer{Kind: TimerFallBack, seq: m.fallback.seq}})
}

// onFallBackTimer asks for a circuit again, with a doubled wait, while
// no usable path has come.
func (m *Machine) onFallBackTimer(t Timer) bool {
	if !m.fallback.armed || t.seq != m.fallback.seq {
		return false
	}
	m.fallback.armed = false
	switch {
	case !m.needsFallBack():
		m.fallback.wait = m.cfg.FallBackRetry
	case m.circuitProbing():
		m.armFallBack() // the circuit's probe decides; look again later
	default:
		m.fallback.wait = min(2*m.fallback.wait, m.cfg.MaxFallBackRetry)
		m.askFallBack()
	}
	return true
}

// directPending reports whether a direct path is validated or being
// validated: a punch would find what is already there.
func (m *Machine) directPending() bool {
	for _, p := range m.paths {
		if p.kind == Direct && (p.probing || p.state == validated) {
			return true
		}
	}
	return false
}

// armUpgrade arms the upgrade timer, unless it is armed.
func (m *Machine) armUpgrade() {
	if m.upgrade.armed {
		return
	}
	m.upgrade.armed = true
	m.upgrade.seq = m.nextSeq()
	m.emit(SetTimer{At: m.now.Add(m.jitter(m.upgrade.wait)), Timer: Timer{Kind: TimerUpgrade, seq: m.upgrade.seq}})
}

// restartUpgrade starts the upgrade backoff over, from now.
func (m *Machine) restartUpgrade() {
	m.upgrade.wait = m.cfg.UpgradeBackoff
	if m.cur != nil && m.cur.kind == Circuit {
		m.upgrade.armed = false // the armed timer turns stale
		m.armUpgrade()
	}
}

// onUpgradeTimer asks for a punch while on a circuit, and doubles the
// wait for the next.
func (m *Machine) onUpgradeTimer(t Timer) bool {
	if !m.upgrade.armed || t.seq != m.upgrade.seq {
		return false
	}
	m.upgrade.armed = false
	switch {
	case m.cur == nil || m.cur.kind != Circuit:
		// Off the circuit: the next switch to one arms the timer again.
	case m.directPending():
		m.armUpgrade() // a direct path is there or coming; look again later
	default:
		m.stats.UpgradesTried++
		m.emit(TryUpgrade{})
		m.event(EventTryUpgrade, m.cur, nil, CauseUpgrade)
		m.upgrade.wait = min(2*m.upgrade.wait, m.cfg.MaxUpgradeBackoff)
		m.armUpgrade()
	}
	return true
}

// armDwell arms a timer for the end of the dwell, unless one is armed for
// that time.
func (m *Machine) armDwell() {
	if m.dwellTimer.armed && m.dwellTimer.at.Equal(m.dwellUntil) {
		return
	}
	m.dwellTimer.armed, m.dwellTimer.at, m.dwellTimer.seq = true, m.dwellUntil, m.nextSeq()
	m.emit(SetTimer{At: m.dwellUntil, Timer: Timer{Kind: TimerDwell, seq: m.dwellTimer.seq}})
}

// onDwellTimer reconsiders a switch the dwell held back, without waiting
// for the next sample.
func (m *Machine) onDwellTimer(t Timer) bool {
	if !m.dwellTimer.armed || t.seq != m.dwellTimer.seq {
		return false
	}
	m.dwellTimer.armed = false
	m.evaluate(nil)
	return true
}

// jitter spreads d uniformly over [0.75 d, 1.25 d), so that the
// connections of a node that all lost their paths at once do not ask in
// lockstep.
func (m *Machine) jitter(d time.Duration) time.Duration {
	half := int64(d / 2)
	if half <= 0 {
		return d
	}
	return d - d/4 + time.Duration(m.rng.Int64N(half))
}
