package mycelium

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycelium-net/mycelium/circuit"
	"github.com/mycelium-net/mycelium/internal/wire"
	"github.com/mycelium-net/mycelium/migration"
)

// The path layer (DESIGN.md, "The peer connection and its paths").
//
// A connection that starts inside a circuit runs on a circuitConn, a
// net.PacketConn whose remote address never changes: quic-go sees one
// peer address for the connection's whole life. Beneath it a pathSession
// sends each packet over the current path, the circuit or a direct UDP
// path on the node's socket (wire.PathData packets), and takes packets
// from any of them. So the connection, and its streams, outlive each path:
// it moves to a punched direct path, back to the circuit when the direct
// path dies, and on when the circuit dies while a direct path works.
//
// Which path is current is migration.Machine's decision; the session is
// its driver. It validates a path by an authenticated PING answered by a
// PONG (wire.PathPing, keyed by the connection's TLS exporter), and
// keeps every path under keep-alive PINGs whose answers give the machine
// its RTT samples and whose silence its keep-alive losses. A direct path
// is learnt only from an authenticated PING or from a direct connection
// of the node's own to the peer (a punch's), and is used only once a
// PONG has come back on it. DATA packets are taken from anywhere: the
// end-to-end QUIC connection authenticates every one, so a forged one is
// dropped there and teaches the session nothing.
//
// Both ends run a session and decide for themselves: each end's sending
// path is its own, so the two directions may briefly travel different
// paths, which QUIC does not mind.

// Path-layer timing. A keep-alive is answered within a round trip, so a
// current path that stops answering is suspect after SuspectAfter misses
// (3 × 200 ms on a path of a few tens of milliseconds) and the
// connection moves to another validated path then: well under a second
// of stall. A keep-alive counts as missed only once it is older than
// missAfter, longer than the path's round trip: a circuit's round
// trip can reach pathKeepAlive, and counting every keep-alive still in
// flight at the next as lost made each one on such a circuit a miss.
// Other paths are pinged less often, enough to keep their NAT mappings
// and the circuit's relays from timing them out.
const (
	pathKeepAlive    = 200 * time.Millisecond
	pathTick         = pathKeepAlive / 2 // how often misses are looked for
	pathStandbyPing  = 2 * time.Second
	maxDirectPaths   = 4  // direct paths a session holds at once
	pathPingsPerSec  = 20 // PINGs a session answers per second (and burst)
	pathPingsPending = 64 // PINGs awaiting a PONG, across paths
)

// failedDirectTTL is how long a direct path that once worked is kept,
// and pinged, after it failed: long enough for a blackhole or a NAT
// hiccup to pass.
const failedDirectTTL = 2 * time.Minute

// pathCircuit is the path ID of the circuit a session starts on.
const pathCircuit migration.PathID = 1

// pathSession is the path layer of one connection that started in a
// circuit.
type pathSession struct {
	n      *Node
	peer   NodeID
	qc     *quic.Conn
	cc     *circuitConn
	rx, tx wire.PathSession // rx: packets to us carry it; tx: packets to the peer
	key    [wire.PathKeyLen]byte

	mu         sync.Mutex
	m          *migration.Machine
	routes     map[migration.PathID]*pathRoute
	nextID     migration.PathID
	pings      map[uint64]sentPing
	current    migration.PathID
	since      time.Time // when current became current
	onPath     map[migration.Kind]time.Duration
	migrations uint64 // switches after the first path
	byCause    map[migration.Cause]uint64
	tokens     float64 // PINGs we may still answer (refilled at pathPingsPerSec)
	refilled   time.Time
	upgrading  bool
	building   bool      // a circuit for the connection is being built
	hadPath    bool      // some path has been current
	lastGood   time.Time // when the current path last carried a PING that was answered
	lostRelays []NodeID  // relays of circuits the connection lost, latest last (at most maxLostRelays)
	client     bool      // this node dialed the connection
	closed     bool

	sent sentRing // the packets sent lately, to replay on a forced move

	// outbox holds the packets decided under mu, sent once it is
	// released: a send into a circuit can block (a full datagram queue
	// on a dead link), and nothing may wait for mu meanwhile.
	outbox []queuedPacket
	nudge  bool // nudge the node's links once mu is released
}

