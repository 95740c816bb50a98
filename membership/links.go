package membership

import (
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Links. The driver keeps a transport link to every active peer. Other
// links are the machine's business: it opens one with Connect for a
// request (JOIN, NEIGHBOR) or a one-shot reply (SHUFFLE_REPLY), keeps it
// in m.links until the request ends or the reply is out, and then either
// hands it to the active view (the request was accepted) or closes it
// with Disconnect. Closing is how the other end learns we do not count it
// a neighbour: it sees HandleDisconnected.

// linkFor returns our link entry for p, emitting a Connect if there is
// none yet.
func (m *Machine) linkFor(p Peer) *link {
	l := m.links[p.ID]
	if l == nil {
		l = &link{peer: p.clone()}
		m.links[p.ID] = l
		m.stats.Connects++
		m.emit(Connect{Peer: p.clone()})
	}
	return l
}

// release closes our link to id if nothing needs it any more. A link
// still connecting is closed when HandleConnected comes.
func (m *Machine) release(id identity.NodeID) {
	l := m.links[id]
	switch {
	case l == nil:
	case m.active.has(id):
		delete(m.links, id)
	case m.pending[id] != nil, !l.up, len(l.queue) > 0:
	default:
		delete(m.links, id)
		m.emit(Disconnect{Peer: id})
	}
}

// sendOneShot sends msg to a peer that may not be linked: directly to an
// active peer or over a link that is up, else over a link opened for it,
// which release closes once the message is out.
func (m *Machine) sendOneShot(to Peer, msg Message) {
	if m.active.has(to.ID) {
		m.send(to, msg)
		return
	}
	l := m.links[to.ID]
	if l != nil && l.up {
		m.send(to, msg)
		return
	}
	if l == nil && len(m.links) >= MaxPendingRequests+MaxOneShotLinks {
		m.stats.Drop.Limit++
		return
	}
	if l != nil && len(l.queue) >= MaxQueuedPerLink {
		m.stats.Drop.Limit++
		return
	}
	b, err := AppendMessage(nil, msg)
	if err != nil {
		m.stats.Drop.Encode++
		return
	}
	l = m.linkFor(to)
	l.queue = append(l.queue, queued{msg.Type, b})
}

// flushQueue emits the Sends queued on l.
func (m *Machine) flushQueue(l *link) {
	for _, q := range l.queue {
		m.stats.Out.add(q.typ)
		m.emit(Send{To: l.peer.clone(), Msg: q.b})
	}
	l.queue = nil
}

// HandleConnected reports that a Connect output succeeded: the link to
// peer is up. The machine sends what waited for the link, and closes it
// at once (Disconnect) if nothing needs it any more.
func (m *Machine) HandleConnected(now time.Time, peer identity.NodeID) []Output {
	m.begin(now)
	if m.active.has(peer) {
		return m.end() // the accepter's Connect for a new neighbour
	}
	l := m.links[peer]
	if l == nil {
		// A Connect we no longer want (its peer left the active view or
		// its request ended before the link came up, and the entry went).
		m.stats.UnwantedLinks++
		m.emit(Disconnect{Peer: peer})
		return m.end()
	}
	if !l.up {
		l.up = true
		if r := m.pending[peer]; r != nil && !r.sent {
			m.sendRequest(r)
		}
		m.flushQueue(l)
	}
	m.release(peer)
	return m.end()
}

// HandleConnectFailed reports that a Connect output failed. A request
// waiting on the link fails: the peer is taken for dead and removed from
// the passive view, and repair tries another. An active peer whose link
// could not be confirmed leaves the active view.
func (m *Machine) HandleConnectFailed(now time.Time, peer identity.NodeID) []Output {
	m.begin(now)
	if m.active.has(peer) {
		m.stats.ConnectFailed++
		m.lostActive(peer)
		m.fill()
		return m.end()
	}
	l := m.links[peer]
	if l == nil {
		return m.end()
	}
	m.stats.ConnectFailed++
	delete(m.links, peer)
	if r := m.pending[peer]; r != nil {
		m.stats.NeighborFailures++
		m.requestFailed(r, true)
	}
	return m.end()
}

// HandleDisconnected reports that the link to peer died, or that peer
// closed it. This is HyParView's failure detector: an active peer leaves
// the active view (NeighborDown) and repair asks a passive peer to take
// its place; a request waiting on the link fails, and repair asks
// another peer.
func (m *Machine) HandleDisconnected(now time.Time, peer identity.NodeID) []Output {
	m.begin(now)
	if m.active.has(peer) {
		m.lostActive(peer)
		m.fill()
		return m.end()
	}
	l := m.links[peer]
	if l == nil || !l.up {
		return m.end() // not a link we hold; or an older link than the one we are opening
	}
	delete(m.links, peer)
	if r := m.pending[peer]; r != nil {
		// The peer may have crashed, or closed the link after a one-shot
		// of its own (one link per peer pair). It stays passive, but is
		// not asked again before the next shuffle tick; a crash shows at
		// the next Connect.
		m.stats.NeighborFailures++
		m.rejected[peer] = struct{}{}
		m.requestFailed(r, false)
	}
	return m.end()
}
