package membership

import (
	"github.com/mycelium-net/mycelium/internal/identity"
)

// The active view: NEIGHBOR requests, their replies, DISCONNECT, and
// repair from the passive view.

// addActive puts p, which is not ourselves and not active, into the
// active view, first dropping a random member if the view is full (the
// paper's addNodeActiveView). accepter is true when we add p because we
// accept its JOIN or NEIGHBOR: then we confirm its link with Connect and
// answer NEIGHBOR_ACCEPT, before NeighborUp so that the upper layers'
// first messages follow the accept.
func (m *Machine) addActive(p Peer, accepter bool) {
	m.passive.remove(p.ID)
	var queued *link
	if l := m.links[p.ID]; l != nil {
		queued = l
		delete(m.links, p.ID) // the link now belongs to the active view
	}
	if r := m.pending[p.ID]; r != nil {
		delete(m.pending, p.ID)
		if r.join {
			m.join.on = false
		}
	}
	if m.active.full() {
		m.evictRandom()
	}
	m.active.add(p)
	m.stats.NeighborUps++
	if accepter {
		m.stats.Connects++
		m.emit(Connect{Peer: p.clone()})
		m.send(p, Message{Type: MsgNeighborAccept})
	}
	if queued != nil {
		m.flushQueue(queued)
	}
	m.emit(NeighborUp{Peer: p.clone()})
	m.armShuffle()
}

// evictRandom drops a random active member to make room: it is told with
// DISCONNECT, its link is closed, and it moves to the passive view.
func (m *Machine) evictRandom() {
	v, ok := m.active.pick(m.rng, nil)
	if !ok {
		return
	}
	m.active.remove(v.ID)
	m.stats.Evictions++
	m.stats.NeighborDowns++
	m.send(v, Message{Type: MsgDisconnect})
	m.emit(Disconnect{Peer: v.ID})
	m.emit(NeighborDown{Peer: v.ID})
	m.addPassive(v)
}

// lostActive removes an active peer whose link failed. As in the paper,
// a failed peer does not go to the passive view.
func (m *Machine) lostActive(id identity.NodeID) {
	m.active.remove(id)
	m.stats.Failures++
	m.stats.NeighborDowns++
	m.emit(NeighborDown{Peer: id})
}

// addPassive adds p to the passive view, dropping a random member if it
// is full. Ourselves and peers already known are skipped.
func (m *Machine) addPassive(p Peer) {
	if p.ID == m.self.ID || m.active.has(p.ID) || m.passive.has(p.ID) {
		return
	}
	if m.passive.full() {
		if v, ok := m.passive.pick(m.rng, nil); ok {
			m.passive.remove(v.ID)
		}
	}
	m.passive.add(p)
}

// startRequest asks p to become a neighbour with NEIGHBOR, over a fresh
// link. walk marks the request at the end of a FORWARD_JOIN walk, force
// one to the contact from a node that seems isolated (see checkStarved);
// both go out with high priority.
func (m *Machine) startRequest(p Peer, walk, force bool) {
	r := &request{peer: p.clone(), walk: walk, force: force, seq: m.nextSeq()}
	m.pending[p.ID] = r
	m.stats.NeighborRequests++
	if l := m.linkFor(p); l.up {
		m.sendRequest(r)
	}
	m.setTimer(m.cfg.NeighborTimeout, Timer{Kind: TimerNeighbor, Peer: p.ID, seq: r.seq})
}

// sendRequest sends r's message over its link, now up. A NEIGHBOR's
// priority is decided now: high at the end of a walk, when our active
// view is empty and no other high-priority request is out (so a node
// alone forces its way back in once, and asks politely for the rest), or
// once after starving (see checkStarved).
func (m *Machine) sendRequest(r *request) {
	r.sent = true
	if r.join {
		m.send(r.peer, Message{Type: MsgJoin, Peer: m.self})
		return
	}
	prio := PriorityLow
	switch {
	case r.walk || r.force || (m.active.empty() && !m.highOut()):
		prio = PriorityHigh
	case m.escalate:
		prio = PriorityHigh
		m.escalate = false
	}
	r.high = prio == PriorityHigh
	m.send(r.peer, Message{Type: MsgNeighbor, Priority: prio, Peer: m.self})
}