type queuedPacket struct {
	send func([]byte) error
	b    []byte
}

// queue has b sent on send once mu is released. Called with s.mu held.
func (s *pathSession) queue(send func([]byte) error, b []byte) {
	s.outbox = append(s.outbox, queuedPacket{send, b})
}

// unlockAndSend releases s.mu and sends what was queued under it.
func (s *pathSession) unlockAndSend() {
	out, nudge := s.outbox, s.nudge
	s.outbox, s.nudge = nil, false
	s.mu.Unlock()
	if nudge {
		s.n.nudgeLinksAtMost(time.Now())
	}
	for _, p := range out {
		p.send(p.b)
	}
}

// replayRing is how many of the latest packets a session keeps to send
// again over the new path when the old one died under them.
const replayRing = 64

// sentRing holds the connection's latest outgoing packets. When the
// current path dies, the packets sent since it last answered were lost
// with it; QUIC would resend them only when its probe timeout, backed
// off exponentially through the silence, next fires, which can add
// seconds to the stall. Sending them again at once over the new path
// lets the peer ACK them a round trip later, and QUIC's loss recovery
// goes on from there. A packet that did arrive before is a duplicate
// the peer drops (RFC 9000 §12.3).
type sentRing struct {
	mu   sync.Mutex
	buf  [replayRing][]byte
	at   [replayRing]time.Time
	next int
}

func (r *sentRing) add(b []byte, now time.Time) {
	r.mu.Lock()
	r.buf[r.next] = append(r.buf[r.next][:0], b...)
	r.at[r.next] = now
	r.next = (r.next + 1) % replayRing
	r.mu.Unlock()
}

// since returns copies of the packets sent at or after t, oldest first.
func (r *sentRing) since(t time.Time) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for i := range replayRing {
		j := (r.next + i) % replayRing
		if r.buf[j] != nil && !r.at[j].Before(t) {
			out = append(out, slices.Clone(r.buf[j]))
		}
	}
	return out
}

// pathRoute is one path of a session.
type pathRoute struct {
	id       migration.PathID
	kind     migration.Kind
	addr     net.Addr // a direct path's remote address; nil for a circuit
	via      []NodeID // a circuit's relays, where this node knows them
	send     func([]byte) error
	probing  bool
	failed   bool        // its last validation failed: a PONG on it validates it again
	failedAt time.Time   // when it failed
	proven   bool        // it has been validated at least once
	awaiting []time.Time // when the keep-alives not yet answered went out, oldest first (at most maxAwaiting)
	lost     int         // keep-alives given up on since the last PONG (the next Observe's loss)
	nextPing time.Time
	heard    time.Time     // when a PONG last came back on it
	rtt      time.Duration // that PONG's round trip
}

type sentPing struct {
	path  migration.PathID
	at    time.Time
	probe bool
}

// sessionKeys derives a connection's path-layer session IDs and key from
// its TLS exporter. Both ends derive the same three values.
func sessionKeys(qc *quic.Conn, client bool) (rx, tx wire.PathSession, key [wire.PathKeyLen]byte, err error) {
	tlsState := qc.ConnectionState().TLS
	m, err := tlsState.ExportKeyingMaterial("mycelium path layer", nil, 2*wire.PathSessionLen+wire.PathKeyLen)
	if err != nil {
		return rx, tx, key, err
	}
	var toClient, toServer wire.PathSession
	copy(toServer[:], m[:wire.PathSessionLen])
	copy(toClient[:], m[wire.PathSessionLen:2*wire.PathSessionLen])
	copy(key[:], m[2*wire.PathSessionLen:])
	if client {
		return toClient, toServer, key, nil
	}
	return toServer, toClient, key, nil
}

