package mycelium

import (
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Application error codes for closing a peer connection.
const (
	codeNodeClosing quic.ApplicationErrorCode = 0 // node is shutting down
	codeDuplicate   quic.ApplicationErrorCode = 1 // another connection to the same peer won
	codeTooMany     quic.ApplicationErrorCode = 2 // node is at Resources.MaxPeers
	codeSilent      quic.ApplicationErrorCode = 3 // the peer sent nothing back for Config.StreamHeaderTimeout
)

// maxAddrsPerPeer bounds the addresses remembered for one peer.
const maxAddrsPerPeer = 8

// maxDrainingPerPeer bounds the losing connections to one peer that wait for
// their streams to end. A peer that keeps redialing while holding streams
// open past it gets its oldest losers closed, streams and all.
const maxDrainingPerPeer = 4

// peerConn is one QUIC connection to a peer.
//
// Two nodes keep one connection. When both dial at once, each ends up with
// two, and both apply the same rule to pick the winner (pickConn). The loser
// drains:
//
//   - it refuses new streams with StatusRetry, and Dial retries those on the
//     winner (a refused stream has carried no payload);
//   - when the last of this node's streams on it is closed, the node sends
//     the peer a drained marker (see internal/wire);
//   - it is closed by whichever node, having no streams left on it itself,
//     holds the other's marker.
//
// A node counts a stream until its user closes it, and a user closes after
// reading to EOF or by choosing to discard the rest. So when a node holds
// the peer's marker, everything it sent on the loser was read by the peer or
// discarded by the peer's choice; and with no streams left itself, the same
// holds the other way. Closing then cuts nothing. (Closing on our own count
// alone did cut: the peer could still be reading bytes in flight.)
type peerConn struct {
	qc       *quic.Conn
	peer     NodeID
	outbound bool // this node dialed it
	since    time.Time
	via      []NodeID            // the relays of the circuit it runs inside; nil when direct
	silent   atomic.Bool         // closed by closeSilent
	session  *pathSession        // the path layer beneath a connection that began in a circuit; nil when direct
	dgq      chan queuedDatagram // circuit datagrams to send on a direct link (sendCircuitData)

	// Guarded by peerTable.mu.
	streams     int  // streams in use: opened (acked or waiting) or accepted
	draining    bool // lost to another connection
	sentDrained bool // our drained marker is sent (or being sent)
	peerDrained bool // the peer's drained marker arrived
	removed     bool
}

// drainAction says what the node must do about a losing connection.
type drainAction struct {
	pc          *peerConn
	sendDrained bool // send our drained marker
	close       bool // close it: both sides are done with it
}

// drainStepLocked moves a losing connection towards its close.
func (t *peerTable) drainStepLocked(pc *peerConn) (drainAction, bool) {
	if !pc.draining || pc.streams != 0 || pc.removed {
		return drainAction{}, false
	}
	a := drainAction{pc: pc}
	if pc.peerDrained {
		a.close = true
		t.forgetLoserLocked(pc)
		return a, true
	}
	if !pc.sentDrained {
		pc.sentDrained = true
		a.sendDrained = true
		return a, true
	}
	return drainAction{}, false
}

func (t *peerTable) forgetLoserLocked(pc *peerConn) {
	pc.removed = true
	if ps := t.peers[pc.peer]; ps != nil {
		ps.draining = slices.DeleteFunc(ps.draining, func(c *peerConn) bool { return c == pc })
	}
}

type peerState struct {
	addrs    []net.Addr  // known addresses, most recently learned first
	active   *peerConn   // the connection new streams use
	draining []*peerConn // connections that lost and wait for streams to end
	dialing  *dialCall   // an outbound dial in flight
	changed  chan struct{}
	// pinned: the user or the config gave an address for this peer, so the
	// entry outlives its connections. Entries learned only from inbound
	// connections are forgotten when the last connection closes, which
	// bounds the table by live connections plus pinned peers.
	pinned bool
}

type dialCall struct {
	done chan struct{}
	err  error
}

// peerTable tracks every peer's addresses and connections.
type peerTable struct {
	self   NodeID
	window time.Duration // see pickConn

	mu    sync.Mutex
	peers map[NodeID]*peerState
}

func newPeerTable(self NodeID, window time.Duration) *peerTable {
	return &peerTable{self: self, window: window, peers: make(map[NodeID]*peerState)}
}

func (t *peerTable) getLocked(id NodeID) *peerState {
	ps := t.peers[id]
	if ps == nil {
		ps = &peerState{changed: make(chan struct{})}
		t.peers[id] = ps
	}
	return ps
}

// notifyLocked wakes everyone waiting for a change to ps.
func (ps *peerState) notifyLocked() {
	close(ps.changed)
	ps.changed = make(chan struct{})
}

// addAddr remembers addr for id, most recent first. pinned marks an address
// the user gave.
func (t *peerTable) addAddr(id NodeID, addr net.Addr, pinned bool) {
	if addr == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.getLocked(id)
	ps.pinned = ps.pinned || pinned
	ps.addrs = slices.DeleteFunc(ps.addrs, func(a net.Addr) bool { return a.String() == addr.String() })
	ps.addrs = slices.Insert(ps.addrs, 0, addr)
	if len(ps.addrs) > maxAddrsPerPeer {
		ps.addrs = ps.addrs[:maxAddrsPerPeer]
	}
}

// connectedCount is the number of peers with an active connection.
func (t *peerTable) connectedCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, ps := range t.peers {
		if ps.active != nil {
			n++
		}
	}
	return n
}