// highOut reports whether a high-priority repair request is out. The map
// order does not matter: the answer is a boolean.
func (m *Machine) highOut() bool {
	for _, r := range m.pending {
		if r.sent && r.high && !r.walk && !r.force {
			return true
		}
	}
	return false
}

// requestFailed ends r without an accept. dead means the peer did not
// answer or its link failed: it leaves the passive view. A NEIGHBOR's
// failure makes repair try another peer; a JOIN's waits for its timer.
func (m *Machine) requestFailed(r *request, dead bool) {
	id := r.peer.ID
	delete(m.pending, id)
	if dead && !r.join {
		m.passive.remove(id)
	}
	m.release(id)
	if !r.join {
		m.fill()
	}
}

// fill asks passive peers to fill the free slots of the active view,
// counting requests already out. Peers that refused us since the last
// shuffle tick are not asked; peers that can accept inbound links are
// asked first.
func (m *Machine) fill() {
	free := m.cfg.ActiveSize - m.active.len() - len(m.pending)
	for ; free > 0 && len(m.pending) < MaxPendingRequests; free-- {
		c, ok := m.candidate()
		if !ok {
			return
		}
		m.startRequest(c, false, false)
	}
}

func (m *Machine) candidate() (Peer, bool) {
	skip := func(p Peer) bool {
		_, refused := m.rejected[p.ID]
		return refused || m.pending[p.ID] != nil
	}
	if c, ok := m.passive.pick(m.rng, func(p Peer) bool { return p.NoInbound || skip(p) }); ok {
		return c, true
	}
	return m.passive.pick(m.rng, skip)
}

// onNeighbor answers a NEIGHBOR request. High priority is always
// accepted; low priority only into a free slot.
func (m *Machine) onNeighbor(from identity.NodeID, msg Message) {
	p := msg.Peer
	if p.ID != from {
		m.stats.Drop.Spoofed++
		return
	}
	if m.active.has(from) {
		m.active.update(p)
		m.send(p, Message{Type: MsgNeighborAccept})
		return
	}
	if msg.Priority == PriorityHigh || !m.active.full() {
		m.stats.RequestsAccepted++
		m.addActive(p, true)
		return
	}
	m.stats.RequestsRejected++
	m.passive.update(p)
	m.send(p, Message{Type: MsgNeighborReject})
}

// onAccept completes our JOIN or NEIGHBOR: only now does the peer enter
// our active view. An accept we did not ask for is undone with
// DISCONNECT, so the accepter does not keep a one-sided neighbour.
func (m *Machine) onAccept(from identity.NodeID) {
	r := m.pending[from]
	if r == nil {
		if m.active.has(from) {
			return // a repeated accept
		}
		m.stats.Drop.Unexpected++
		m.send(Peer{ID: from}, Message{Type: MsgDisconnect})
		if m.links[from] == nil {
			m.emit(Disconnect{Peer: from})
		}
		return
	}
	m.stats.NeighborAccepted++
	m.addActive(r.peer, false)
}

// onReject ends our request; repair tries another peer, and not this one
// again before the next shuffle tick.
func (m *Machine) onReject(from identity.NodeID) {
	r := m.pending[from]
	if r == nil {
		if !m.active.has(from) {
			m.stats.Drop.Unexpected++
		}
		return
	}
	m.stats.NeighborRejected++
	m.rejected[from] = struct{}{}
	m.requestFailed(r, false)
}

// onDisconnect: a neighbour dropped us. As in the paper it moves to our
// passive view, and we refill the slot. The sender closes the link: were
// we to close it too, we might close a new link it has opened meanwhile
// (one link per peer pair).
func (m *Machine) onDisconnect(from identity.NodeID) {
	p, ok := m.active.remove(from)
	if !ok {
		if m.pending[from] != nil {
			m.onReject(from) // it took us in and dropped us before its accept arrived
			return
		}
		m.stats.Drop.Unexpected++
		return
	}
	m.stats.Disconnected++
	m.stats.NeighborDowns++
	m.emit(NeighborDown{Peer: from})
	m.addPassive(p)
	m.rejected[from] = struct{}{}
	m.fill()
}