// startSession puts a path layer under qc, a connection on cc inside a
// circuit (client: this node dialed it). The circuit is its first path,
// validated by the handshake. It runs until qc ends.
func (n *Node) startSession(qc *quic.Conn, peer NodeID, cc *circuitConn, client bool, via []NodeID) (*pathSession, error) {
	rx, tx, key, err := sessionKeys(qc, client)
	if err != nil {
		return nil, fmt.Errorf("path layer keys: %w", err)
	}
	var seed [16]byte
	rand.Read(seed[:])
	m, err := migration.New(migration.DefaultConfig(), mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	s := &pathSession{
		n: n, peer: peer, qc: qc, cc: cc, rx: rx, tx: tx, key: key,
		m: m, routes: make(map[migration.PathID]*pathRoute), nextID: pathCircuit + 1,
		pings: make(map[uint64]sentPing), onPath: make(map[migration.Kind]time.Duration),
		byCause: make(map[migration.Cause]uint64), tokens: pathPingsPerSec, refilled: now, client: client,
	}
	n.sessMu.Lock()
	if _, taken := n.sessions[rx]; taken {
		n.sessMu.Unlock()
		return nil, errors.New("path layer: session ID taken")
	}
	n.sessions[rx] = s
	n.sessMu.Unlock()
	cc.setSession(s)

	// The handshake crossed the circuit: its round trip is the path's
	// until the first PONG (missAfter needs one from the start).
	rtt := max(qc.ConnectionStats().SmoothedRTT, time.Millisecond)
	s.mu.Lock()
	s.routes[pathCircuit] = &pathRoute{id: pathCircuit, kind: migration.Circuit, send: cc.circuitSend, via: via, rtt: rtt, proven: true}
	outs, _ := m.AddPath(now, pathCircuit, migration.Circuit)
	s.apply(now, outs)
	s.routes[pathCircuit].probing = false
	s.apply(now, m.Validated(now, pathCircuit, rtt))
	s.unlockAndSend()

	// A direct connection of ours to the peer says where it is.
	if pc := n.peers.active(peer); pc != nil && pc.via == nil {
		s.addDirect(pc.qc.RemoteAddr(), true)
	}
	if !n.spawn(s.run) {
		s.close()
		return nil, net.ErrClosed
	}
	return s, nil
}

// run sends the keep-alives and probes until the connection ends.
func (s *pathSession) run() {
	t := time.NewTicker(pathTick)
	defer t.Stop()
	defer s.close()
	for {
		select {
		case <-t.C:
			s.tick(time.Now())
		case <-s.qc.Context().Done():
			return
		case <-s.n.ctx.Done():
			return
		}
	}
}

func (s *pathSession) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.n.sessMu.Lock()
	if s.n.sessions[s.rx] == s {
		delete(s.n.sessions, s.rx)
	}
	s.n.sessMu.Unlock()
}

// tick runs every pathTick. It pings what is due: probes and keep-alives
// on the current path every pathKeepAlive, keep-alives on the others
// every pathStandbyPing. A keep-alive unanswered for missAfter is a
// miss, one per tick at most.
func (s *pathSession) tick(now time.Time) {
	s.mu.Lock()
	defer s.unlockAndSend()
	if s.closed {
		return
	}
	for _, id := range s.routeIDs() {
		r := s.routes[id]
		if r == nil {
			continue // removed by an earlier route's outputs
		}
		if r.kind == migration.Direct && r.failed && (!r.proven || now.Sub(r.failedAt) > failedDirectTTL) {
			// A direct path that never answered (an address a PING
			// came from, which a replayed PING can name) or that has
			// been dead for long: stop pinging it, and free its place
			// (maxDirectPaths).
			delete(s.routes, id)
			s.apply(now, s.m.RemovePath(now, id))
			continue
		}
		// Pings go out every pathKeepAlive (less a tick's jitter) on
		// the current path and on paths being probed, every
		// pathStandbyPing on the others. A path just made current is
		// due at once.
		every := pathStandbyPing
		if r.probing || id == s.current {
			every = pathKeepAlive
		}
		due := !now.Before(r.nextPing) || r.nextPing.Sub(now) > every
		if r.probing && id != s.current {
			if due {
				s.ping(now, r, true)
				r.nextPing = now.Add(every - pathTick/2)
			}
			continue
		}
		// The current path counts misses even while it is probed (after
		// an address change put it in doubt, say): its probe may take
		// ProbeTimeout to fail, and a dead current path must not hold
		// the connection that long.
		if len(r.awaiting) > 0 && now.Sub(r.awaiting[0]) >= missAfter(r) {
			r.awaiting = r.awaiting[1:]
			r.lost++
			if id == s.current {
				// Our NAT may have rebound: links' peers learn
				// the new mapping from a nudge, and move their
				// ends to it before a fallback needs the circuits
				// through them.
				s.nudge = true
			}
			s.apply(now, s.m.KeepAliveMissed(now, id))
			if s.routes[id] == nil || s.routes[id].probing {
				continue
			}
		}
		if !due {
			continue
		}
		s.ping(now, r, r.probing)
		if len(r.awaiting) == maxAwaiting {
			r.awaiting = r.awaiting[1:]
			r.lost++
		}
		r.awaiting = append(r.awaiting, now)
		r.nextPing = now.Add(every - pathTick/2)
	}
}