// pickConn decides which of two connections to the same peer survives.
//
// A node dials a peer only when it holds no connection to it. So a second
// connection means either that both dialed at once (each dial started before
// the other's connection was up), or that the dialer has lost the old
// connection without this node noticing yet (it restarted, or the old path
// died on its side). The rule, which both ends compute alike:
//
//   - the old connection was up for longer than window when the new one
//     arrived: the dialer cannot have known it, so the new one wins;
//   - one runs inside a circuit and the other is direct (a punch that
//     finished after a circuit won the dial, or the reverse): the direct
//     one wins, as the better path;
//   - both were dialed by the same node (a redial): the new one wins;
//   - otherwise it was a simultaneous dial: the one dialed by the lower node
//     ID wins.
//
// window must exceed a handshake, so that two simultaneous dials always
// fall inside it; the node uses twice Config.HandshakeTimeout.
func pickConn(self NodeID, old, new *peerConn, window time.Duration) (winner, loser *peerConn) {
	dialer := func(c *peerConn) NodeID {
		if c.outbound {
			return self
		}
		return c.peer
	}
	switch {
	case new.since.Sub(old.since) > window:
		return new, old
	case (old.via == nil) != (new.via == nil):
		if new.via == nil {
			return new, old
		}
		return old, new
	case dialer(old) == dialer(new) || dialer(new).Less(dialer(old)):
		return new, old
	}
	return old, new
}

// add registers a new connection. If it duplicates another, the loser
// starts draining; the returned actions say what to do about losers, and
// evicted lists losers to close at once because the peer has too many.
func (t *peerTable) add(pc *peerConn) (actions []drainAction, lost bool, evicted []*peerConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.getLocked(pc.peer)
	defer ps.notifyLocked()
	if ps.active == nil {
		ps.active = pc
		return nil, false, nil
	}
	winner, loser := pickConn(t.self, ps.active, pc, t.window)
	ps.active = winner
	loser.draining = true
	ps.draining = append(ps.draining, loser)
	for len(ps.draining) > maxDrainingPerPeer {
		old := evictionVictim(ps.draining)
		t.forgetLoserLocked(old)
		evicted = append(evicted, old)
	}
	if a, ok := t.drainStepLocked(loser); ok {
		actions = append(actions, a)
	}
	return actions, true, evicted
}

// evictionVictim picks the losing connection to close when a peer has
// too many: the oldest with no streams of ours, else the oldest without
// a path layer, else the oldest. A connection that began in a circuit
// and carries streams is the one a peer keeps for them through every
// upgrade and fallback (each punch adds a direct connection, whose
// predecessor loses); closing it for the newer, empty losers would cut
// the streams the path layer is there to keep.
func evictionVictim(draining []*peerConn) *peerConn {
	for _, c := range draining {
		if c.streams == 0 {
			return c
		}
	}
	for _, c := range draining {
		if c.session == nil {
			return c
		}
	}
	return draining[0]
}

// remove forgets a connection that has closed.
func (t *peerTable) remove(pc *peerConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pc.removed = true
	ps := t.peers[pc.peer]
	if ps == nil {
		return
	}
	if ps.active == pc {
		ps.active = nil
	}
	ps.draining = slices.DeleteFunc(ps.draining, func(c *peerConn) bool { return c == pc })
	ps.notifyLocked()
	if !ps.pinned && ps.active == nil && len(ps.draining) == 0 && ps.dialing == nil {
		delete(t.peers, pc.peer)
	}
}

