package membership

import (
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Joining: JOIN to a contact, FORWARD_JOIN random walks from it.

// Join asks contact to let this node into the overlay. The machine opens
// a link to contact (Connect), sends JOIN once it is up, and adds contact
// to the active view when its NEIGHBOR_ACCEPT comes back. Until then it
// sends JOIN again after JoinTimeout, doubling the wait each time up to
// MaxJoinBackoff times JoinTimeout, even if other nodes have made it
// their neighbour meanwhile (they may be outside the overlay too). A new
// Join replaces the one in progress. The machine uses contact again if
// the node later finds itself with no peers at all. Join also starts the
// shuffle timer. A contact that is ourselves or cannot be encoded is
// counted (Stats.Drop.BadPeer) and ignored.
func (m *Machine) Join(now time.Time, contact Peer) []Output {
	m.begin(now)
	if contact.ID == m.self.ID || contact.validate() != nil {
		m.stats.Drop.BadPeer++
		return m.end()
	}
	m.stats.Joins++
	m.contact, m.hasContact = contact.clone(), true
	m.armShuffle()
	m.startJoin(contact, 0)
	return m.end()
}

// MaxJoinBackoff bounds the wait between two JOINs, in JoinTimeouts.
const MaxJoinBackoff = 8

// startJoin sends (or, once the link is up, will send) a JOIN to contact,
// replacing any JOIN in progress. tries is how many were sent before.
func (m *Machine) startJoin(contact Peer, tries int) {
	if old := m.join.contact.ID; m.join.on && old != contact.ID {
		if r := m.pending[old]; r != nil && r.join {
			delete(m.pending, old)
			m.release(old)
		}
	}
	m.join.on = false
	if m.active.has(contact.ID) {
		return // already a neighbour: nothing to join
	}
	// A NEIGHBOR request to the contact becomes the JOIN; its link stays.
	delete(m.pending, contact.ID)
	m.join.on, m.join.contact, m.join.seq, m.join.tries = true, contact.clone(), m.nextSeq(), tries
	r := &request{peer: contact.clone(), join: true, seq: m.join.seq}
	m.pending[contact.ID] = r
	if l := m.linkFor(contact); l.up {
		m.sendRequest(r)
	}
	wait := m.cfg.JoinTimeout * time.Duration(min(1<<tries, MaxJoinBackoff))
	m.setTimer(wait, Timer{Kind: TimerJoin, Peer: contact.ID, seq: m.join.seq})
}

// onJoinTimeout: the contact has not accepted. Send JOIN again, over the
// same link if it is up, and meanwhile fill the active view from the
// passive view if there is room.
func (m *Machine) onJoinTimeout() {
	c := m.join.contact
	if r := m.pending[c.ID]; r != nil && r.join {
		delete(m.pending, c.ID)
	}
	m.stats.JoinRetries++
	m.fill()
	m.startJoin(c, m.join.tries+1)
}

// onJoin: we are the contact. As in the paper we take the joiner into our
// active view at once (dropping a random member if full) and send a
// FORWARD_JOIN walk with TTL ARWL to every other active peer.
func (m *Machine) onJoin(from identity.NodeID, msg Message) {
	p := msg.Peer
	if p.ID != from {
		m.stats.Drop.Spoofed++
		return
	}
	if m.active.has(from) {
		// A JOIN sent again because our accept was lost: accept again,
		// but the walks went out the first time.
		m.active.update(p)
		m.send(p, Message{Type: MsgNeighborAccept})
		return
	}
	m.stats.JoinsAccepted++
	m.addActive(p, true)
	for _, q := range m.active.peers {
		if q.ID != p.ID {
			m.send(q, Message{Type: MsgForwardJoin, TTL: uint8(m.cfg.ARWL), Peer: p})
		}
	}
}

// onForwardJoin advances a random walk announcing the new node n. The
// walk ends here when its TTL is 0 or we have no one else to pass it to;
// on its way, at TTL == PRWL, n goes into our passive view.
func (m *Machine) onForwardJoin(from identity.NodeID, msg Message) {
	n := msg.Peer
	if n.ID == m.self.ID {
		m.stats.Drop.Self++
		return
	}
	ttl := int(msg.TTL)
	if ttl == 0 || m.active.len() <= 1 {
		m.endWalk(n)
		return
	}
	if ttl == m.cfg.PRWL {
		m.addPassive(n)
	}
	next, ok := m.active.pick(m.rng, func(q Peer) bool { return q.ID == from || q.ID == n.ID })
	if !ok {
		m.endWalk(n)
		return
	}
	m.send(next, Message{Type: MsgForwardJoin, TTL: uint8(ttl - 1), Peer: n})
}

// endWalk: a FORWARD_JOIN walk ends here, so n should become our
// neighbour. The paper adds n to the active view at once; we send n a
// high-priority NEIGHBOR and add it when n accepts (DESIGN.md: a peer
// enters the active view only once its reply has come back).
func (m *Machine) endWalk(n Peer) {
	m.stats.ForwardJoinEnds++
	if m.active.has(n.ID) || m.pending[n.ID] != nil {
		return
	}
	if len(m.pending) >= MaxPendingRequests {
		m.stats.Drop.Limit++
		m.addPassive(n)
		return
	}
	m.startRequest(n, true, false)
}
