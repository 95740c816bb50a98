package mycelium

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/mycelium-net/mycelium/circuit"
	"github.com/mycelium-net/mycelium/internal/transport"
	"github.com/mycelium-net/mycelium/internal/wire"
	"github.com/mycelium-net/mycelium/migration"
	"github.com/mycelium-net/mycelium/registry"
	"github.com/mycelium-net/mycelium/relay"
	"github.com/quic-go/quic-go"
)

// Circuits (issue 7, first cut). When no direct path to a node can be
// opened, Dial builds a circuit through one of the target's published
// neighbours that takes inbound connections: the setup onion
// (circuit.NewOnion) goes out on a CircuitService stream to the relay,
// which peels it, opens the circuit in its relay.Table and passes the
// inner onion to the target on a stream of its own; the target's CREATED
// comes back the same way. The setup streams stay open for the circuit's
// life: when one closes, the circuit is torn down. Data rides QUIC
// DATAGRAM frames on the hop links (wire.CircuitData), and each end runs
// a QUIC transport of its own over a circuitConn, so the end-to-end
// connection, with its TLS identity check and its streams, is the same
// as a direct one.

// circuitsOK marks a context whose connection may run through a circuit:
// a user's Dial. The node's own overlay links stay direct (relays carry
// users' traffic, not the overlay's).
type circuitsOK struct{}

func withCircuits(ctx context.Context) context.Context {
	return context.WithValue(ctx, circuitsOK{}, true)
}

func circuitAllowed(ctx context.Context) bool { return ctx.Value(circuitsOK{}) != nil }

// withoutCircuits returns ctx with circuits forbidden: a circuit's own
// hops must be reached directly.
func withoutCircuits(ctx context.Context) context.Context {
	return context.WithValue(ctx, circuitsOK{}, nil)
}

// circuitPacket is the inner QUIC's fixed packet size: a 1200-byte packet
// plus the circuit's 32 bytes and the link header's 5 fit the ~1243-byte
// datagrams of a 1280-byte path.
const circuitPacket = 1200

// circuitState is the node's part of circuits.
type circuitState struct {
	table  *relay.Table
	key    *ecdh.PrivateKey
	replay *circuit.ReplayCache
	mu     sync.Mutex
	ends   map[*relay.Circuit]*circuitConn
	// setups rate-limits the setups each previous hop asks of us: every
	// CREATE costs an X25519 and a MAC (about 85 µs) before the relay
	// table's limits can say no, so a peer must not send them freely.
	setups *simplelru.LRU[NodeID, *setupBucket]
	// badRelays holds when relays on failed paths failed, at most
	// setupPeers of them.
	badRelays *simplelru.LRU[NodeID, time.Time]
	random    *mrand.Rand // path ties; guarded by mu
	// gone holds, for each circuit a goroutine serves, a channel closed
	// when the table closes the circuit from outside that goroutine: a
	// sweep, a lost link, the end of a drain.
	gone map[*relay.Circuit]chan struct{}
}

// watch returns the channel closed when c is ended by ended.
func (s *circuitState) watch(c *relay.Circuit) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	if c.Reason() != 0 {
		close(ch) // the table closed it before we watched
		return ch
	}
	s.gone[c] = ch
	return ch
}

// unwatch forgets c's channel.
func (s *circuitState) unwatch(c *relay.Circuit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.gone, c)
}

// ended wakes the goroutines serving circuits the table has just closed.
func (s *circuitState) ended(cs []*relay.Circuit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		if ch, ok := s.gone[c]; ok {
			close(ch)
			delete(s.gone, c)
		}
	}
}

// failed notes that a path through relay id failed at now.
func (s *circuitState) failed(id NodeID, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badRelays.Add(id, now)
}

// failedLately reports whether a path through id failed less than
// relayAvoidTime before now.
func (s *circuitState) failedLately(id NodeID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.badRelays.Peek(id)
	return ok && now.Sub(at) < relayAvoidTime
}

// rng returns a random source for one path choice.
func (s *circuitState) rng() *mrand.Rand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return mrand.New(mrand.NewPCG(s.random.Uint64(), s.random.Uint64()))
}

// Setup rate per previous hop: setupRate a second, bursts of setupBurst;
// the buckets of at most setupPeers peers are kept (least recently used
// go first).
const (
	setupRate  = 20
	setupBurst = 40
	setupPeers = 4096
)

type setupBucket struct {
	tokens float64
	at     time.Time
}

// allowSetup takes a setup token for peer.
func (s *circuitState) allowSetup(peer NodeID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.setups.Get(peer)
	if !ok {
		b = &setupBucket{tokens: setupBurst, at: now}
		s.setups.Add(peer, b)
	}
	b.tokens = min(setupBurst, b.tokens+now.Sub(b.at).Seconds()*setupRate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func newCircuitState(key *Key, res relay.Resources) (*circuitState, error) {
	t, err := relay.NewTable(res)
	if err != nil {
		return nil, err
	}
	setups, err := simplelru.NewLRU[NodeID, *setupBucket](setupPeers, nil)
	if err != nil {
		return nil, err
	}
	bad, err := simplelru.NewLRU[NodeID, time.Time](setupPeers, nil)
	if err != nil {
		return nil, err
	}
	return &circuitState{table: t, key: key.OnionKey(), replay: circuit.NewReplayCache(1 << 16),
		ends: map[*relay.Circuit]*circuitConn{}, setups: setups, badRelays: bad, gone: map[*relay.Circuit]chan struct{}{},
		random: mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))}, nil
}

