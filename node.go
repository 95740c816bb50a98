package mycelium

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycelium-net/mycelium/internal/transport"
	"github.com/mycelium-net/mycelium/internal/wire"
)

// Node is a mycelium node: one socket, its QUIC connections to peers, and
// the services it offers over them. Create one with New, then Start it.
type Node struct {
	cfg   Config
	id    NodeID
	log   *slog.Logger
	peers *peerTable

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node starts

	// pending holds a token for each inbound stream whose header is still
	// being read, bounding those goroutines node-wide.
	pending chan struct{}

	mu        sync.Mutex
	tr        *transport.Transport // set by Start
	listeners map[string]*listener
	started   bool
	closed    bool
	leaving   bool // Close is publishing our tombstone

	stats   counters
	overlay *overlay    // membership and broadcast driver
	stun    *stunServer // answers STUN Binding requests on the socket
	punches *punchState // bounds the hole punches relayed and answered
	probes  *natProbes  // NAT filtering probes: pending, contacted addresses
	circ    *circuitState

	sessMu    sync.Mutex
	lastNudge atomic.Int64                      // unix ns of the last nudgeLinksAtMost
	sessions  map[wire.PathSession]*pathSession // path layers, by the session ID packets to us carry
}

// New checks cfg and returns a node that is not yet started.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:       cfg,
		id:        cfg.Key.ID(),
		peers:     newPeerTable(cfg.Key.ID(), 2*cfg.HandshakeTimeout),
		pending:   make(chan struct{}, cfg.Resources.MaxPendingStreams),
		listeners: make(map[string]*listener),
		stun:      newSTUNServer(),
		punches:   newPunchState(),
		probes:    newNATProbes(),
		sessions:  make(map[wire.PathSession]*pathSession),
	}
	n.log = cfg.Logger.With("node", n.id.Short())
	cs, err := newCircuitState(cfg.Key, cfg.RelayResources)
	if err != nil {
		return nil, err
	}
	n.circ = cs
	n.ctx, n.cancel = context.WithCancel(context.Background())
	o, err := newOverlay(n)
	if err != nil {
		return nil, err
	}
	n.overlay = o
	for _, p := range cfg.Bootstrap {
		n.peers.addAddr(p.ID, p.Addr, true)
	}
	return n, nil
}

// ID returns the node's ID.
func (n *Node) ID() NodeID { return n.id }

// Start opens the socket, starts accepting connections and starts
// connecting to the bootstrap peers. It returns once the node is listening.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return net.ErrClosed
	}
	if n.started {
		return errors.New("mycelium: node already started")
	}
	tr, err := transport.Open(transport.Config{
		Key:                    n.cfg.Key,
		ListenAddr:             n.cfg.ListenAddr,
		PacketConn:             n.cfg.PacketConn,
		HandshakeTimeout:       n.cfg.HandshakeTimeout,
		IdleTimeout:            n.cfg.IdleTimeout,
		KeepAlive:              n.cfg.KeepAlive,
		MaxIncomingStreams:     n.cfg.Resources.MaxStreamsPerPeer,
		MaxStreamReceiveWindow: n.cfg.Resources.MaxStreamReceiveWindow,
		MaxConnReceiveWindow:   n.cfg.Resources.MaxConnReceiveWindow,
		NonQUIC:                n.handleNonQUIC,
		Logger:                 n.log,
	})
	if err != nil {
		return err
	}
	n.tr = tr
	n.started = true
	n.log.Info("node started", "id", n.id.String(), "listen", tr.LocalAddr().String(), "relay", n.cfg.Relay)
	n.overlay.advertise(tr.LocalAddr())
	ol, err := n.listenLocked(wire.OverlayService)
	if err != nil {
		tr.Close()
		return err
	}
	pl, err := n.listenLocked(wire.PunchService)
	if err != nil {
		tr.Close()
		return err
	}
	ptl, err := n.listenLocked(wire.PunchTargetService)
	if err != nil {
		tr.Close()
		return err
	}
	npl, err := n.listenLocked(wire.NATProbeService)
	if err != nil {
		tr.Close()
		return err
	}
	npsl, err := n.listenLocked(wire.NATProbeSendService)
	if err != nil {
		tr.Close()
		return err
	}
	cl, err := n.listenLocked(wire.CircuitService)
	if err != nil {
		tr.Close()
		return err
	}
	n.wg.Add(5)
	go n.serveInternal(cl, func(c net.Conn) { n.serveCircuit(c, c.RemoteAddr().(Addr).ID) })
	go n.serveInternal(pl, func(c net.Conn) { n.servePunchRelay(c, c.RemoteAddr().(Addr).ID) })
	go n.serveInternal(ptl, n.servePunchTarget)
	go n.serveInternal(npl, func(c net.Conn) { n.serveNATProbe(c, c.RemoteAddr().(Addr).ID) })
	go n.serveInternal(npsl, n.serveNATProbeSend)
	n.wg.Add(4 + len(n.cfg.Bootstrap))
	go n.sweepCircuits()
	go n.acceptLoop()
	go n.overlay.run(n.cfg.Bootstrap)
	go func() {
		defer n.wg.Done()
		for {
			c, err := ol.Accept()
			if err != nil {
				return
			}
			n.spawn(func() { n.overlay.serveInbound(c) })
		}
	}()
	for _, p := range n.cfg.Bootstrap {
		go n.keepConnected(p.ID)
	}
	return nil
}