// missAfter is how old an unanswered keep-alive on r must be to count as
// missed: a keep-alive interval, or r's last round trip and a quarter of
// that interval if longer. At most one counts per tick, so misses of
// keep-alives sent pathKeepAlive apart count as often. Until a PONG came
// back on r, its round trip is a guess (for the first circuit, quic-go's
// estimate, which at the dialer right after the handshake can still be
// its 100 ms default), and a second is allowed.
func missAfter(r *pathRoute) time.Duration {
	d := max(pathKeepAlive, r.rtt+pathKeepAlive/4)
	if r.heard.IsZero() {
		d = max(d, unheardMissAfter)
	}
	return d
}

// unheardMissAfter is missAfter's floor on a path no PONG came back on.
const unheardMissAfter = time.Second

// maxAwaiting bounds the unanswered keep-alives a path remembers.
const maxAwaiting = 8

func (s *pathSession) routeIDs() []migration.PathID {
	ids := make([]migration.PathID, 0, len(s.routes))
	for id := range s.routes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// ping sends a PING on r and returns its nonce.
func (s *pathSession) ping(now time.Time, r *pathRoute, probe bool) uint64 {
	if len(s.pings) >= pathPingsPending {
		// Forget the oldest: their answers are long overdue.
		var oldest uint64
		var at time.Time
		for nonce, p := range s.pings {
			if oldest == 0 || p.at.Before(at) {
				oldest, at = nonce, p.at
			}
		}
		delete(s.pings, oldest)
	}
	var nb [8]byte
	rand.Read(nb[:])
	nonce := binary.LittleEndian.Uint64(nb[:]) | 1 // never 0
	s.pings[nonce] = sentPing{path: r.id, at: now, probe: probe}
	s.queue(r.send, wire.AppendPathProbe(make([]byte, 0, wire.PathProbeLen), wire.PathPing, s.tx, nonce, &s.key))
	return nonce
}

// apply carries out the machine's outputs. Called with s.mu held.
func (s *pathSession) apply(now time.Time, outs []migration.Output) {
	for _, o := range outs {
		switch o := o.(type) {
		case migration.Probe:
			if r := s.routes[o.Path]; r != nil {
				r.probing = true
				s.ping(now, r, true)
			}
		case migration.Switch:
			r := s.routes[o.Path]
			if r == nil {
				continue
			}
			old := s.routes[s.current]
			if old != nil {
				s.onPath[old.kind] += now.Sub(s.since)
			}
			// After a loss (the last path died with nothing to replace
			// it) the machine calls the next path initial; it is a move
			// all the same, forced by the dead path.
			afterLoss := s.current == migration.NoPath && s.hadPath
			cause := o.Cause
			if afterLoss {
				cause = migration.CausePathDead
			}
			if s.current != migration.NoPath && cause != migration.CauseInitial || afterLoss {
				s.migrations++
				s.byCause[cause]++
				s.n.stats.migrations.Add(1)
				s.n.countMigration(cause, now, s.lastGood)
				s.n.log.Info("connection moved", "peer", s.peer.Short(), "path", r.describe(), "cause", cause)
			}
			s.current, s.since, s.hadPath = o.Path, now, true
			s.cc.setSend(s.recording(r.send))
			if forced(cause) && !s.lastGood.IsZero() {
				// What went out since the old path last answered (less
				// a round trip) was likely lost with it.
				for _, p := range s.sent.since(s.lastGood) {
					s.queue(r.send, p)
				}
			}
		case migration.FallBack:
			// The dialer builds a circuit for the connection; the peer
			// waits for its PING on it.
			s.n.log.Debug("path layer: a circuit is asked for", "peer", s.peer.Short(), "cause", o.Cause)
			s.rebuild()
		case migration.TryUpgrade:
			s.tryUpgrade()
		case migration.SetTimer:
			t := o.Timer
			time.AfterFunc(max(o.At.Sub(now), 0), func() {
				s.mu.Lock()
				defer s.unlockAndSend()
				if !s.closed {
					now := time.Now()
					s.apply(now, s.m.HandleTimer(now, t))
				}
			})
		case migration.Event:
			switch o.Kind {
			case migration.EventProbeFailed:
				if r := s.routes[o.Path]; r != nil {
					if !r.failed {
						r.failedAt = now
					}
					r.probing, r.failed = false, true
				}
			case migration.EventLost:
				if old := s.routes[o.From]; old != nil {
					s.onPath[old.kind] += now.Sub(s.since)
				}
				s.current = migration.NoPath
				s.n.log.Info("connection lost its last path", "peer", s.peer.Short(), "cause", o.Cause)
			}
			s.n.log.Debug("path layer", "peer", s.peer.Short(), "event", o.String())
		}
	}
}

// Node-wide migration counters by cause (Counters.Migrations*).
type migrationCause int

const (
	migrationUpgrade migrationCause = iota
	migrationFallback
	migrationPathDead
	migrationDegraded
	migrationAddress
	migrationCauses
)

// countMigration counts a move for cause at now; for a forced one it
// also counts the old path's outage since lastGood (zero: unknown).
func (n *Node) countMigration(cause migration.Cause, now, lastGood time.Time) {
	var c migrationCause
	switch cause {
	case migration.CauseUpgrade:
		c = migrationUpgrade
	case migration.CauseFallback:
		c = migrationFallback
	case migration.CauseDegraded:
		c = migrationDegraded
	case migration.CauseRebinding, migration.CauseLocalAddress:
		c = migrationAddress
	default:
		c = migrationPathDead
	}
	n.stats.migrationsByCause[c].Add(1)
	if !forced(cause) || lastGood.IsZero() {
		return
	}
	us := uint64(max(now.Sub(lastGood), 0).Microseconds())
	n.stats.migrationStalls.Add(1)
	n.stats.migrationStallMicros.Add(us)
	for {
		old := n.stats.migrationStallMaxMicros.Load()
		if us <= old || n.stats.migrationStallMaxMicros.CompareAndSwap(old, us) {
			return
		}
	}
}

// forced reports whether a switch for cause left a path that stopped
// working (rather than one that still works but is worse).
func forced(c migration.Cause) bool {
	switch c {
	case migration.CausePathDead, migration.CauseFallback, migration.CauseRebinding, migration.CauseLocalAddress:
		return true
	}
	return false
}

// recording wraps a path's send so that each packet is also kept in the
// replay ring.
func (s *pathSession) recording(send func([]byte) error) func([]byte) error {
	return func(b []byte) error {
		s.sent.add(b, time.Now())
		return send(b)
	}
}

func (r *pathRoute) describe() string {
	if r.kind == migration.Circuit {
		return "circuit"
	}
	return "direct " + r.addr.String()
}

// addDirect makes addr a direct path of the session, if it is new, and
// has it probed. punched: a direct connection of ours reaches the peer
// there; otherwise an authenticated PING came from it.
func (s *pathSession) addDirect(addr net.Addr, punched bool) {
	tr, err := s.n.transport()
	if err != nil || addr == nil {
		return
	}
	s.mu.Lock()
	defer s.unlockAndSend()
	if s.closed {
		return
	}
	key, direct := addr.String(), 0
	for _, r := range s.routes {
		if r.kind == migration.Direct {
			if r.addr.String() == key {
				return
			}
			direct++
		}
	}
	if direct >= maxDirectPaths {
		return
	}
	id := s.nextID
	s.nextID++
	tx := s.tx
	r := &pathRoute{id: id, kind: migration.Direct, addr: addr, send: func(b []byte) error {
		buf := make([]byte, 0, wire.PathHeaderLen+len(b))
		if !wire.IsPathPacket(b) {
			buf = wire.AppendPathData(buf, tx)
		}
		_, err := tr.WriteTo(append(buf, b...), addr)
		return err
	}}
	s.routes[id] = r
	now := time.Now()
	var outs []migration.Output
	if punched {
		outs, err = s.m.PunchSucceeded(now, id)
	} else {
		outs, err = s.m.AddPath(now, id, migration.Direct)
	}
	if err != nil {
		delete(s.routes, id)
		return
	}
	s.n.log.Debug("path layer: direct path found", "peer", s.peer.Short(), "addr", key, "punched", punched)
	s.apply(now, outs)
}

// hasDirect reports whether addr is one of the session's direct paths.
func (s *pathSession) hasDirect(addr net.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.routes {
		if r.kind == migration.Direct && r.addr.String() == addr.String() {
			return true
		}
	}
	return false
}

// tryUpgrade looks for a direct path in the background: a direct
// connection we already hold, else a punch. Called with s.mu held.
func (s *pathSession) tryUpgrade() {
	if s.upgrading {
		return
	}
	s.upgrading = true
	n, peer := s.n, s.peer
	n.spawn(func() {
		defer func() {
			s.mu.Lock()
			s.upgrading = false
			s.mu.Unlock()
		}()
		if pc := n.peers.active(peer); pc != nil && pc.via == nil && !s.hasDirect(pc.qc.RemoteAddr()) {
			s.addDirect(pc.qc.RemoteAddr(), true)
			return
		}
		// No direct connection, or one whose address failed already
		// (a NAT rebinding on either side): punch afresh.
		rec, ok := n.needsPunch(peer)
		if !ok {
			return
		}
		tr, err := n.transport()
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, punchBudget)
		defer cancel()
		if pc, err := n.punch(ctx, tr, peer, rec); err == nil && pc.via == nil {
			s.addDirect(pc.qc.RemoteAddr(), true) // also done by addConnVia; this is idempotent
		}
	})
}