func (s *circuitState) end(c *relay.Circuit) *circuitConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ends[c]
}

func (s *circuitState) setEnd(c *relay.Circuit, cc *circuitConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cc == nil {
		delete(s.ends, c)
		return
	}
	s.ends[c] = cc
}

// sendCircuitData sends the circuit datagram d to peer, relabelled for
// cid: d is a datagram as ParseCircuitData reads it, whose packet a relay
// has just re-layered in place, or a buffer an end sealed into after
// wire.CircuitDataHeader spare bytes. The caller may reuse d at once.
//
// It never blocks: the datagram is copied into the link's send queue
// (linkQueue datagrams), or dropped when the queue is full, as a UDP
// socket drops. quic-go's SendDatagram blocks while its own queue is
// full, which on a link that died (and has not timed out yet) is until
// the link closes; a caller blocked there would hold up every circuit
// that reads from the same link, and the QUIC connection inside a
// circuit (whose send loop calls this through circuitConn.WriteTo) on
// every other path too.
func (n *Node) sendCircuitData(peer NodeID, cid uint32, d []byte) error {
	pc := n.peers.active(peer)
	if pc == nil || pc.via != nil || pc.dgq == nil {
		return errors.New("no direct link")
	}
	buf := datagramBufs.Get().(*[wire.MaxCircuitData]byte)
	out, err := wire.AppendCircuitData(buf[:0], cid, d[wire.CircuitDataHeader:])
	if err != nil {
		datagramBufs.Put(buf)
		return err
	}
	select {
	case pc.dgq <- queuedDatagram{buf, len(out)}:
		return nil
	default:
		datagramBufs.Put(buf)
		n.stats.circuitDropped.Add(1)
		return errLinkQueueFull
	}
}

// nudgeLinks sends a LinkNudge on every direct connection, after the
// local address changed: each peer then sees a packet from the new
// address, and QUIC moves the connection there (the peer validates the
// new path). Without it a link's peer learns the move only when the link
// next carries something (its keep-alive is Config.KeepAlive), and a
// circuit set up through it meanwhile is forwarded to the old address:
// the kernel test bed saw a fallback circuit's setup time out that way.
func (n *Node) nudgeLinks() {
	for _, pc := range n.peers.all() {
		if pc.via != nil || pc.dgq == nil {
			continue
		}
		buf := datagramBufs.Get().(*[wire.MaxCircuitData]byte)
		buf[0] = wire.LinkNudge
		select {
		case pc.dgq <- queuedDatagram{buf, 1}:
		default: // a full queue goes out anyway, from the new address
			datagramBufs.Put(buf)
		}
	}
}

// nudgeEvery bounds how often nudgeLinksAtMost nudges.
const nudgeEvery = time.Second

// nudgeLinksAtMost is nudgeLinks at most once per nudgeEvery. A path
// layer calls it when the current path misses a keep-alive: our own NAT
// may have rebound under every connection, and a link whose peer has
// not heard from the new mapping would lose what a fallback circuit
// sends us through it.
func (n *Node) nudgeLinksAtMost(now time.Time) {
	last := n.lastNudge.Load()
	if last != 0 && now.Sub(time.Unix(0, last)) < nudgeEvery {
		return
	}
	if n.lastNudge.CompareAndSwap(last, now.UnixNano()) {
		n.nudgeLinks()
	}
}

// linkQueue bounds the circuit datagrams waiting to go out on one link.
const linkQueue = 256

var errLinkQueueFull = errors.New("link send queue full")

type queuedDatagram struct {
	buf *[wire.MaxCircuitData]byte
	n   int
}

// writeDatagrams sends pc's queued circuit datagrams until pc closes.
func (n *Node) writeDatagrams(pc *peerConn) {
	for {
		select {
		case d := <-pc.dgq:
			pc.qc.SendDatagram(d.buf[:d.n]) // copies
			datagramBufs.Put(d.buf)
		case <-pc.qc.Context().Done():
			return
		}
	}
}

// datagramBufs holds the buffers the ends seal their packets into.
var datagramBufs = sync.Pool{New: func() any { return new([wire.MaxCircuitData]byte) }}

// sendSealed seals payload with seal into a pooled buffer and sends it to
// peer on cid.
func (n *Node) sendSealed(peer NodeID, cid uint32, seal func(dst, payload []byte) ([]byte, error), payload []byte) error {
	buf := datagramBufs.Get().(*[wire.MaxCircuitData]byte)
	defer datagramBufs.Put(buf)
	d, err := seal(buf[:wire.CircuitDataHeader], payload)
	if err != nil {
		return err
	}
	return n.sendCircuitData(peer, cid, d)
}