// Close closes every connection and listener and the socket, and waits for
// the node's goroutines. It is idempotent.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed || n.leaving {
		n.mu.Unlock()
		return nil
	}
	n.leaving = true
	started := n.started
	n.mu.Unlock()
	if started {
		n.overlay.leave() // our tombstone out before the connections close
	}
	n.mu.Lock()
	n.closed = true
	tr := n.tr
	ls := n.listeners
	n.listeners = map[string]*listener{}
	n.mu.Unlock()

	n.cancel()
	for _, l := range ls {
		l.close()
	}
	for _, pc := range n.peers.all() {
		pc.qc.CloseWithError(codeNodeClosing, "node closing")
	}
	var err error
	if tr != nil {
		err = tr.Close()
	} else if n.cfg.PacketConn != nil {
		err = n.cfg.PacketConn.Close() // never started: still ours to close
	}
	n.wg.Wait()
	n.log.Info("node closed")
	return err
}

// transport returns the started transport.
func (n *Node) transport() (*transport.Transport, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return nil, net.ErrClosed
	case !n.started:
		return nil, ErrNotStarted
	}
	return n.tr, nil
}

// spawn runs f on a goroutine that Close waits for, unless the node is
// closing, when it reports false and runs nothing.
func (n *Node) spawn(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// LocalAddr is the address of the node's socket, or nil before Start.
func (n *Node) LocalAddr() net.Addr {
	tr, err := n.transport()
	if err != nil {
		return nil
	}
	return tr.LocalAddr()
}

// AddPeerAddr tells the node where peer id may be reached. Dial uses it when
// the node has no connection to id.
func (n *Node) AddPeerAddr(id NodeID, addr net.Addr) error {
	if id == n.id {
		return ErrSelf
	}
	if addr == nil {
		return errors.New("mycelium: nil address")
	}
	n.peers.addAddr(id, addr, true)
	return nil
}

// Connect makes sure the node has a connection to id, dialing addr (if not
// nil) or a known address. It returns at once if a connection exists.
func (n *Node) Connect(ctx context.Context, id NodeID, addr net.Addr) error {
	if addr != nil {
		if err := n.AddPeerAddr(id, addr); err != nil {
			return err
		}
	}
	_, err := n.conn(ctx, id)
	return err
}

func (n *Node) acceptLoop() {
	defer n.wg.Done()
	for {
		qc, id, err := n.tr.Accept(n.ctx)
		if err != nil {
			if n.ctx.Err() == nil {
				n.log.Warn("accept stopped", "err", err)
			}
			return
		}
		if n.peers.connectedCount() >= n.cfg.Resources.MaxPeers && !n.peers.hasActive(id) {
			n.stats.connsRefused.Add(1)
			qc.CloseWithError(codeTooMany, "too many peers")
			continue
		}
		n.stats.connsIn.Add(1)
		n.peers.addAddr(id, qc.RemoteAddr(), false)
		n.addConn(qc, id, false)
	}
}

// addConn registers an established connection and starts serving it.
func (n *Node) addConn(qc *quic.Conn, id NodeID, outbound bool) *peerConn {
	return n.addConnVia(qc, id, outbound, nil)
}

// addConnVia is addConn for a connection inside a circuit through via.
func (n *Node) addConnVia(qc *quic.Conn, id NodeID, outbound bool, via []NodeID) *peerConn {
	return n.addConnSession(qc, id, outbound, via, nil)
}

// addConnSession is addConnVia for a connection with a path layer
// beneath it.
func (n *Node) addConnSession(qc *quic.Conn, id NodeID, outbound bool, via []NodeID, sess *pathSession) *peerConn {
	pc := &peerConn{qc: qc, peer: id, outbound: outbound, since: time.Now(), via: via, session: sess}
	if via == nil {
		pc.dgq = make(chan queuedDatagram, linkQueue)
	}
	actions, lost, evicted := n.peers.add(pc)
	if lost {
		n.stats.duplicateConns.Add(1)
		n.log.Debug("duplicate connection, draining the loser", "peer", id.Short())
	}
	for _, old := range evicted {
		n.log.Warn("peer holds too many draining connections, closing the oldest", "peer", id.Short())
		old.qc.CloseWithError(codeDuplicate, "too many draining connections")
	}
	for _, a := range actions {
		n.drain(a)
	}
	n.log.Debug("peer connected", "peer", id.Short(), "addr", qc.RemoteAddr().String(), "outbound", outbound)
	if via == nil {
		n.spawn(func() { n.readDatagrams(pc) })
		n.spawn(func() { n.writeDatagrams(pc) })
		// A connection inside a circuit to the same peer may move here.
		n.sessionsDirect(id, qc.RemoteAddr())
	}
	if !n.spawn(func() { n.serveConn(pc) }) {
		qc.CloseWithError(codeNodeClosing, "node closing")
		n.peers.remove(pc)
	}
	return pc
}

// drain carries out a step of a losing connection's drain.
func (n *Node) drain(a drainAction) {
	switch {
	case a.close:
		n.log.Debug("closing drained duplicate connection", "peer", a.pc.peer.Short())
		a.pc.qc.CloseWithError(codeDuplicate, "duplicate connection drained")
	case a.sendDrained:
		n.spawn(func() {
			ctx, cancel := context.WithTimeout(n.ctx, n.cfg.StreamHeaderTimeout)
			defer cancel()
			s, err := a.pc.qc.OpenStreamSync(ctx)
			if err != nil {
				return // the connection is gone anyway
			}
			s.Write([]byte{wire.DrainedMarker})
			s.Close()
			s.CancelRead(streamCodeClosed)
		})
	}
}

// releaser returns the func that uncounts a stream on pc (a no-op for an
// uncounted one).
func (n *Node) releaser(pc *peerConn, counted bool) func() {
	if !counted {
		return func() {}
	}
	return func() {
		if a, ok := n.peers.release(pc); ok {
			n.drain(a)
		}
	}
}

// serveConn accepts the peer's streams until the connection closes. Each
// stream's header is read on its own goroutine, at most
// Resources.MaxPendingStreams at once node-wide; streams past that are reset.
func (n *Node) serveConn(pc *peerConn) {
	defer func() {
		// Our NAT may keep a permission for this peer's address for
		// minutes after the last packet: the filtering probes must not
		// take it for a stranger meanwhile.
		if ap, ok := udpAddrPort(pc.qc.RemoteAddr()); ok {
			n.probes.sentTo(ap, time.Now())
		}
		n.peers.remove(pc)
		if !n.peers.hasActive(pc.peer) {
			n.overlay.peerGone(pc.peer)
		}
		if a := n.peers.active(pc.peer); pc.via == nil && (a == nil || a.via != nil) {
			n.circuitsPeerGone(pc.peer) // our last direct link to it: the circuits over it cannot carry on
		}
	}()
	for {
		s, err := pc.qc.AcceptStream(n.ctx)
		if err != nil {
			n.log.Debug("peer connection closed", "peer", pc.peer.Short(), "err", err)
			return
		}
		select {
		case n.pending <- struct{}{}:
		default:
			n.stats.streamsRefused.Add(1)
			s.CancelRead(streamCodeRefused)
			s.CancelWrite(streamCodeRefused)
			continue
		}
		if !n.spawn(func() { n.handleStream(pc, s) }) {
			<-n.pending
			return
		}
	}
}

// conn returns the connection to id, dialing a known address if needed.
func (n *Node) conn(ctx context.Context, id NodeID) (*peerConn, error) {
	if id == n.id {
		return nil, ErrSelf
	}
	tr, err := n.transport()
	if err != nil {
		return nil, err
	}
	for {
		pc, call, addrs, mustDial := n.peers.connOrDial(id)
		switch {
		case pc != nil && pc.qc.Context().Err() != nil:
			// Closed (a circuit that ended, say) but not yet removed by
			// serveConn: wait for that, then dial afresh.
			if err := n.awaitReplacement(ctx, id, pc); err != nil {
				return nil, err
			}
		case pc != nil:
			return pc, nil
		case mustDial:
			var direct func(context.Context) (*peerConn, error)
			if rec, ok := n.needsPunch(id); ok {
				direct = func(ctx context.Context) (*peerConn, error) {
					pctx, pcancel := ctx, context.CancelFunc(func() {})
					if circuitAllowed(ctx) {
						// Leave the circuit time: a punch whose
						// coordination stalls must not use up the dial.
						pctx, pcancel = context.WithTimeout(ctx, punchBudget)
					}
					defer pcancel()
					pc, err := n.punch(pctx, tr, id, rec)
					if err != nil && pctx.Err() != nil && ctx.Err() == nil {
						err = fmt.Errorf("%w %s: the hole punch took longer than %v", ErrNoDirectPath, id.Short(), punchBudget)
					}
					return pc, err
				}
			} else {
				direct = func(ctx context.Context) (*peerConn, error) { return n.dialAddrs(ctx, tr, id, addrs) }
			}
			pc, err := n.raceCircuit(ctx, id, direct)
			n.peers.finishDial(id, call, err)
			if err != nil {
				n.stats.dialsFailed.Add(1)
				// The peer may have reached us meanwhile (it can
				// dial us when we cannot dial it).
				if in := n.peers.active(id); in != nil {
					return in, nil
				}
				return nil, err
			}
			return pc, nil
		case call != nil:
			select {
			case <-call.done:
				// Someone else's dial ended. If it failed for its
				// own caller's reason, try again ourselves.
				if call.err != nil && !errors.Is(call.err, context.Canceled) && !errors.Is(call.err, context.DeadlineExceeded) {
					// A plain dial may have failed because the peer sits
					// behind a NAT we learnt of since: punch then.
					if _, punch := n.needsPunch(id); !punch || errors.Is(call.err, ErrNoDirectPath) {
						// No direct path: a user's dial may still take
						// a circuit.
						if rec, ok := n.Lookup(id); ok && rec.OnionKey != [32]byte{} && circuitAllowed(ctx) &&
							!errors.Is(call.err, ErrIdentityMismatch) && !errors.Is(call.err, errNoCircuit) {
							pc, err := n.dialCircuit(ctx, rec)
							if err != nil {
								return nil, fmt.Errorf("%w; %w: %w", call.err, errNoCircuit, err)
							}
							return pc, nil
						}
						return nil, call.err
					}
				}
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		default:
			// No address: a record with an onion key may still name
			// relays that hold a link to it.
			if rec, ok := n.Lookup(id); ok && rec.OnionKey != [32]byte{} && circuitAllowed(ctx) {
				pc, err := n.dialCircuit(ctx, rec)
				if err != nil {
					return nil, fmt.Errorf("%w %s, and no circuit: %w", ErrNoAddress, id, err)
				}
				return pc, nil
			}
			return nil, fmt.Errorf("%w %s: give an address (ID@HOST:PORT) or connect to it first", ErrNoAddress, id)
		}
	}
}

// errNoCircuit joins a direct dial's error to the circuit's that
// followed it.
var errNoCircuit = errors.New("no circuit either")

// circuitHeadStart is how long a direct attempt (a punch, or a dial of
// the addresses a record gives) runs alone before a user's dial also
// starts a circuit. A punch on a path of a few hundred milliseconds'
// round trip is done by then; an address that does not answer (a stale
// record) would hold the dial for a whole handshake timeout.
const circuitHeadStart = time.Second

// raceCircuit runs direct and returns its connection, unless circuits are
// allowed (a user's dial) and the peer's record publishes an onion key:
// then a circuit is started too, when direct fails (but not for an
// identity mismatch, which whoever gave the address should hear of) or
// after circuitHeadStart, and the first connection up is returned. A
// direct attempt still running when the circuit wins goes on in the
// background while ctx lasts: if it connects, the new direct connection
// replaces the circuit for new streams, and the circuit's connection
// drains with its streams, which its path layer moves to the direct path
// (pathsession.go).
func (n *Node) raceCircuit(ctx context.Context, id NodeID, direct func(context.Context) (*peerConn, error)) (*peerConn, error) {
	rec, ok := n.Lookup(id)
	if !circuitAllowed(ctx) || !ok || rec.OnionKey == [32]byte{} {
		return direct(ctx)
	}
	type result struct {
		pc      *peerConn
		err     error
		circuit bool
	}
	results := make(chan result, 2)
	run := func(circuit bool, f func() (*peerConn, error)) {
		if !n.spawn(func() {
			pc, err := f()
			results <- result{pc, err, circuit}
		}) {
			results <- result{nil, net.ErrClosed, circuit}
		}
	}
	run(false, func() (*peerConn, error) { return direct(ctx) })
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	startCircuit := func() { run(true, func() (*peerConn, error) { return n.dialCircuit(cctx, rec) }) }
	head := time.NewTimer(circuitHeadStart)
	defer head.Stop()
	var directErr, circuitErr error
	started, pending := false, 1
	for pending > 0 {
		select {
		case <-head.C:
			if !started {
				started, pending = true, pending+1
				n.log.Debug("direct dial still running; starting a circuit too", "peer", id.Short())
				startCircuit()
			}
			continue
		case r := <-results:
			pending--
			if r.err == nil {
				if !r.circuit && started {
					ccancel() // the circuit is not needed
				}
				return r.pc, nil
			}
			if r.circuit {
				circuitErr = r.err
				continue
			}
			directErr = r.err
			if errors.Is(r.err, ErrIdentityMismatch) || ctx.Err() != nil {
				return nil, r.err
			}
			if !started {
				n.log.Debug("no direct path, trying a circuit", "peer", id.Short(), "err", r.err)
				started, pending = true, pending+1
				startCircuit()
			}
		}
	}
	if circuitErr == nil {
		return nil, directErr
	}
	return nil, fmt.Errorf("%w; %w: %w", directErr, errNoCircuit, circuitErr)
}

// dialAddrs tries each address in turn and returns the first connection.
func (n *Node) dialAddrs(ctx context.Context, tr *transport.Transport, id NodeID, addrs []net.Addr) (*peerConn, error) {
	var errs []error
	self, _ := udpAddrPort(tr.LocalAddr())
	for _, a := range addrs {
		if ap, ok := udpAddrPort(a); ok && ap == self {
			// Another node's private address that is also ours (two
			// hosts behind different NATs on the same LAN numbers):
			// the packets would come straight back to us.
			errs = append(errs, fmt.Errorf("%s is our own address", ap))
			continue
		}
		if ap, ok := udpAddrPort(a); ok {
			n.probes.sentTo(ap, time.Now())
		}
		qc, err := tr.Dial(ctx, a, id)
		if err == nil {
			n.stats.connsOut.Add(1)
			return n.addConn(qc, id, true), nil
		}
		if errors.Is(err, ErrIdentityMismatch) || ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// serveInternal hands each stream accepted on an internal service's
// listener to serve, on a goroutine Close waits for.
func (n *Node) serveInternal(l *listener, serve func(net.Conn)) {
	defer n.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		n.spawn(func() { serve(c) })
	}
}

// keepConnected holds a connection to a bootstrap peer while the node runs.
// It waits between attempts, 1 s doubling to 30 s; the wait resets only
// after a connection has stayed up for stableConn, so a peer that accepts
// the handshake and then drops us (at its MaxPeers, say) is not hammered.
func (n *Node) keepConnected(id NodeID) {
	defer n.wg.Done()
	const minBackoff, maxBackoff, stableConn = time.Second, 30 * time.Second, 30 * time.Second
	backoff := minBackoff
	for n.ctx.Err() == nil {
		pc, err := n.conn(n.ctx, id)
		if err == nil {
			select {
			case <-pc.qc.Context().Done():
				if time.Since(pc.since) >= stableConn {
					backoff = minBackoff
				}
				err = context.Cause(pc.qc.Context())
			case <-n.ctx.Done():
				return
			}
		}
		n.log.Warn("bootstrap peer unreachable or dropped", "peer", id.Short(), "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-n.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// counters are the node's plain event counters, exported by Stats.
type counters struct {
	connsIn, connsOut, connsRefused, duplicateConns atomic.Uint64
	dialsFailed                                     atomic.Uint64
	streamsIn, streamsOut, streamsRefused           atomic.Uint64
	badHeaders, nonQUICPackets                      atomic.Uint64
	registryRejoins                                 atomic.Uint64
	partitionRejoins                                atomic.Uint64
	silentConns                                     atomic.Uint64
	punchAttempts, punchDirect, punchFailed         atomic.Uint64
	punchSkipped, punchRelayed, punchAnswered       atomic.Uint64
	punchDialMicros                                 atomic.Uint64
	punchOpenersSent, punchOpenersSeen              atomic.Uint64
	circuitsBuilt, circuitsRelayed, circuitsRefused atomic.Uint64
	circuitDropped                                  atomic.Uint64
	natLocalChanges, natReflexiveChanges            atomic.Uint64
	probesForwarded, probesSent                     atomic.Uint64
	migrations, pathDropped                         atomic.Uint64
	migrationsByCause                               [migrationCauses]atomic.Uint64 // by migrationCause
	migrationStalls, migrationStallMicros           atomic.Uint64
	migrationStallMaxMicros                         atomic.Uint64
}
