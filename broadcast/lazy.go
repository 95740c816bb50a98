package broadcast

import (
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// maxAnnouncers bounds the announcers remembered per awaited message. Each
// neighbour counts once; HyParView's active view holds 5.
const maxAnnouncers = 16

// missingMsg is an announced message not yet received: the paper's
// "missing" entries for one ID, in order of arrival, and the generation of
// the one timer (timeout1, then timeout2 after each GRAFT) armed for it.
type missingMsg struct {
	ann []announcer
	gen uint64
}

type announcer struct {
	peer  identity.NodeID
	round uint16
}

// add records peer's announcement; false if the list is full.
func (mm *missingMsg) add(peer identity.NodeID, round uint16) bool {
	for _, a := range mm.ann {
		if a.peer == peer {
			return true
		}
	}
	if len(mm.ann) >= maxAnnouncers {
		return false
	}
	mm.ann = append(mm.ann, announcer{peer: peer, round: round})
	return true
}

// drop forgets peer's announcement.
func (mm *missingMsg) drop(peer identity.NodeID) {
	for i, a := range mm.ann {
		if a.peer == peer {
			mm.ann = append(mm.ann[:i], mm.ann[i+1:]...)
			return
		}
	}
}

// closest returns the announcement with the smallest round, the first
// such on a tie.
func (mm *missingMsg) closest() (announcer, bool) {
	if len(mm.ann) == 0 {
		return announcer{}, false
	}
	best := mm.ann[0]
	for _, a := range mm.ann[1:] {
		if a.round < best.round {
			best = a
		}
	}
	return best, true
}

// awaitAnnounced records an announcement of an unknown message and, for
// the first one, arms timeout1.
func (m *Machine) awaitAnnounced(now time.Time, out []Output, from identity.NodeID, a Announcement) []Output {
	mm, ok := m.missing[a.ID]
	if !ok {
		if len(m.missing) >= m.cfg.MaxMissing {
			m.stats.Drops.MissingFull++
			return out
		}
		mm = &missingMsg{gen: m.nextGen()}
		m.missing[a.ID] = mm
		out = append(out, SetTimer{At: now.Add(m.cfg.MissingTimeout), Timer: Timer{kind: timerMissing, gen: mm.gen, id: a.ID}})
	}
	if !mm.add(from, a.Round) {
		m.stats.Drops.MissingFull++
	}
	return out
}

// HandleTimer handles a timer that a SetTimer asked for. Timers that are
// no longer wanted, or unknown, do nothing.
func (m *Machine) HandleTimer(now time.Time, t Timer) []Output {
	switch t.kind {
	case timerFlush:
		if t.gen == 0 || t.gen != m.flushGen {
			return nil
		}
		m.flushGen = 0
		return m.flushAll(nil)
	case timerMissing:
		return m.onMissingTimeout(now, t)
	case timerSweep:
		if t.gen == 0 || t.gen != m.sweepGen {
			return nil
		}
		m.sweepGen = 0
		if m.cache.sweep(now) == 0 {
			return nil
		}
		return m.armSweep(now, nil)
	}
	return nil
}

// onMissingTimeout is Algorithm 1's "upon Timer(mID)": graft the first
// remaining announcer and give the next one SecondTimeout to be needed.
func (m *Machine) onMissingTimeout(now time.Time, t Timer) []Output {
	mm, ok := m.missing[t.id]
	if !ok || mm.gen != t.gen {
		return nil
	}
	if _, ok := m.cache.get(now, t.id); ok {
		delete(m.missing, t.id)
		return nil
	}
	if len(mm.ann) == 0 {
		// Everyone who announced it was grafted (or went down) in vain.
		delete(m.missing, t.id)
		m.stats.MissingGaveUp++
		return nil
	}
	a := mm.ann[0]
	mm.ann = mm.ann[1:]
	mm.gen = m.nextGen()
	var out []Output
	m.makeEager(a.peer)
	m.stats.GraftsForMissing++
	out = m.sendGraft(out, a.peer, &Graft{HasID: true, ID: t.id, Round: a.round})
	return append(out, SetTimer{At: now.Add(m.cfg.SecondTimeout), Timer: Timer{kind: timerMissing, gen: mm.gen, id: t.id}})
}

// queueIHave queues an announcement for a lazy peer: sent at once when
// the peer's queue is full or LazyPushDelay is zero, else when the flush
// timer fires.
func (m *Machine) queueIHave(now time.Time, out []Output, peer identity.NodeID, a Announcement) []Output {
	q := append(m.pending[peer], a)
	if len(q) >= m.cfg.MaxIHaveBatch || m.cfg.LazyPushDelay == 0 {
		delete(m.pending, peer)
		return m.sendIHave(out, peer, q)
	}
	m.pending[peer] = q
	if m.flushGen == 0 {
		m.flushGen = m.nextGen()
		out = append(out, SetTimer{At: now.Add(m.cfg.LazyPushDelay), Timer: Timer{kind: timerFlush, gen: m.flushGen}})
	}
	return out
}

// flushAll sends every queued announcement, peers in ID order.
func (m *Machine) flushAll(out []Output) []Output {
	for _, p := range sortedPeers(m.pending) {
		out = m.sendIHave(out, p, m.pending[p])
	}
	clear(m.pending)
	return out
}

// sendIHave sends anns to peer in IHAVEs of at most MaxIHaveBatch each.
func (m *Machine) sendIHave(out []Output, peer identity.NodeID, anns []Announcement) []Output {
	for len(anns) > 0 {
		n := min(len(anns), m.cfg.MaxIHaveBatch)
		h := &IHave{Announcements: anns[:n]}
		out = m.send(out, peer, h, encode(h))
		anns = anns[n:]
	}
	return out
}

// armSweep arms the cache sweep timer if it is not armed.
func (m *Machine) armSweep(now time.Time, out []Output) []Output {
	if m.sweepGen != 0 {
		return out
	}
	m.sweepGen = m.nextGen()
	return append(out, SetTimer{At: now.Add(m.cfg.SweepInterval), Timer: Timer{kind: timerSweep, gen: m.sweepGen}})
}