// readDatagrams carries the circuit datagrams that arrive on pc: relayed
// on, or delivered to an end of ours.
func (n *Node) readDatagrams(pc *peerConn) {
	cs := n.circ
	for {
		d, err := pc.qc.ReceiveDatagram(pc.qc.Context())
		if err != nil {
			return
		}
		if wire.IsLinkNudge(d) {
			continue // its work is done: it came from the peer's address
		}
		cid, pkt, err := wire.ParseCircuitData(d)
		if err != nil {
			n.stats.circuitDropped.Add(1)
			continue
		}
		now := time.Now()
		if c := cs.table.FromPrev(pc.peer, cid); c != nil {
			switch c.Kind {
			case relay.KindRelay:
				if c.AllowForward(now, len(pkt)) && c.Keys.Forward(pkt) == nil {
					n.sendCircuitData(c.Next, c.NextCID, d)
				}
			case relay.KindTerminal:
				if cc := cs.end(c); cc != nil && c.AllowForward(now, len(pkt)) { // counts and keeps it from idling; no limit at ends
					if p, err := c.Term.Open(pkt); err == nil {
						n.deliverEnd(cc, p) // d is ours: quic-go allocates every datagram it hands over
					}
				}
			}
			continue
		}
		if c := cs.table.FromNext(pc.peer, cid); c != nil {
			switch c.Kind {
			case relay.KindRelay:
				if c.AllowBackward(now, len(pkt)) && c.Keys.Backward(pkt) == nil {
					n.sendCircuitData(c.Prev, c.PrevCID, d)
				}
			case relay.KindInitiator:
				if cc := cs.end(c); cc != nil && c.AllowBackward(now, len(pkt)) {
					if p, err := c.Init.Open(pkt); err == nil {
						n.deliverEnd(cc, p)
					}
				}
			}
			continue
		}
		n.stats.circuitDropped.Add(1)
	}
}

// deliverEnd hands an opened packet to an end's inner QUIC, counting it
// as dropped when the end's queue is full.
func (n *Node) deliverEnd(cc *circuitConn, p []byte) {
	if wire.IsPathPacket(p) {
		n.handlePath(p, nil, cc) // the path layer's PING and PONG
		return
	}
	if s := cc.session.Load(); s != nil && s.cc != cc {
		cc = s.cc // a circuit built to carry an existing connection
	}
	if !cc.deliver(p) {
		n.stats.circuitDropped.Add(1)
	}
}

func writeCircuitMsg(c net.Conn, m wire.CircuitMsg) error {
	b, err := wire.AppendCircuitMsg(nil, m)
	if err != nil {
		return err
	}
	_, err = c.Write(b)
	return err
}

// destroyWait bounds the write of a DESTROY to a hop that stopped
// reading.
const destroyWait = time.Second

// sendDestroy tells the hop at the other end of setup stream c that the
// circuit it knows as cid is gone, and why. It does not wait long: the
// stream's close says the same without the reason.
func sendDestroy(c net.Conn, cid uint32, reason byte) {
	c.SetWriteDeadline(time.Now().Add(destroyWait))
	writeCircuitMsg(c, wire.CircuitMsg{Type: wire.CircuitDestroy, ID: cid, Reason: reason})
}

// awaitDestroy reads setup stream c until the other hop ends the circuit
// and returns the reason: its DESTROY's; ReasonNoRoute when the link
// that carries the stream is lost; ReasonClosed when the stream closes or
// carries anything else.
func awaitDestroy(c net.Conn) byte {
	m, err := wire.ReadCircuitMsg(c)
	switch {
	case err != nil && linkLost(err):
		return wire.ReasonNoRoute
	case err != nil || m.Type != wire.CircuitDestroy:
		return wire.ReasonClosed
	}
	return m.Reason
}

// linkLost reports whether a stream error is its connection's end rather
// than the stream's own.
func linkLost(err error) bool {
	var (
		app   *quic.ApplicationError
		idle  *quic.IdleTimeoutError
		reset *quic.StatelessResetError
		trans *quic.TransportError
	)
	return errors.As(err, &app) || errors.As(err, &idle) || errors.As(err, &reset) || errors.As(err, &trans)
}

// errCircuitGone is the close reason of a connection whose circuit ended.
func circuitGoneMsg(reason byte) string { return "circuit closed: " + wire.ReasonString(reason) }

