package mycelium

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycelium-net/mycelium/internal/wire"
)

// Stream error codes (RESET_STREAM / STOP_SENDING).
const (
	streamCodeClosed  quic.StreamErrorCode = 0 // the local end closed the stream
	streamCodeRefused quic.StreamErrorCode = 1 // the stream was refused at setup
	streamCodeReset   quic.StreamErrorCode = 2 // the other end called Reset
)

// maxDialAttempts bounds how often Dial retries a stream whose connection
// was being replaced: by a duplicate's winner, or after it was found
// silent or (a user's dial) idled out.
const maxDialAttempts = 4

// Dial opens a stream to service on node id. The net.Conn it returns (like
// those a Listener accepts) also has CloseWrite, CloseRead and Reset (see
// the package doc). It reuses the connection to id
// or dials a known address (see AddPeerAddr and Config.Bootstrap), and
// returns once the peer has accepted the stream, so an unknown service fails
// here with ErrUnknownService.
//
// Every wait is bounded even when ctx has none: a handshake by
// Config.HandshakeTimeout per address, and the stream's setup (a free
// stream slot at the peer, the peer's answer) by Config.StreamHeaderTimeout;
// a peer whose stream limit stays full gives ErrOverloaded.
func (n *Node) Dial(ctx context.Context, id NodeID, service string) (net.Conn, error) {
	if err := validateUserService(service); err != nil {
		return nil, err
	}
	return n.dial(ctx, id, service)
}

// dialInternal is Dial for the node's own reserved services.
func (n *Node) dialInternal(ctx context.Context, id NodeID, service string) (net.Conn, error) {
	return n.dial(ctx, id, service)
}

// validateUserService checks a service name a user gave: valid, and not
// one of the node's reserved names.
func validateUserService(service string) error {
	if err := wire.ValidateServiceName(service); err != nil {
		return err
	}
	if isInternalService(service) {
		return fmt.Errorf("%w: %q: names starting with %q are reserved", ErrBadServiceName, service, wire.ReservedServicePrefix)
	}
	return nil
}

func isInternalService(service string) bool {
	return strings.HasPrefix(service, wire.ReservedServicePrefix)
}

