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
// It counts the ticks that find a free active slot. An empty view needs
// no escalation (its requests already go out with high priority); a full
// one resets the count and the backoff. After StarveTicks*starveBackoff
// such ticks in a row the next NEIGHBOR is sent with high priority and
// the backoff doubles, so that a node which keeps a free slot only
// because every full node refuses it does not evict others' neighbours
// more than once per few minutes.
//
// It also counts the ticks that find the passive view short of full while
// the contact is not a neighbour. After StarveTicks*isolatedBackoff of
// them the contact gets a high-priority NEIGHBOR: the one way out of a
// small component whose members know only each other.
func (m *Machine) checkStarved() {
	if m.cfg.StarveTicks == 0 {
		return
	}
	switch {
	case m.active.empty():
		m.starved = 0
	case m.active.full():
		m.starved, m.starveBackoff, m.escalate = 0, 1, false
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
		if m.isolated >= m.cfg.StarveTicks*m.isolatedBackoff && len(m.pending) < MaxPendingRequests {
			m.isolated = 0
			m.isolatedBackoff = min(2*m.isolatedBackoff, MaxStarveBackoff)
			m.stats.ContactRequests++
			m.startRequest(m.contact, false, true)
		}
	}
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
// SHUFFLE is taken, so nobody can stuff our passive view unasked.
func (m *Machine) onShuffleReply(msg Message) {
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