// serveCircuit answers a CircuitService stream from a previous hop.
func (n *Node) serveCircuit(c net.Conn, from NodeID) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(punchStepTimeout))
	m, err := wire.ReadCircuitMsg(c)
	if err != nil || m.Type != wire.CircuitCreate {
		return
	}
	refuse := func(reason byte) {
		n.stats.circuitsRefused.Add(1)
		writeCircuitMsg(c, wire.CircuitMsg{Type: wire.CircuitRefused, ID: m.ID, Reason: reason})
	}
	cs := n.circ
	if !cs.allowSetup(from, time.Now()) {
		refuse(wire.ReasonCapacity)
		return
	}
	res, err := circuit.Peel(cs.key, m.Onion, time.Now(), cs.replay)
	switch {
	case errors.Is(err, circuit.ErrReplay) || errors.Is(err, circuit.ErrExpired):
		refuse(wire.ReasonReplay)
		return
	case errors.Is(err, circuit.ErrReplayCacheFull):
		refuse(wire.ReasonCapacity)
		return
	case err != nil:
		refuse(wire.ReasonBadOnion)
		return
	}
	if res.Terminal {
		n.serveCircuitEnd(c, from, m.ID, res.Term, refuse)
		return
	}
	next := NodeID(res.Next)
	ctx, cancel := context.WithTimeout(n.ctx, punchStepTimeout)
	defer cancel()
	npc := n.peers.active(next)
	if npc == nil || npc.via != nil {
		refuse(wire.ReasonNoRoute) // we forward only over links we hold
		return
	}
	rc, reason := cs.table.Open(time.Now(), from, m.ID, next, res.Relay)
	if reason != 0 {
		refuse(reason)
		return
	}
	defer cs.table.Close(rc, wire.ReasonClosed)
	create, err := wire.AppendCircuitMsg(nil, wire.CircuitMsg{Type: wire.CircuitCreate, ID: rc.NextCID, Onion: res.Forward})
	if err != nil {
		refuse(wire.ReasonBadOnion)
		return
	}
	down, err := n.openStreamEarly(ctx, npc, wire.CircuitService, create) // the CREATE rides with the header
	if err != nil {
		refuse(wire.ReasonNoRoute)
		return
	}
	defer down.Close()
	down.SetDeadline(time.Now().Add(punchStepTimeout))
	r, err := wire.ReadCircuitMsg(down)
	switch {
	case err != nil:
		refuse(wire.ReasonNoRoute)
		return
	case r.Type == wire.CircuitRefused:
		refuse(r.Reason)
		return
	case r.Type != wire.CircuitCreated || rc.Keys.Backward(r.Confirm) != nil:
		refuse(wire.ReasonBadOnion)
		return
	}
	if writeCircuitMsg(c, wire.CircuitMsg{Type: wire.CircuitCreated, ID: m.ID, Confirm: r.Confirm}) != nil {
		return
	}
	n.stats.circuitsRelayed.Add(1)
	c.SetDeadline(time.Time{})
	down.SetDeadline(time.Time{})
	n.circuitLoadChanged()
	defer n.circuitLoadChanged()
	// The circuit lives while both setup streams do. Whichever side ends
	// it, the other hears why.
	gone := cs.watch(rc)
	defer cs.unwatch(rc)
	type ending struct {
		fromPrev bool
		reason   byte
	}
	done := make(chan ending, 2)
	go func() { done <- ending{true, awaitDestroy(c)} }()
	go func() { done <- ending{false, awaitDestroy(down)} }()
	select {
	case e := <-done:
		cs.table.Close(rc, e.reason)
		if e.fromPrev {
			sendDestroy(down, rc.NextCID, e.reason)
		} else {
			sendDestroy(c, m.ID, e.reason)
		}
	case <-gone:
		sendDestroy(c, m.ID, rc.Reason())
		sendDestroy(down, rc.NextCID, rc.Reason())
	case <-n.ctx.Done():
		sendDestroy(c, m.ID, wire.ReasonClosed)
		sendDestroy(down, rc.NextCID, wire.ReasonClosed)
	}
}

// circuitTransport runs a QUIC transport over cc for the connection
// inside a circuit.
func (n *Node) circuitTransport(cc *circuitConn) (*transport.Transport, error) {
	return transport.Open(transport.Config{
		Key:                    n.cfg.Key,
		PacketConn:             cc,
		HandshakeTimeout:       n.cfg.HandshakeTimeout,
		IdleTimeout:            n.cfg.IdleTimeout,
		KeepAlive:              n.cfg.KeepAlive,
		MaxIncomingStreams:     n.cfg.Resources.MaxStreamsPerPeer,
		MaxStreamReceiveWindow: n.cfg.Resources.MaxStreamReceiveWindow,
		MaxConnReceiveWindow:   n.cfg.Resources.MaxConnReceiveWindow,
		Logger:                 n.log,
		FixedPacketSize:        circuitPacket,
	})
}

// serveCircuitEnd is the target's side: it confirms the circuit and
// accepts the initiator's connection inside it.
func (n *Node) serveCircuitEnd(c net.Conn, prev NodeID, cid uint32, term *circuit.Terminal, refuse func(byte)) {
	cs := n.circ
	ec, reason := cs.table.OpenTerminal(time.Now(), prev, cid, term)
	if reason != 0 {
		refuse(reason)
		return
	}
	defer cs.table.Close(ec, wire.ReasonClosed)
	cc := newCircuitConn(circuitAddr{id: n.id}, circuitAddr{via: prev.Short()}, func(b []byte) error {
		return n.sendSealed(prev, cid, term.Seal, b)
	})
	cs.setEnd(ec, cc)
	defer cs.setEnd(ec, nil)
	tr, err := n.circuitTransport(cc)
	if err != nil {
		refuse(wire.ReasonCapacity)
		return
	}
	defer tr.Close()
	if writeCircuitMsg(c, wire.CircuitMsg{Type: wire.CircuitCreated, ID: cid, Confirm: term.Created()}) != nil {
		return
	}
	c.SetDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(n.ctx, 2*n.cfg.HandshakeTimeout)
	type accepted struct {
		qc  *quic.Conn
		id  NodeID
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		qc, id, err := tr.Accept(ctx)
		acc <- accepted{qc, id, err}
	}()
	var a accepted
	select {
	case a = <-acc:
	case <-cc.attached:
		// The dialer built this circuit for a connection we already
		// hold: its PING made it one of that connection's paths.
		cancel()
		<-acc
		n.serveAttachedEnd(c, ec, cid, cc)
		return
	}
	cancel()
	qc, id, err := a.qc, a.id, a.err
	if err != nil {
		return
	}
	sess, err := n.startSession(qc, id, cc, false, nil)
	if err != nil {
		qc.CloseWithError(0, "no path layer")
		return
	}
	n.addConnSession(qc, id, false, []NodeID{prev}, sess)
	n.log.Info("circuit accepted", "peer", id.Short(), "from", prev.Short())
	// The circuit lives while the setup stream and the inner connection
	// do; the connection outlives it if it has moved to a direct path.
	gone := cs.watch(ec)
	defer cs.unwatch(ec)
	closed := make(chan byte, 1)
	go func() { closed <- awaitDestroy(c) }()
	var goesOn bool
	select {
	case r := <-closed:
		cs.table.Close(ec, r)
		goesOn = n.circuitEnded(sess, circuitGoneMsg(r))
	case <-gone:
		sendDestroy(c, cid, ec.Reason())
		goesOn = n.circuitEnded(sess, circuitGoneMsg(ec.Reason()))
	case <-qc.Context().Done():
		sendDestroy(c, cid, wire.ReasonClosed)
	case <-n.ctx.Done():
	}
	if goesOn {
		cs.setEnd(ec, nil)
		cs.table.Close(ec, wire.ReasonClosed)
		select {
		case <-qc.Context().Done():
		case <-n.ctx.Done():
		}
	}
}