// pathGrace is how long a connection that lost its last path waits for a
// new one (a circuit the dialer builds, a direct path) before it is
// closed with the reason its last path ended.
const pathGrace = 20 * time.Second

// maxLostRelays bounds the relays a session remembers to avoid.
const maxLostRelays = 8

// circuitGone takes one of the session's circuits away. With another
// path current the connection goes on; with none, the machine asks for a
// circuit (FallBack: the dialer builds one), and the connection is closed
// with msg unless a path is current within pathGrace.
func (s *pathSession) circuitGone(id migration.PathID, msg string) {
	s.mu.Lock()
	defer s.unlockAndSend()
	if s.closed || s.routes[id] == nil {
		return
	}
	now := time.Now()
	s.lostRelays = append(s.lostRelays, s.routes[id].via...)
	if len(s.lostRelays) > maxLostRelays {
		s.lostRelays = s.lostRelays[len(s.lostRelays)-maxLostRelays:]
	}
	delete(s.routes, id)
	s.apply(now, s.m.RemovePath(now, id))
	if s.routes[s.current] != nil {
		s.n.log.Info("circuit ended; the connection goes on", "peer", s.peer.Short(), "path", s.routes[s.current].describe(), "why", msg)
		return
	}
	s.n.log.Info("circuit ended; the connection waits for a new path", "peer", s.peer.Short(), "why", msg, "grace", pathGrace)
	time.AfterFunc(pathGrace, func() {
		s.mu.Lock()
		lost := !s.closed && s.routes[s.current] == nil
		s.mu.Unlock()
		if lost {
			s.qc.CloseWithError(0, msg)
		}
	})
}

