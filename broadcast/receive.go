package broadcast

import (
	"bytes"
	"errors"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// HandleMessage handles one encoded message from the neighbour from.
// Malformed or oversized input is dropped and counted in Stats().Drops;
// it never panics and never returns an error.
//
// IHAVE, GRAFT and PRUNE from a peer that is not a neighbour (no
// HandleNeighborUp yet, or already down) are dropped: the sets follow the
// membership layer only. A GOSSIP from such a peer is delivered and
// forwarded (membership events on the two ends of a link race, and a new
// node may have no other source) but changes no set and gets no PRUNE.
func (m *Machine) HandleMessage(now time.Time, from identity.NodeID, msg []byte) []Output {
	if from == m.self || from.IsZero() {
		m.stats.Drops.Malformed++
		return nil
	}
	parsed, err := ParseMessage(msg)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			m.stats.Drops.Oversized++
		} else {
			m.stats.Drops.Malformed++
		}
		return nil
	}
	switch p := parsed.(type) {
	case Gossip:
		return m.onGossip(now, from, &p)
	case IHave:
		return m.onIHave(now, from, &p)
	case Graft:
		return m.onGraft(now, from, &p)
	case Prune:
		return m.onPrune(from)
	}
	return nil
}

// onGossip is Algorithm 1's "upon Receive(GOSSIP)" plus Algorithm 2's
// optimisation.
func (m *Machine) onGossip(now time.Time, from identity.NodeID, g *Gossip) []Output {
	m.stats.GossipIn++
	m.stats.PayloadBytesIn += uint64(len(g.Payload))
	if len(g.Payload) > m.cfg.MaxPayload {
		m.stats.Drops.Oversized++
		return nil
	}
	id := g.ID()
	neighbor := m.isNeighbor(from)
	var out []Output
	if _, ok := m.cache.get(now, id); ok {
		// A second copy: the link from the sender is redundant.
		m.stats.Duplicates++
		if neighbor {
			m.makeLazy(from)
			out = m.sendPrune(out, from)
		}
		return out
	}
	g.Payload = bytes.Clone(g.Payload)
	if g.Payload == nil {
		g.Payload = []byte{}
	}
	if neighbor {
		m.makeEager(from)
	}
	out = m.accept(now, out, id, g, from, g.Round)
	if mm, ok := m.missing[id]; ok {
		// "Cancel all timers for mID": the timer finds no state and stops.
		delete(m.missing, id)
		if best, ok := mm.closest(); ok && neighbor {
			e, _ := m.cache.get(now, id)
			out = m.optimize(out, e, best.peer, best.round)
		}
	}
	return out
}

// accept records a message received for the first time (or broadcast
// here), delivers it, pushes it to the eager peers and queues its
// announcement for the lazy ones, except for the peer it came from.
func (m *Machine) accept(now time.Time, out []Output, id MessageID, g *Gossip, from identity.NodeID, hops uint16) []Output {
	e := &cacheEntry{origin: g.Origin, seq: g.Seq, topic: g.Topic, payload: g.Payload, hops: hops, parent: from}
	m.cache.add(now, id, e)
	m.remember(now, id)
	m.stats.Delivered++
	out = append(out, Deliver{ID: id, Topic: g.Topic, Payload: g.Payload, Origin: g.Origin, From: from, Hops: int(hops)})

	next := &Gossip{Round: nextRound(hops), Origin: g.Origin, Seq: g.Seq, Topic: g.Topic, Payload: g.Payload}
	var enc []byte
	for _, p := range sortedPeers(m.eager) {
		if p == from {
			continue
		}
		if enc == nil {
			enc = encode(next)
		}
		out = m.send(out, p, next, enc)
	}
	for _, p := range sortedPeers(m.lazy) {
		if p == from {
			continue
		}
		out = m.queueIHave(now, out, p, Announcement{ID: id, Round: next.Round})
	}
	return m.armSweep(now, out)
}

// onIHave is Algorithm 1's "upon Receive(IHAVE)", plus the optimisation
// for announcements of messages already received.
func (m *Machine) onIHave(now time.Time, from identity.NodeID, h *IHave) []Output {
	m.stats.IHaveIn++
	m.stats.AnnouncementsIn += uint64(len(h.Announcements))
	if !m.isNeighbor(from) {
		m.stats.Drops.NotNeighbor++
		return nil
	}
	var out []Output
	for _, a := range h.Announcements {
		if e, ok := m.cache.get(now, a.ID); ok {
			out = m.optimize(out, e, from, a.Round)
			continue
		}
		out = m.awaitAnnounced(now, out, from, a)
	}
	return out
}

// optimize is §3.8: if announcer offers the message at a round at least
// OptimizationThreshold below the round it came by from its eager parent,
// graft the announcer (a GRAFT for no message) and prune the parent.
func (m *Machine) optimize(out []Output, e *cacheEntry, announcer identity.NodeID, round uint16) []Output {
	t := m.cfg.OptimizationThreshold
	if t == 0 || e == nil || e.parent == m.self || e.parent == announcer {
		return out
	}
	if int(e.hops)-int(round) < t {
		return out
	}
	if _, ok := m.eager[e.parent]; !ok {
		return out // the parent link is already lazy or gone
	}
	if !m.isNeighbor(announcer) {
		return out
	}
	m.stats.Optimizations++
	m.makeEager(announcer)
	out = m.sendGraft(out, announcer, &Graft{})
	m.makeLazy(e.parent)
	out = m.sendPrune(out, e.parent)
	e.parent, e.hops = announcer, round
	return out
}

// onGraft is Algorithm 1's "upon Receive(GRAFT)".
func (m *Machine) onGraft(now time.Time, from identity.NodeID, g *Graft) []Output {
	m.stats.GraftIn++
	if !m.isNeighbor(from) {
		m.stats.Drops.NotNeighbor++
		return nil
	}
	m.makeEager(from)
	if !g.HasID {
		return nil
	}
	e, ok := m.cache.get(now, g.ID)
	if !ok || !e.hasBody {
		m.stats.Drops.GraftUnknown++
		return nil
	}
	return m.sendGossip(nil, from, e)
}

// onPrune is Algorithm 1's "upon Receive(PRUNE)".
func (m *Machine) onPrune(from identity.NodeID) []Output {
	m.stats.PruneIn++
	if !m.isNeighbor(from) {
		m.stats.Drops.NotNeighbor++
		return nil
	}
	m.makeLazy(from)
	return nil
}