// serveAttachedEnd keeps a circuit end that carries an existing
// connection (cc joined its session) until the circuit or the connection
// ends; the session then loses the path.
func (n *Node) serveAttachedEnd(c net.Conn, ec *relay.Circuit, cid uint32, cc *circuitConn) {
	s, id := cc.session.Load(), migration.PathID(cc.pathID.Load())
	cs := n.circ
	gone := cs.watch(ec)
	defer cs.unwatch(ec)
	closed := make(chan byte, 1)
	go func() { closed <- awaitDestroy(c) }()
	msg := ""
	select {
	case r := <-closed:
		cs.table.Close(ec, r)
		msg = circuitGoneMsg(r)
	case <-gone:
		sendDestroy(c, cid, ec.Reason())
		msg = circuitGoneMsg(ec.Reason())
	case <-s.qc.Context().Done():
		sendDestroy(c, cid, wire.ReasonClosed)
	case <-n.ctx.Done():
	}
	if msg != "" && id != migration.NoPath {
		s.circuitGone(id, msg)
	}
}

// circuitEnded is told that the circuit a connection began in ended. The
// connection outlives it (sess.circuitGone: it goes on over another path,
// or waits pathGrace for one before it is closed with msg), so the
// caller keeps the connection's transport until the connection ends.
func (n *Node) circuitEnded(sess *pathSession, msg string) bool {
	sess.circuitGone(pathCircuit, msg)
	return true
}

// carryOnCircuit makes bc, a circuit this node built to the peer of s,
// one more path of s's connection, and watches it: when it ends, s loses
// the path. It reports false (having torn bc down) if s is closed.
func (n *Node) carryOnCircuit(s *pathSession, bc *builtCircuit) bool {
	cs := n.circ
	first, cid, init := bc.via[0], bc.ic.NextCID, bc.init
	end := newCircuitConn(circuitAddr{id: n.id}, s.cc.remote, func(b []byte) error {
		return n.sendSealed(first, cid, init.Seal, b)
	})
	cs.setEnd(bc.ic, end)
	id, ok := s.attachCircuit(end, bc.via)
	if !ok {
		cs.setEnd(bc.ic, nil)
		bc.close(n)
		return false
	}
	gone := cs.watch(bc.ic)
	watch := func() {
		defer cs.unwatch(bc.ic)
		closed := make(chan byte, 1)
		go func() { closed <- awaitDestroy(bc.stream) }()
		msg := ""
		select {
		case r := <-closed:
			cs.table.Close(bc.ic, r)
			msg = circuitGoneMsg(r)
		case <-gone:
			sendDestroy(bc.stream, cid, bc.ic.Reason())
			msg = circuitGoneMsg(bc.ic.Reason())
		case <-s.qc.Context().Done():
			sendDestroy(bc.stream, cid, wire.ReasonClosed)
		case <-n.ctx.Done():
		}
		cs.setEnd(bc.ic, nil)
		bc.close(n)
		if msg != "" {
			s.circuitGone(id, msg)
		}
	}
	if !n.spawn(watch) {
		cs.unwatch(bc.ic)
		cs.setEnd(bc.ic, nil)
		bc.close(n)
	}
	return true
}

// candidateOf is what path selection needs of a record: the links it
// holds are its neighbours and its home relays.
func candidateOf(r registry.Record) circuit.Candidate {
	return circuit.Candidate{
		ID: r.ID, OnionKey: r.OnionKey, Inbound: r.Inbound, Relay: r.Relay,
		Capacity: r.RelayCapacity, Load: r.RelayLoad,
		Links: nodeIDs(slices.Concat(r.Neighbors, r.HomeRelays)),
	}
}