// attachCircuit makes the circuit end cc one more path of the session and
// has it probed. Called on the dialer's side for a circuit it built to
// carry the connection, and on the peer's side when the dialer's PING
// arrives on such a circuit.
func (s *pathSession) attachCircuit(cc *circuitConn, via []NodeID) (migration.PathID, bool) {
	s.mu.Lock()
	defer s.unlockAndSend()
	if s.closed {
		return migration.NoPath, false
	}
	id := s.nextID
	s.nextID++
	s.routes[id] = &pathRoute{id: id, kind: migration.Circuit, send: cc.circuitSend, via: via}
	now := time.Now()
	outs, err := s.m.AddPath(now, id, migration.Circuit)
	if err != nil {
		delete(s.routes, id)
		return migration.NoPath, false
	}
	cc.attach(s, uint32(id))
	s.apply(now, outs)
	return id, true
}

// rebuild builds a new circuit to the peer for the connection (the
// dialer's answer to FallBack), avoiding the relays of circuits that
// failed it. Called with s.mu held.
func (s *pathSession) rebuild() {
	if !s.client || s.building {
		return
	}
	s.building = true
	n, peer := s.n, s.peer
	// Avoid the relays of the circuits the connection has and had: the
	// ones that failed it, and the others, for a path that fails apart
	// from them.
	avoid := slices.Clone(s.lostRelays)
	for _, r := range s.routes {
		avoid = append(avoid, r.via...)
	}
	n.spawn(func() {
		defer func() {
			s.mu.Lock()
			s.building = false
			s.mu.Unlock()
		}()
		rec, ok := n.Lookup(peer)
		if !ok || rec.OnionKey == [32]byte{} {
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, pathGrace)
		defer cancel()
		for range circuit.PathAttempts {
			relays, err := n.circuitPath(peer, avoid)
			if err != nil && len(avoid) > 0 {
				// Every relay left was avoided: a circuit also ends
				// when an end moves, with its relay alive; try them.
				n.log.Debug("path layer: no circuit path avoiding the relays that failed; trying them too", "peer", peer.Short(), "err", err)
				avoid = nil
				relays, err = n.circuitPath(peer, nil)
			}
			if err != nil {
				n.log.Debug("path layer: no circuit path for the connection", "peer", peer.Short(), "err", err)
				return
			}
			for _, h := range relays {
				avoid = append(avoid, h.id)
			}
			bc, err := n.buildCircuit(ctx, relays, recHop(rec))
			if err != nil {
				n.log.Debug("path layer: fallback circuit failed", "peer", peer.Short(), "err", err)
				continue
			}
			if n.carryOnCircuit(s, bc) {
				n.stats.circuitsBuilt.Add(1)
				n.log.Info("path layer: new circuit for the connection", "peer", peer.Short(), "via", viaString(bc.via))
				return
			}
		}
	})
}