func (n *Node) dial(ctx context.Context, id NodeID, service string) (net.Conn, error) {
	if !isInternalService(service) {
		ctx = withCircuits(ctx)
	}
	var lastErr error
	for range maxDialAttempts {
		pc, err := n.conn(ctx, id)
		if err != nil {
			return nil, err
		}
		c, err := n.openStream(ctx, pc, service)
		if err == nil {
			if !isInternalService(service) {
				n.stats.streamsOut.Add(1)
			}
			return c, nil
		}
		if !errors.Is(err, errRetry) && !(circuitAllowed(ctx) && idledOut(err)) {
			return nil, err
		}
		lastErr = err
		if err := n.awaitReplacement(ctx, id, pc); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("mycelium: dial %s/%s: %w", id.Short(), service, lastErr)
}

// idledOut reports whether err is a connection's idle timeout: the path
// was dead for IdleTimeout, and the stream open came in the middle of it.
// A user's dial (circuitAllowed) then goes on over a new connection or a
// circuit. Internal dials do not: retrying them after an idle timeout was
// tried and reverted (see connErr).
func idledOut(err error) bool {
	var ie *quic.IdleTimeoutError
	return errors.As(err, &ie)
}

// awaitReplacement waits, after the peer refused a stream on pc because pc
// lost a duplicate race, until pc is no longer id's active connection here
// (the winner is registered, or pc is gone). Waiting for pc's close is not
// enough: a closed connection stays active until serveConn removes it. The
// wait is bounded by Config.HandshakeTimeout: the winner is a connection
// whose handshake the peer already finished.
func (n *Node) awaitReplacement(ctx context.Context, id NodeID, pc *peerConn) error {
	timeout := time.NewTimer(n.cfg.HandshakeTimeout)
	defer timeout.Stop()
	for {
		changed, active := n.peers.activeChanged(id, pc)
		if !active {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("%w: %s refuses streams on our only connection to it", ErrRefused, id.Short())
		}
	}
}

var errRetry = errors.New("mycelium: connection being replaced")

// silentAfter is the shortest wait on a stream open after which no packet
// back means a dead path: a live peer ACKs the header within its round
// trip and ACK delay, and QUIC retransmits it several times in that
// span. (Guess: 3 s covers round trips of a second with room.)
const silentAfter = 3 * time.Second

// closeSilent closes pc, on which a stream open heard nothing for waited.
// Concurrent opens may find the same silence; the first closes and counts.
func (n *Node) closeSilent(pc *peerConn, waited time.Duration) {
	if !pc.silent.CompareAndSwap(false, true) {
		return
	}
	n.log.Info("peer silent on a stream open: closing the connection", "peer", pc.peer.Short(), "after", waited)
	n.stats.silentConns.Add(1)
	pc.qc.CloseWithError(codeSilent, "no packet back on a stream open")
}

// openStream opens a stream on pc, sends the service header and waits for
// the peer's status byte.
func (n *Node) openStream(ctx context.Context, pc *peerConn, service string) (net.Conn, error) {
	return n.openStreamEarly(ctx, pc, service, nil)
}

// openStreamEarly is openStream that sends early right behind the header,
// before the status byte comes back, saving a round trip (circuit setup
// does, at every hop). A service that refuses the stream discards it.
func (n *Node) openStreamEarly(ctx context.Context, pc *peerConn, service string, early []byte) (net.Conn, error) {
	counted := !isInternalService(service)
	if !n.peers.acquire(pc, counted) {
		// pc is draining, or closed. A connection that closed for
		// another reason than a duplicate race (the peer refused us,
		// say) must not be retried: classify it as if the stream had
		// failed on it.
		if cause := context.Cause(pc.qc.Context()); cause != nil {
			return nil, n.connErr(pc, cause)
		}
		return nil, errRetry
	}
	release := n.releaser(pc, counted)
	rx, opened := pc.qc.ConnectionStats().PacketsReceived, time.Now()
	// Bound the setup even when ctx has no deadline.
	setupCtx, cancel := context.WithTimeout(ctx, n.cfg.StreamHeaderTimeout)
	defer cancel()
	s, err := pc.qc.OpenStreamSync(setupCtx)
	if err != nil {
		release()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if setupCtx.Err() != nil {
			return nil, fmt.Errorf("%w: %s has had no free stream slot for %v", ErrOverloaded, pc.peer.Short(), n.cfg.StreamHeaderTimeout)
		}
		return nil, n.connErr(pc, err)
	}
	hdr, _ := wire.AppendServiceHeader(nil, service) // name validated by Dial
	if _, err := s.Write(append(hdr, early...)); err != nil {
		s.CancelRead(streamCodeRefused)
		s.CancelWrite(streamCodeRefused)
		release()
		return nil, n.connErr(pc, err)
	}
	// Wake the status read when setupCtx ends. If the wake-up already
	// started, wait for it, so its past deadline is not left on the stream
	// after the reset below.
	woken := make(chan struct{})
	stop := context.AfterFunc(setupCtx, func() {
		s.SetReadDeadline(time.Unix(1, 0))
		close(woken)
	})
	var status [1]byte
	_, err = io.ReadFull(s, status[:])
	if !stop() {
		<-woken
	}
	s.SetReadDeadline(time.Time{})
	if err != nil {
		s.CancelRead(streamCodeRefused)
		s.CancelWrite(streamCodeRefused)
		release()
		// Not one packet came back for silentAfter or more, not even an
		// ACK of the header: the path is dead, though QUIC would wait
		// for its idle timeout to say so (a NAT mapping that changed,
		// say). Close the connection so this dial, or the next, takes a
		// new one. Not a connection with a path layer: that layer
		// watches its paths itself, moves it to another, and closes it
		// only when none is left for pathGrace. Closing it here cut its
		// open streams while it was between paths (CI saw this when a
		// peer's host moved to another NAT).
		silent := pc.session == nil && setupCtx.Err() != nil && time.Since(opened) >= silentAfter && pc.qc.ConnectionStats().PacketsReceived == rx
		if silent {
			n.closeSilent(pc, time.Since(opened))
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if setupCtx.Err() != nil {
			if silent {
				return nil, errRetry
			}
			return nil, fmt.Errorf("%w: %s did not answer the stream header within %v", ErrRefused, pc.peer.Short(), n.cfg.StreamHeaderTimeout)
		}
		// A service that accepts and at once resets the stream can
		// discard the status byte before it leaves.
		var serr *quic.StreamError
		if errors.As(err, &serr) && serr.Remote && serr.ErrorCode == streamCodeReset {
			return nil, fmt.Errorf("%w by %s/%s", ErrStreamReset, pc.peer.Short(), service)
		}
		return nil, n.connErr(pc, err)
	}
	if st := wire.Status(status[0]); st != wire.StatusOK {
		s.CancelRead(streamCodeRefused)
		s.CancelWrite(streamCodeRefused)
		release()
		switch st {
		case wire.StatusRetry:
			return nil, errRetry
		case wire.StatusUnknownService:
			return nil, fmt.Errorf("%w: node %s has no service %q", ErrUnknownService, pc.peer.Short(), service)
		case wire.StatusOverloaded:
			return nil, fmt.Errorf("%w: %s/%s", ErrOverloaded, pc.peer.Short(), service)
		default:
			return nil, fmt.Errorf("%w by %s: %v", ErrRefused, pc.peer.Short(), st)
		}
	}
	return newStreamConn(s, Addr{n.id, service}, Addr{pc.peer, service}, release), nil
}

// connErr maps an error from a connection that closed under a stream. A
// connection closed because it lost a duplicate race asks for a retry; one
// the peer refused at Resources.MaxPeers is ErrTooManyPeers. (Retrying
// after an idle timeout too was tried and reverted: in the 100-node
// netlab it held internal dials in retries and two nodes never got every
// record in 10 virtual minutes.)
func (n *Node) connErr(pc *peerConn, err error) error {
	var appErr *quic.ApplicationError
	if errors.As(err, &appErr) {
		switch {
		case appErr.ErrorCode == codeDuplicate:
			return errRetry
		case appErr.ErrorCode == codeSilent && !appErr.Remote:
			// Another open on this connection found it silent and
			// closed it: go on over a new one too.
			return errRetry
		case appErr.ErrorCode == codeTooMany && appErr.Remote:
			return fmt.Errorf("%w: %s refused the connection: %w", ErrTooManyPeers, pc.peer.Short(), err)
		}
	}
	if n.ctx.Err() != nil {
		return net.ErrClosed
	}
	return fmt.Errorf("mycelium: stream to %s: %w", pc.peer.Short(), err)
}

// handleStream reads an inbound stream's service header and hands the
// stream to the service's listener, or refuses it.
func (n *Node) handleStream(pc *peerConn, s *quic.Stream) {
	headerDone := sync.OnceFunc(func() { <-n.pending })
	defer headerDone()
	refuse := func(st wire.Status) {
		n.stats.streamsRefused.Add(1)
		s.Write([]byte{byte(st)})
		s.Close()
		s.CancelRead(streamCodeRefused)
	}
	s.SetReadDeadline(time.Now().Add(n.cfg.StreamHeaderTimeout))
	kind, service, err := wire.ReadStreamOpen(s)
	s.SetReadDeadline(time.Time{})
	headerDone()
	if err == nil && kind == wire.KindDrained {
		s.CancelRead(streamCodeClosed)
		s.Close()
		if a, ok := n.peers.peerDrained(pc); ok {
			n.drain(a)
		}
		return
	}
	if err != nil {
		n.stats.badHeaders.Add(1)
		n.log.Debug("bad stream header", "peer", pc.peer.Short(), "err", err)
		refuse(wire.StatusBadHeader)
		return
	}
	counted := !isInternalService(service)
	if !n.peers.acquire(pc, counted) {
		refuse(wire.StatusRetry)
		return
	}
	release := n.releaser(pc, counted)
	n.mu.Lock()
	l := n.listeners[service]
	n.mu.Unlock()
	if l == nil {
		release()
		refuse(wire.StatusUnknownService)
		return
	}
	c := newStreamConn(s, Addr{n.id, service}, Addr{pc.peer, service}, release)
	if st := l.deliver(c, s); st != wire.StatusOK {
		release()
		refuse(st)
		return
	}
	if counted {
		n.stats.streamsIn.Add(1)
	}
}

// Listen returns a listener for streams to service on this node.
func (n *Node) Listen(service string) (net.Listener, error) {
	if err := validateUserService(service); err != nil {
		return nil, err
	}
	l, err := n.listen(service)
	if err != nil {
		return nil, err
	}
	n.servicesChanged() // publish the service in our record
	return l, nil
}

func (n *Node) listen(service string) (*listener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.listenLocked(service)
}

func (n *Node) listenLocked(service string) (*listener, error) {
	if n.closed {
		return nil, net.ErrClosed
	}
	if n.listeners[service] != nil {
		return nil, fmt.Errorf("%w: %q", ErrServiceInUse, service)
	}
	l := &listener{
		node:  n,
		addr:  Addr{n.id, service},
		queue: make(chan net.Conn, n.cfg.Resources.AcceptBacklog),
		done:  make(chan struct{}),
	}
	n.listeners[service] = l
	return l, nil
}

// Services lists the services with a listener, sorted.
func (n *Node) services() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.listeners))
	for s := range n.listeners {
		if !isInternalService(s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

type listener struct {
	node *Node
	addr Addr

	mu     sync.Mutex // serialises deliver against close
	queue  chan net.Conn
	done   chan struct{}
	closed bool
}

var _ net.Listener = (*listener)(nil)

// deliver accepts c into the queue and sends StatusOK first, so the OK byte
// precedes anything the service writes.
func (l *listener) deliver(c net.Conn, s *quic.Stream) wire.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return wire.StatusUnknownService
	}
	if len(l.queue) == cap(l.queue) {
		return wire.StatusOverloaded
	}
	if _, err := s.Write([]byte{byte(wire.StatusOK)}); err != nil {
		return wire.StatusRetry
	}
	l.queue <- c // cannot block: checked for room under mu, sole sender
	return wire.StatusOK
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops the listener. Streams already accepted are not affected;
// streams still queued are closed.
func (l *listener) Close() error {
	l.node.mu.Lock()
	removed := l.node.listeners[l.addr.Service] == l
	if removed {
		delete(l.node.listeners, l.addr.Service)
	}
	l.node.mu.Unlock()
	l.close()
	if removed && !isInternalService(l.addr.Service) {
		l.node.servicesChanged()
	}
	return nil
}

func (l *listener) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	close(l.done)
	for {
		select {
		case c := <-l.queue:
			c.Close()
		default:
			return
		}
	}
}

func (l *listener) Addr() net.Addr { return l.addr }
