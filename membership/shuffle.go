package membership

import (
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// The passive view: periodic SHUFFLE walks and their replies.

// armShuffle starts the shuffle timer the first time the node joins or
// gains a neighbour. From then on it runs for the machine's life.
func (m *Machine) armShuffle() {
	if m.shuffleArmed {
		return
	}
	m.shuffleArmed = true
	m.scheduleShuffle()
}

// scheduleShuffle sets the next tick, uniformly in [I/2, 3I/2).
func (m *Machine) scheduleShuffle() {
	m.shuffleSeq = m.nextSeq()
	i := m.cfg.ShuffleInterval
	d := i/2 + time.Duration(m.rng.Int64N(int64(i)))
	m.setTimer(d, Timer{Kind: TimerShuffle, seq: m.shuffleSeq})
}

// onShuffleTick: forget who refused us, rejoin through the last contact
// if we know nobody at all, escalate if starved too long, fill free active
// slots from the passive view, and start a SHUFFLE.
func (m *Machine) onShuffleTick() {
	m.scheduleShuffle()
	clear(m.rejected)
	m.checkStarved()
	if m.active.empty() && m.passive.empty() && !m.join.on && m.hasContact {
		m.stats.Rejoins++
		m.startJoin(m.contact, 0)
	}
	m.fill()
	if !m.active.empty() {
		m.startShuffle()
	}
}

// checkStarved runs at each shuffle tick, before fill (Config.StarveTicks).
//
// It counts the ticks that find the active view at most half full. An
// empty view needs no escalation (its requests already go out with high
// priority); a full one resets the count and the backoff. After
// StarveTicks*starveBackoff such ticks in a row the next NEIGHBOR is sent
// with high priority and the backoff doubles. A node with more than half
// its slots filled is well connected and asks politely, as in the paper:
// were it to escalate, the neighbour it evicts would be one short in turn
// and the eviction would travel the overlay.
//
// It also counts the ticks that find the passive view short of full while
// the contact is not a neighbour; after StarveTicks*isolatedBackoff of
// them it probes the contact (probeContact).
func (m *Machine) checkStarved() {
	if m.cfg.StarveTicks == 0 {
		return
	}
	switch {
	case m.active.empty():
		m.starved = 0
	case m.active.full():
		m.starved, m.starveBackoff, m.escalate = 0, 1, false
	case 2*m.active.len() > m.cfg.ActiveSize:
		m.starved = 0
	default:
		m.starved++
		if m.starved >= m.cfg.StarveTicks*m.starveBackoff {
			m.starved = 0
			m.starveBackoff = min(2*m.starveBackoff, MaxStarveBackoff)
			m.escalate = true
			m.stats.Escalations++
		}
	}

	c := m.contact.ID
	switch {
	case m.passive.full():
		m.isolated, m.isolatedBackoff = 0, 1
	case !m.hasContact || m.active.empty() || m.active.has(c) || m.pending[c] != nil:
		m.isolated = 0
	default:
		m.isolated++
		if m.isolated >= m.cfg.StarveTicks*m.isolatedBackoff {
			m.isolated = 0
			m.isolatedBackoff = min(2*m.isolatedBackoff, MaxStarveBackoff)
			m.probeContact()
		}
	}
}

// probeContact sends the contact a SHUFFLE with TTL 0, which it answers
// itself with a sample of its passive view. A passive view that does not
// fill is normal in an overlay of fewer than ActiveSize+PassiveSize+1
// nodes, but it is also what a node sees in a small island that knows
// nobody outside; the reply tells the two apart (onProbeReply).
func (m *Machine) probeContact() {
	peers := m.active.sample(m.rng, m.cfg.ShuffleActive, nil)
	peers = append(peers, m.passive.sample(m.rng, m.cfg.ShufflePassive, nil)...)
	m.probeOut = true
	m.stats.ContactProbes++
	m.sendOneShot(m.contact, Message{Type: MsgShuffle, TTL: 0, Peer: m.self, Peers: peers})
}

// onProbeReply takes the contact's sample into the passive view. If we
// knew none of the nodes it names, the contact lives in a part of the
// overlay we have no neighbour in, and we send one of them, at random, a
// high-priority NEIGHBOR: the one way out of a small component whose
// members know only each other. If we knew any of them (the usual answer
// in a small overlay), nothing more is done.
func (m *Machine) onProbeReply(msg Message) {
	var strangers []Peer
	for _, p := range msg.Peers {
		if p.ID == m.self.ID || m.active.has(p.ID) || m.passive.has(p.ID) || m.pending[p.ID] != nil {
			m.integrate(msg.Peers, nil)
			return
		}
		strangers = append(strangers, p)
	}
	m.integrate(msg.Peers, nil)
	if len(strangers) == 0 || len(m.pending) >= MaxPendingRequests {
		return
	}
	m.stats.IsolationJoins++
	m.startRequest(strangers[m.rng.IntN(len(strangers))], false, true)
}

// startShuffle sends a random active peer a SHUFFLE carrying ourselves
// (as its origin), ShuffleActive other active peers and ShufflePassive
// passive peers.
func (m *Machine) startShuffle() {
	target, ok := m.active.pick(m.rng, nil)
	if !ok {
		return
	}
	peers := m.active.sample(m.rng, m.cfg.ShuffleActive, func(p Peer) bool { return p.ID == target.ID })
	peers = append(peers, m.passive.sample(m.rng, m.cfg.ShufflePassive, nil)...)
	m.shuffleSent, m.shuffleOut = ids(peers), true
	m.stats.Shuffles++
	m.send(target, Message{Type: MsgShuffle, TTL: uint8(m.cfg.ShuffleTTL), Peer: m.self, Peers: peers})
}

// onShuffle advances a SHUFFLE walk or ends it here. The walk goes on
// while its TTL, less one for this hop, is above zero and we have a
// neighbour other than the sender. Where it ends we answer the origin
// with as many passive peers as it sent (itself included), then take what
// it sent into our passive view, evicting first the peers we answered
// with.
func (m *Machine) onShuffle(from identity.NodeID, msg Message) {
	origin := msg.Peer
	if origin.ID == m.self.ID {
		m.stats.Drop.Self++
		return
	}
	if origin.ID == from {
		m.active.update(origin)
		m.passive.update(origin)
	}
	ttl := msg.TTL
	if ttl > 0 {
		ttl--
	}
	if ttl > 0 && m.active.len() > 1 {
		next, ok := m.active.pick(m.rng, func(p Peer) bool { return p.ID == from || p.ID == origin.ID })
		if ok {
			m.stats.ShufflesForward++
			m.send(next, Message{Type: MsgShuffle, TTL: ttl, Peer: origin, Peers: msg.Peers})
			return
		}
	}
	n := min(1+len(msg.Peers), MaxShufflePeers)
	reply := m.passive.sample(m.rng, n, func(p Peer) bool { return p.ID == origin.ID })
	m.stats.ShufflesAnswered++
	m.sendOneShot(origin, Message{Type: MsgShuffleReply, Peers: reply})
	received := append([]Peer{origin}, msg.Peers...)
	m.integrate(received, ids(reply))
}

// onShuffleReply takes the peers of a SHUFFLE_REPLY into the passive
// view, evicting first the peers our SHUFFLE sent. Only one reply per
// SHUFFLE is taken, so nobody can stuff our passive view unasked. A reply
// from the contact while a probe is out answers the probe.
func (m *Machine) onShuffleReply(from identity.NodeID, msg Message) {
	if m.probeOut && from == m.contact.ID {
		m.probeOut = false
		m.stats.ShuffleReplies++
		m.onProbeReply(msg)
		return
	}
	if !m.shuffleOut {
		m.stats.Drop.Unexpected++
		return
	}
	m.shuffleOut = false
	m.stats.ShuffleReplies++
	m.integrate(msg.Peers, m.shuffleSent)
	m.shuffleSent = nil
}

// integrate adds peers to the passive view, skipping ourselves and peers
// we know. When the view is full it evicts the peers in prefer first (in
// order), then random ones, never one this call added.
func (m *Machine) integrate(peers []Peer, prefer []identity.NodeID) {
	var added []identity.NodeID
	fresh := func(p Peer) bool { return slices.Contains(added, p.ID) }
	for _, p := range peers {
		if p.ID == m.self.ID || m.active.has(p.ID) || m.passive.has(p.ID) {
			continue
		}
		if m.passive.full() {
			evicted := false
			for len(prefer) > 0 && !evicted {
				_, evicted = m.passive.remove(prefer[0])
				prefer = prefer[1:]
			}
			if !evicted {
				v, ok := m.passive.pick(m.rng, func(q Peer) bool { return fresh(q) })
				if !ok {
					return // the whole view is what we just added
				}
				m.passive.remove(v.ID)
			}
		}
		m.passive.add(p)
		added = append(added, p.ID)
	}
}