// handlePath takes a path packet for one of our sessions, from the socket
// (from set) or from a circuit end (cc set).
func (n *Node) handlePath(b []byte, from net.Addr, cc *circuitConn) {
	p, err := wire.ParsePathPacket(b)
	if err != nil {
		n.stats.pathDropped.Add(1)
		return
	}
	n.sessMu.Lock()
	s := n.sessions[p.Session]
	n.sessMu.Unlock()
	if s == nil {
		n.stats.pathDropped.Add(1)
		return
	}
	if cc != nil && cc.session.Load() != s {
		// A fresh circuit end (built for an existing connection: its
		// first packet is the dialer's PING) may join s; any other
		// end may not speak for s.
		if cc.session.Load() != nil || p.Type != wire.PathPing || !p.Verify(&s.key) {
			n.stats.pathDropped.Add(1)
			return
		}
		if _, ok := s.attachCircuit(cc, nil); !ok {
			n.stats.pathDropped.Add(1)
			return
		}
		n.log.Info("path layer: a new circuit carries the connection", "peer", s.peer.Short())
	}
	switch p.Type {
	case wire.PathData:
		if cc != nil || !s.cc.deliver(slices.Clone(p.Payload)) {
			n.stats.pathDropped.Add(1)
		}
	case wire.PathPing:
		if !p.Verify(&s.key) || !s.allowPing(time.Now()) {
			n.stats.pathDropped.Add(1)
			return
		}
		pong := wire.AppendPathProbe(make([]byte, 0, wire.PathProbeLen), wire.PathPong, s.tx, p.Nonce, &s.key)
		if cc != nil {
			cc.circuitSend(pong)
			return
		}
		if tr, err := n.transport(); err == nil {
			tr.WriteTo(pong, from)
		}
		s.addDirect(from, false)
	case wire.PathPong:
		if !p.Verify(&s.key) {
			n.stats.pathDropped.Add(1)
			return
		}
		s.pong(time.Now(), p.Nonce)
	}
}