// nodeIDs converts node IDs to circuit's.
func nodeIDs(ids []NodeID) []circuit.NodeID {
	out := make([]circuit.NodeID, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// relayAvoidTime is how long a first relay we could not reach is left
// out of new paths to any target.
const relayAvoidTime = time.Minute

// errFirstHop marks a circuit that failed because we could not reach its
// first relay: the one failure a dial can pin on a relay.
var errFirstHop = errors.New("mycelium: first relay unreachable")

// circuitPath chooses the relays of a circuit to target from the
// records we hold, leaving out those in avoid and those that failed
// lately.
func (n *Node) circuitPath(target NodeID, avoid []NodeID) ([]hopRef, error) {
	recs := n.Records()
	cands := make([]circuit.Candidate, 0, len(recs))
	for _, r := range recs {
		cands = append(cands, candidateOf(r))
	}
	g := circuit.NewGraph(cands)
	now := time.Now()
	cs := n.circ
	ids, err := g.Select(circuit.PathQuery{
		Self: n.id, Target: target, MinRelays: n.cfg.CircuitRelays,
		Linked: func(id circuit.NodeID) bool {
			pc := n.peers.active(id)
			return pc != nil && pc.via == nil
		},
		Avoid: func(id circuit.NodeID) bool { return slices.Contains(avoid, id) || cs.failedLately(id, now) },
		Rand:  cs.rng(),
	})
	if err != nil {
		return nil, err
	}
	hops := make([]hopRef, len(ids))
	for i, id := range ids {
		c, _ := g.Candidate(id)
		hops[i] = hopRef{id: id, onion: c.OnionKey}
	}
	return hops, nil
}

// ErrCircuitRefused: a hop refused to build the circuit; the error says
// why (wire.ReasonString).
var ErrCircuitRefused = errors.New("mycelium: circuit refused")

// hopRef names a node on a circuit's path: its ID and its onion key.
type hopRef struct {
	id    NodeID
	onion [32]byte
}

func recHop(r registry.Record) hopRef { return hopRef{id: r.ID, onion: r.OnionKey} }

// dialCircuit opens a connection to rec's node through a circuit of at
// least Config.CircuitRelays relays, trying up to circuit.PathAttempts
// paths. Every relay of a path that failed is avoided for the rest of the
// dial (we cannot tell which hop failed); a first relay we could not
// reach at all is avoided by every dial for relayAvoidTime.
func (n *Node) dialCircuit(ctx context.Context, rec registry.Record) (*peerConn, error) {
	if rec.OnionKey == [32]byte{} {
		return nil, fmt.Errorf("%w %s: it publishes no onion key", ErrNoDirectPath, rec.ID.Short())
	}
	var avoid []NodeID
	var last error
	for range circuit.PathAttempts {
		relays, err := n.circuitPath(rec.ID, avoid)
		if err != nil {
			if last == nil {
				return nil, fmt.Errorf("%w %s: %w", ErrNoDirectPath, rec.ID.Short(), err)
			}
			break
		}
		pc, err := n.dialVia(ctx, relays, recHop(rec))
		if err == nil {
			return pc, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		for _, h := range relays {
			avoid = append(avoid, h.id)
		}
		if errors.Is(err, errFirstHop) {
			n.circ.failed(relays[0].id, time.Now())
		}
		n.log.Debug("circuit path failed; trying another", "peer", rec.ID.Short(), "err", err)
	}
	return nil, last
}

// builtCircuit is a circuit this node set up, before the connection
// inside it.
type builtCircuit struct {
	ic     *relay.Circuit
	init   *circuit.Initiator
	stream net.Conn // the setup stream to the first relay; closing it tears the circuit down
	via    []NodeID
}

func (bc *builtCircuit) close(n *Node) {
	bc.stream.Close()
	n.circ.table.Close(bc.ic, wire.ReasonClosed)
}

// buildCircuit sets up a circuit through relays (in order) to target: one
// round trip whatever the number of relays.
func (n *Node) buildCircuit(ctx context.Context, relays []hopRef, target hopRef) (*builtCircuit, error) {
	if len(relays) == 0 {
		return nil, errors.New("mycelium: a circuit needs a relay")
	}
	rpc, err := n.conn(withoutCircuits(ctx), relays[0].id)
	if err == nil && rpc.via != nil {
		// A circuit of ours to the relay (an earlier user dial): its
		// datagrams cannot carry another circuit's.
		err = errors.New("our only connection to it is a circuit")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: circuit relay %s: %w", errFirstHop, relays[0].id.Short(), err)
	}
	var path []circuit.Hop
	var via []NodeID
	for _, h := range append(slices.Clone(relays), target) {
		pub, err := ecdh.X25519().NewPublicKey(h.onion[:])
		if err != nil {
			return nil, fmt.Errorf("onion key of %s: %w", h.id.Short(), err)
		}
		path = append(path, circuit.Hop{ID: h.id, OnionKey: pub})
		if h != target {
			via = append(via, h.id)
		}
	}
	onion, init, err := circuit.NewOnion(rand.Reader, time.Now(), path)
	if err != nil {
		return nil, err
	}
	cs := n.circ
	ic, reason := cs.table.OpenInitiator(time.Now(), relays[0].id, init)
	if reason != 0 {
		return nil, fmt.Errorf("%w: %s", ErrCircuitRefused, wire.ReasonString(reason))
	}
	create, err := wire.AppendCircuitMsg(nil, wire.CircuitMsg{Type: wire.CircuitCreate, ID: ic.NextCID, Onion: onion})
	if err != nil {
		cs.table.Close(ic, wire.ReasonClosed)
		return nil, err
	}
	s, err := n.openStreamEarly(ctx, rpc, wire.CircuitService, create) // the CREATE rides with the header
	if err != nil {
		cs.table.Close(ic, wire.ReasonClosed)
		if errors.Is(err, errRetry) {
			// The link to the first relay was replaced or found silent:
			// this path failed (the dial avoids its relays), but say so
			// plainly rather than pass the internal retry sentinel on.
			err = fmt.Errorf("mycelium: circuit relay %s: link replaced during setup", relays[0].id.Short())
		}
		return nil, err
	}
	bc := &builtCircuit{ic: ic, init: init, stream: s, via: via}
	fail := func(err error) (*builtCircuit, error) {
		bc.close(n)
		return nil, err
	}
	s.SetDeadline(time.Now().Add(punchStepTimeout))
	r, err := wire.ReadCircuitMsg(s)
	switch {
	case err != nil:
		return fail(fmt.Errorf("circuit setup: %w", err))
	case r.Type == wire.CircuitRefused:
		return fail(fmt.Errorf("%w: %s", ErrCircuitRefused, wire.ReasonString(r.Reason)))
	case r.Type != wire.CircuitCreated:
		return fail(fmt.Errorf("circuit setup: unexpected message %d", r.Type))
	}
	if err := init.Confirm(r.Confirm); err != nil {
		return fail(fmt.Errorf("circuit setup: %w", err))
	}
	s.SetDeadline(time.Time{})
	return bc, nil
}

// dialVia builds a circuit through relays to target and opens the
// end-to-end connection inside it.
func (n *Node) dialVia(ctx context.Context, relays []hopRef, target hopRef) (*peerConn, error) {
	bc, err := n.buildCircuit(ctx, relays, target)
	if err != nil {
		return nil, err
	}
	cs := n.circ
	first, cid, init := relays[0].id, bc.ic.NextCID, bc.init
	remote := circuitAddr{id: target.id, via: viaString(bc.via)}
	cc := newCircuitConn(circuitAddr{id: n.id}, remote, func(b []byte) error {
		return n.sendSealed(first, cid, init.Seal, b)
	})
	cs.setEnd(bc.ic, cc)
	tr, err := n.circuitTransport(cc)
	if err != nil {
		cs.setEnd(bc.ic, nil)
		bc.close(n)
		return nil, err
	}
	qc, err := tr.Dial(ctx, remote, target.id)
	if err == nil {
		n.stats.circuitsBuilt.Add(1)
		if a := n.peers.active(target.id); a != nil && a.via == nil {
			// A direct connection came up meanwhile (a punch racing
			// this circuit): it is the better path.
			qc.CloseWithError(0, "direct connection won")
			cs.setEnd(bc.ic, nil)
			tr.Close()
			bc.close(n)
			return a, nil
		}
	}
	if err != nil {
		cs.setEnd(bc.ic, nil)
		tr.Close()
		bc.close(n)
		return nil, err
	}
	sess, err := n.startSession(qc, target.id, cc, true, bc.via)
	if err != nil {
		qc.CloseWithError(0, "no path layer")
		cs.setEnd(bc.ic, nil)
		tr.Close()
		bc.close(n)
		return nil, err
	}
	pc := n.addConnSession(qc, target.id, true, bc.via, sess)
	n.log.Info("circuit built", "peer", target.id.Short(), "via", viaString(bc.via))
	gone := cs.watch(bc.ic)
	release := func() {
		tr.Close()
		cs.setEnd(bc.ic, nil)
		bc.close(n)
	}
	if !n.spawn(func() {
		defer cs.unwatch(bc.ic)
		closed := make(chan byte, 1)
		go func() { closed <- awaitDestroy(bc.stream) }()
		var goesOn bool
		select {
		case r := <-closed:
			cs.table.Close(bc.ic, r)
			goesOn = n.circuitEnded(sess, circuitGoneMsg(r))
		case <-gone:
			sendDestroy(bc.stream, cid, bc.ic.Reason())
			goesOn = n.circuitEnded(sess, circuitGoneMsg(bc.ic.Reason()))
		case <-qc.Context().Done():
			sendDestroy(bc.stream, cid, wire.ReasonClosed)
		case <-n.ctx.Done():
		}
		if goesOn {
			// The connection moved off the circuit: free the circuit,
			// keep the connection's transport while it lives.
			cs.setEnd(bc.ic, nil)
			bc.close(n)
			select {
			case <-qc.Context().Done():
			case <-n.ctx.Done():
			}
		}
		release()
	}) {
		// The node is closing: nothing would watch the circuit.
		cs.unwatch(bc.ic)
		qc.CloseWithError(0, "node closed")
		release()
		return nil, net.ErrClosed
	}
	return pc, nil
}

// CircuitStats describes one circuit this node builds, carries or ends.
type CircuitStats struct {
	// Role is "initiator" (we built it), "relay" (we carry it) or
	// "terminal" (it ends here).
	Role string `json:"role"`
	// Prev and Next are the hops before and after us: no Prev for an
	// initiator, no Next for a terminal.
	Prev    *NodeID `json:"prev,omitempty"`
	PrevCID uint32  `json:"prev_cid,omitempty"`
	Next    *NodeID `json:"next,omitempty"`
	NextCID uint32  `json:"next_cid,omitempty"`
	// AgeSeconds since it opened; IdleSeconds since its last relayed
	// packet (its age at the ends, which the relay table does not time).
	AgeSeconds  float64 `json:"age_seconds"`
	IdleSeconds float64 `json:"idle_seconds"`
	// Bytes and packets this node relayed each way, and those its rate
	// limit dropped (relays only).
	BytesForward    uint64 `json:"bytes_forward"`
	BytesBackward   uint64 `json:"bytes_backward"`
	DroppedForward  uint64 `json:"dropped_forward"`
	DroppedBackward uint64 `json:"dropped_backward"`
}

// Circuits lists the circuits this node builds, carries or ends.
func (n *Node) Circuits() []CircuitStats {
	var out []CircuitStats
	for _, c := range n.circ.table.Snapshot(time.Now()) {
		s := CircuitStats{
			Role:            c.Kind.String(),
			AgeSeconds:      c.Age.Seconds(),
			IdleSeconds:     c.Idle.Seconds(),
			BytesForward:    c.Forward.Bytes,
			BytesBackward:   c.Backward.Bytes,
			DroppedForward:  c.Forward.DroppedPackets,
			DroppedBackward: c.Backward.DroppedPackets,
		}
		if c.Prev != (NodeID{}) {
			p := NodeID(c.Prev)
			s.Prev, s.PrevCID = &p, c.PrevCID
		}
		if c.Next != (NodeID{}) {
			x := NodeID(c.Next)
			s.Next, s.NextCID = &x, c.NextCID
		}
		out = append(out, s)
	}
	return out
}

// maxHomes is how many home relays a node behind a NAT keeps.
const maxHomes = 2

// checkHomes, on the driver goroutine, keeps a node behind a NAT linked
// to up to maxHomes home relays: public nodes, those with the relay role
// first, that it holds direct connections to (kept alive by QUIC
// keep-alives) and publishes in its record, so that a circuit to it can
// always end at one of them. It runs at each lonely check (every shuffle
// interval); the search itself dials, so it runs on its own goroutine and
// posts the result back.
func (o *overlay) checkHomes() {
	if o.nat.public || o.nat.observers == 0 || o.homing {
		return
	}
	var keep []NodeID
	for _, h := range o.homes {
		if pc := o.n.peers.active(h); pc != nil && pc.via == nil {
			keep = append(keep, h)
		}
	}
	if len(keep) == len(o.homes) && len(keep) >= maxHomes {
		return
	}
	var cands []circuit.Candidate
	for _, r := range o.reg.Records(time.Now()) {
		if !slices.Contains(keep, r.ID) {
			cands = append(cands, candidateOf(r))
		}
	}
	order := circuit.HomeOrder(cands, o.n.id, o.rng)
	o.homing = true
	n := o.n
	n.spawn(func() {
		homes := keep
		for _, id := range order {
			if len(homes) >= maxHomes {
				break
			}
			ctx, cancel := context.WithTimeout(n.ctx, punchStepTimeout)
			_, err := n.conn(ctx, id)
			cancel()
			if err == nil {
				homes = append(homes, id)
			}
		}
		o.post(func() {
			o.homing = false
			if !slices.Equal(homes, o.homes) {
				o.homes = homes
				n.log.Debug("home relays", "relays", viaString(homes))
				o.updateLocal()
			}
		})
	})
}

// circuitSweepEvery is how often the node sweeps its circuit table: for
// circuits idle past RelayResources.IdleTimeout and, when draining, those
// left at the deadline.
const circuitSweepEvery = 5 * time.Second

// sweepCircuits runs until the node closes, ending the circuits each
// sweep removes.
func (n *Node) sweepCircuits() {
	defer n.wg.Done()
	t := time.NewTicker(circuitSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			if gone := n.circ.table.Sweep(now); len(gone) > 0 {
				n.circ.ended(gone)
				n.circuitLoadChanged()
			}
		}
	}
}

// circuitsPeerGone ends the circuits that ran over our last direct link
// to peer.
func (n *Node) circuitsPeerGone(peer NodeID) {
	if gone := n.circ.table.PeerGone(peer); len(gone) > 0 {
		n.log.Debug("circuits lost with their link", "peer", peer.Short(), "circuits", len(gone))
		n.circ.ended(gone)
		n.circuitLoadChanged()
	}
}

// circuitLoadChanged re-publishes a relay's record, at most once per
// registryRepublishDelay, when its load has moved a tenth of its
// capacity (at least one circuit) from the load last published.
func (n *Node) circuitLoadChanged() {
	if !n.cfg.Relay || n.overlay == nil {
		return
	}
	relays, draining := n.circ.table.Load()
	load := uint32(relays)
	if draining {
		load = uint32(n.cfg.RelayResources.MaxCircuits)
	}
	step := int64(max(1, n.cfg.RelayResources.MaxCircuits/10))
	o := n.overlay
	if d := int64(load) - int64(o.publishedLoadNow.Load()); d < step && -d < step && !(draining && load != o.publishedLoadNow.Load()) {
		return // within a step of what we published: no need to wake the driver
	}
	o.post(func() {
		if o.republishArmed {
			return
		}
		o.viewChanged()
	})
}

// Drain stops the node taking new circuits, to relay or to end here,
// and lets the circuits it carries run until they end or
// RelayResources.DrainTimeout passes, whichever is first; then it ends
// those left with reason "draining", which their ends see as their
// connection's close reason. It publishes the node's record as full at
// once, so new paths leave it out. It returns how many circuits ended at
// the deadline, or ctx's error if ctx ended first (the drain goes on,
// and the node's sweep ends the rest at the deadline). Call it before
// Close for a graceful shutdown; `mycelium relay` and `mycelium node` do
// on SIGINT or SIGTERM.
func (n *Node) Drain(ctx context.Context) (int, error) {
	cs := n.circ
	before := cs.table.Stats().Closed[wire.ReasonDraining]
	cs.table.Drain(time.Now())
	if n.overlay != nil {
		n.overlay.post(n.overlay.updateLocal)
	}
	deadline := time.Now().Add(n.cfg.RelayResources.DrainTimeout)
	for {
		if relays, _ := cs.table.Load(); relays == 0 {
			return 0, nil
		}
		if !time.Now().Before(deadline) {
			cs.ended(cs.table.Sweep(time.Now()))
			// The periodic sweep may have got there first: count the
			// drain's closures, not this sweep's.
			return int(cs.table.Stats().Closed[wire.ReasonDraining] - before), nil
		}
		t := time.NewTimer(min(time.Until(deadline), 100*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-n.ctx.Done():
			t.Stop()
			return 0, net.ErrClosed
		case <-t.C:
		}
	}
}