// acquire counts a new stream on pc. It fails when pc is draining or gone,
// and then the stream must be retried on the peer's active connection.
// Uncounted streams (the node's own overlay streams, which live as long as
// the connection) only check; they do not hold a losing connection open.
func (t *peerTable) acquire(pc *peerConn, counted bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pc.draining || pc.removed {
		return false
	}
	if counted {
		pc.streams++
	}
	return true
}

// release uncounts a stream, and says what to do if that leaves a losing
// connection with no streams.
func (t *peerTable) release(pc *peerConn) (drainAction, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pc.streams--
	if ps := t.peers[pc.peer]; ps != nil && pc.streams == 0 {
		ps.notifyLocked() // a connection going idle is a change worth waking for
	}
	return t.drainStepLocked(pc)
}

// peerDrained records the peer's drained marker on pc.
func (t *peerTable) peerDrained(pc *peerConn) (drainAction, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pc.peerDrained = true
	return t.drainStepLocked(pc)
}

// connOrDial returns the active connection to id, or starts a dial: when it
// returns (nil, call, addrs, true) the caller must dial addrs and finish call.
// Otherwise it returns a connection, or a call to wait on, or no addresses.
func (t *peerTable) connOrDial(id NodeID) (pc *peerConn, call *dialCall, addrs []net.Addr, mustDial bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.peers[id]
	switch {
	case ps == nil:
		return nil, nil, nil, false
	case ps.active != nil:
		return ps.active, nil, nil, false
	case ps.dialing != nil:
		return nil, ps.dialing, nil, false
	case len(ps.addrs) == 0:
		return nil, nil, nil, false
	}
	ps.dialing = &dialCall{done: make(chan struct{})}
	return nil, ps.dialing, slices.Clone(ps.addrs), true
}

// active returns id's active connection, or nil.
func (t *peerTable) active(id NodeID) *peerConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ps := t.peers[id]; ps != nil {
		return ps.active
	}
	return nil
}

// activeDirect returns id's active connection if it is direct (not
// inside a circuit), or nil.
func (t *peerTable) activeDirect(id NodeID) *peerConn {
	if pc := t.active(id); pc != nil && pc.via == nil {
		return pc
	}
	return nil
}

// finishDial ends a dial started by connOrDial.
func (t *peerTable) finishDial(id NodeID, call *dialCall, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.getLocked(id)
	if ps.dialing == call {
		ps.dialing = nil
	}
	call.err = err
	close(call.done)
	ps.notifyLocked()
}

// activeChanged reports whether pc is id's active connection and, if so,
// returns a channel closed at the next change to id's state.
func (t *peerTable) activeChanged(id NodeID, pc *peerConn) (changed <-chan struct{}, active bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.peers[id]
	if ps == nil || ps.active != pc {
		return nil, false
	}
	return ps.changed, true
}

// snapshot copies the live connections for Stats, sorted by peer ID.
func (t *peerTable) snapshot() []peerSnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []peerSnapshot
	for id, ps := range t.peers {
		if ps.active == nil {
			continue
		}
		snap := peerSnapshot{id: id, pc: ps.active, streams: ps.active.streams, draining: len(ps.draining)}
		for _, c := range append([]*peerConn{ps.active}, ps.draining...) {
			if c.session != nil {
				snap.sessions = append(snap.sessions, c.session)
			}
		}
		out = append(out, snap)
	}
	slices.SortFunc(out, func(a, b peerSnapshot) int {
		switch {
		case a.id.Less(b.id):
			return -1
		case b.id.Less(a.id):
			return 1
		}
		return 0
	})
	return out
}

type peerSnapshot struct {
	id       NodeID
	pc       *peerConn
	streams  int
	draining int
	sessions []*pathSession // the path layers of its connections, active and draining
}

// all returns every connection, active and draining.
func (t *peerTable) all() []*peerConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*peerConn
	for _, ps := range t.peers {
		if ps.active != nil {
			out = append(out, ps.active)
		}
		out = append(out, ps.draining...)
	}
	return out
}

// hasActive reports whether id has an active connection.
func (t *peerTable) hasActive(id NodeID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.peers[id]
	return ps != nil && ps.active != nil
}