// allowPing spends a token of the session's PING budget.
func (s *pathSession) allowPing(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = min(pathPingsPerSec, s.tokens+now.Sub(s.refilled).Seconds()*pathPingsPerSec)
	s.refilled = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// pong takes the answer to one of our PINGs.
func (s *pathSession) pong(now time.Time, nonce uint64) {
	s.mu.Lock()
	defer s.unlockAndSend()
	sp, ok := s.pings[nonce]
	if !ok || s.closed {
		return
	}
	delete(s.pings, nonce)
	r := s.routes[sp.path]
	if r == nil {
		return
	}
	rtt := max(now.Sub(sp.at), time.Microsecond)
	// The keep-alives sent up to this PING's are done with: it came
	// back, and those before it that did not are lost.
	awaited := false
	for len(r.awaiting) > 0 && !r.awaiting[0].After(sp.at) {
		if r.awaiting[0].Before(sp.at) {
			r.lost++
		} else {
			awaited = true
		}
		r.awaiting = r.awaiting[1:]
	}
	if !awaited && r.lost > 0 {
		r.lost-- // a late answer: counted as lost when its wait ran out (or a probe's)
	}
	// The loss rate over the interval this PONG closes: keep-alives
	// lost since the last PONG, against those and this one.
	loss := float64(r.lost) / float64(r.lost+1)
	r.lost = 0
	r.heard, r.rtt = now, rtt
	if r.id == s.current {
		s.lastGood = sp.at // the PING went out then and arrived: so did what preceded it
	}
	if r.probing || r.failed {
		// A failed path keeps its keep-alives, so that it is found
		// again when it comes back (a blackhole that ends).
		r.probing, r.failed, r.proven = false, false, true
		s.apply(now, s.m.Validated(now, r.id, rtt))
		return
	}
	s.apply(now, s.m.Observe(now, r.id, rtt, loss))
}

// pathStats is what Stats shows of a session.
type pathStats struct {
	kind       migration.Kind
	via        []NodeID // the current circuit's relays, where known
	migrations uint64
	onPath     map[migration.Kind]time.Duration
	loss       float64 // the current path's smoothed keep-alive loss
}

func (s *pathSession) stats() pathStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := pathStats{kind: migration.Circuit, migrations: s.migrations, onPath: make(map[migration.Kind]time.Duration)}
	for k, d := range s.onPath {
		st.onPath[k] = d
	}
	if r := s.routes[s.current]; r != nil {
		st.kind, st.via = r.kind, r.via
		st.onPath[r.kind] += time.Since(s.since)
		if p, ok := s.m.Path(s.current); ok {
			st.loss = p.Loss
		}
	}
	return st
}

// sessionsLocalChanged tells every session that a local address changed.
func (n *Node) sessionsLocalChanged() {
	n.sessMu.Lock()
	ss := make([]*pathSession, 0, len(n.sessions))
	for _, s := range n.sessions {
		ss = append(ss, s)
	}
	n.sessMu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		if !s.closed {
			now := time.Now()
			s.apply(now, s.m.LocalAddressChanged(now))
		}
		s.unlockAndSend()
	}
}

// sessionsReflexiveChanged tells every session that STUN showed a new
// reflexive address: the NAT in front rebound.
func (n *Node) sessionsReflexiveChanged() {
	n.sessMu.Lock()
	ss := make([]*pathSession, 0, len(n.sessions))
	for _, s := range n.sessions {
		ss = append(ss, s)
	}
	n.sessMu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		if !s.closed {
			now := time.Now()
			s.apply(now, s.m.ReflexiveChanged(now))
		}
		s.unlockAndSend()
	}
}

// sessionsDirect tells the sessions with peer that a direct connection of
// ours reaches it at addr.
func (n *Node) sessionsDirect(peer NodeID, addr net.Addr) {
	n.sessMu.Lock()
	var ss []*pathSession
	for _, s := range n.sessions {
		if s.peer == peer {
			ss = append(ss, s)
		}
	}
	n.sessMu.Unlock()
	for _, s := range ss {
		s.addDirect(addr, true)
	}
}
