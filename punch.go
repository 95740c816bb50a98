package mycelium

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/internal/transport"
	"github.com/mycelium-net/mycelium/internal/wire"
	"github.com/mycelium-net/mycelium/nat"
	"github.com/mycelium-net/mycelium/registry"
)

// Hole punching. To dial a node whose record says it takes no inbound
// connections, the dialer A asks a node R that both it and the target B
// hold connections to (one of B's published neighbours) to pass a CONNECT
// with A's reflexive addresses to B (wire.PunchService, then
// wire.PunchTargetService from R to B). B answers with its own; A, having
// measured the round trip, sends SYNC, waits half of it, and dials B's
// addresses while B, on SYNC, dials A's.
//
// Before the dial each side opens its own NAT: B, on CONNECT, sends
// openers (wire.PunchOpener, with Config.PunchTTL) to A's addresses
// before it answers; A sends its openers to B's before SYNC. An opener
// passes the sender's router, which then holds a mapping and permission
// for the peer, and dies at the next hop, before the peer's router. So by
// the time either side's dial reaches the other's router, that router
// has already seen its own host's packet to the dialer, whatever the
// timing. Without openers the dial packets race: on Linux, whichever
// router sees the peer's packet first keeps an inbound conntrack entry
// and remaps its own host's packet to a new port, which the other side's
// filter drops (DESIGN.md, "the conntrack race"). Openers cost nothing
// where they are not needed, and cannot help where the two routers are
// one hop apart (the peer counts them in punch_openers_seen).
//
// Roles do not matter for the QUIC handshake: two
// connections may come up, and the node keeps one (the one the lower ID
// dialed). Whether to try at all comes from the two published NAT
// behaviours (nat.CanPunch): a pair the theory rules out is not tried.

const (
	punchAttempts      = 3                      // coordinated tries per Dial
	punchStepTimeout   = 10 * time.Second       // bound on each coordination message
	punchDialTimeout   = 5 * time.Second        // bound on the simultaneous dial
	maxPunchRelays     = 16                     // punches this node relays at once
	maxPunchTargets    = 8                      // punches this node answers at once
	maxRelayedMessages = 4                      // frames relayed per direction
	dialStagger        = 250 * time.Millisecond // between the dials to a peer's candidates
	// punchBudget bounds a punch before a user's Dial turns to a circuit:
	// one coordinated try plus its simultaneous dial.
	punchBudget = punchDialTimeout + time.Second
)

// ErrNoDirectPath: the target's NAT and ours cannot be hole-punched (by
// their published behaviours), or every coordinated try failed. A user's
// Dial then tries a circuit; the error comes back when that fails too.
var ErrNoDirectPath = errors.New("mycelium: no direct path to node")

// punchState bounds the punches the node takes part in.
type punchState struct {
	relays  chan struct{}
	targets chan struct{}
}

func newPunchState() *punchState {
	return &punchState{relays: make(chan struct{}, maxPunchRelays), targets: make(chan struct{}, maxPunchTargets)}
}

// natBehavior is this node's published NAT behaviour.
func (n *Node) natBehavior() nat.Behavior {
	s := n.overlay.snap.Load().nat
	return nat.Behavior{Public: s.public, Mapping: s.mapping, Filtering: s.filtering}
}

func recordBehavior(r registry.Record) nat.Behavior {
	return nat.Behavior{Public: r.Inbound, Mapping: r.Mapping, Filtering: r.Filtering}
}

// ourCandidates are the addresses a peer should send punch packets to.
func (n *Node) ourCandidates() []netip.AddrPort {
	s := n.overlay.snap.Load().nat
	c := slices.Clone(s.reflexive)
	return c[:min(len(c), wire.MaxPunchCandidates)]
}

// needsPunch reports whether id is known, from its record, to sit behind a
// NAT that takes no inbound connections, and returns the record.
func (n *Node) needsPunch(id NodeID) (registry.Record, bool) {
	r, ok := n.Lookup(id)
	return r, ok && !r.Inbound && len(r.Reflexive) > 0
}

// punch opens a direct connection to id, whose record is rec.
func (n *Node) punch(ctx context.Context, tr *transport.Transport, id NodeID, rec registry.Record) (*peerConn, error) {
	outcome := nat.CanPunch(n.natBehavior(), recordBehavior(rec))
	switch outcome {
	case nat.Relay:
		n.stats.punchSkipped.Add(1)
		return nil, fmt.Errorf("%w %s: its NAT (%s) and ours (%s) cannot be hole-punched", ErrNoDirectPath, id.Short(), recordBehavior(rec), n.natBehavior())
	case nat.Direct:
		// Its NAT admits anyone: dial it; it must only answer.
		return n.dialParallel(ctx, tr, id, rec.Reflexive)
	}
	var errs []error
	attempts := punchAttempts
	if outcome == nat.Unknown {
		attempts = 1 // a class is not measured: try once, cheaply (nat.Unknown)
	}
	for attempt := range attempts {
		relay, ok := n.punchRelay(rec)
		if !ok {
			relay, ok = n.dialPunchRelay(ctx, rec)
		}
		if !ok {
			return nil, fmt.Errorf("%w %s: no node connected to both of us to coordinate a hole punch", ErrNoDirectPath, id.Short())
		}
		n.stats.punchAttempts.Add(1)
		pc, dialTook, err := n.punchVia(ctx, tr, relay, id, recordBehavior(rec))
		if err == nil {
			n.stats.punchDirect.Add(1)
			n.stats.punchDialMicros.Add(uint64(dialTook.Microseconds()))
			n.log.Info("hole punched", "peer", id.Short(), "via", relay.Short(), "attempt", attempt+1,
				"addr", pc.qc.RemoteAddr().String(), "dial_ms", dialTook.Milliseconds())
			return pc, nil
		}
		errs = append(errs, err)
		var refused *punchRefusedError
		if errors.As(err, &refused) || ctx.Err() != nil {
			break
		}
	}
	n.stats.punchFailed.Add(1)
	return nil, fmt.Errorf("%w %s: %w", ErrNoDirectPath, id.Short(), errors.Join(errs...))
}

// punchRelay picks a connected node to coordinate through: one of the
// target's published neighbours if we hold a connection to it.
func (n *Node) punchRelay(rec registry.Record) (NodeID, bool) {
	for _, r := range slices.Concat(rec.Neighbors, rec.HomeRelays) {
		if r != n.id && r != rec.ID && n.peers.active(r) != nil {
			return r, true
		}
	}
	return NodeID{}, false
}

// dialPunchRelay connects to one of the target's published neighbours
// that takes inbound connections, when we hold a connection to none of
// them; it tries two at most.
func (n *Node) dialPunchRelay(ctx context.Context, rec registry.Record) (NodeID, bool) {
	tries := 0
	for _, r := range slices.Concat(rec.Neighbors, rec.HomeRelays) {
		if r == n.id || r == rec.ID {
			continue
		}
		if nr, ok := n.Lookup(r); !ok || !nr.Inbound {
			continue
		}
		if tries++; tries > 2 {
			break
		}
		dctx, cancel := context.WithTimeout(ctx, punchStepTimeout)
		_, err := n.conn(dctx, r)
		cancel()
		if err == nil {
			return r, true
		}
	}
	return NodeID{}, false
}

type punchRefusedError struct{ reason byte }

func (e *punchRefusedError) Error() string {
	switch e.reason {
	case wire.RefusedNoPeer:
		return "the coordinating node has no connection to the target"
	case wire.RefusedNoPunch:
		return "the target finds our NATs cannot be hole-punched"
	case wire.RefusedBusy:
		return "too many hole punches at once"
	}
	return fmt.Sprintf("hole punch refused (reason %d)", e.reason)
}

// punchVia runs one coordinated try through relay. It returns the
// connection and how long the simultaneous dial took, from the first
// packet to an open QUIC connection.
func (n *Node) punchVia(ctx context.Context, tr *transport.Transport, relay, id NodeID, theirs nat.Behavior) (*peerConn, time.Duration, error) {
	pc := n.peers.active(relay)
	if pc == nil {
		return nil, 0, fmt.Errorf("lost the connection to %s", relay.Short())
	}
	c, err := n.openStream(ctx, pc, wire.PunchService)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(punchStepTimeout))
	if err := writePunch(c, wire.PunchMsg{Type: wire.PunchConnect, ID: id, Candidates: n.ourCandidates()}); err != nil {
		return nil, 0, err
	}
	start := time.Now()
	m, err := wire.ReadPunch(c)
	if err != nil {
		return nil, 0, fmt.Errorf("awaiting the target's candidates: %w", err)
	}
	rtt := time.Since(start)
	switch {
	case m.Type == wire.PunchRefused:
		return nil, 0, &punchRefusedError{m.Reason}
	case m.Type != wire.PunchConnect || NodeID(m.ID) != id || len(m.Candidates) == 0:
		return nil, 0, fmt.Errorf("%w: unexpected answer %+v", wire.ErrBadPunch, m)
	}
	// Connection reversal: where the target can reach us by dialling
	// (we are public, or our NAT's filtering is endpoint-independent),
	// we send nothing and wait for its dial. Our packets would only
	// reach its router unasked: on Linux that leaves an inbound
	// conntrack entry there which remaps the target's own packets to us
	// (and skews its STUN answers), and under endpoint-dependent mapping
	// our own packets would make a mapping toward the target that our
	// answers then take, which its filter drops (nat/doc.go).
	reverse := nat.CanPunch(theirs, n.natBehavior()) == nat.Direct
	if !reverse {
		n.sendOpeners(tr, m.Candidates)
	}
	if err := writePunch(c, wire.PunchMsg{Type: wire.PunchSync}); err != nil {
		return nil, 0, err
	}
	if reverse {
		dialStart := time.Now()
		pc, err = n.awaitPeer(ctx, id)
		return pc, time.Since(dialStart), err
	}
	// The SYNC reaches the target about half a round trip from now: dial
	// then, so both sides' first packets leave together.
	t := time.NewTimer(rtt / 2)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		return nil, 0, ctx.Err()
	}
	dialStart := time.Now()
	pc, err = n.dialParallel(ctx, tr, id, m.Candidates)
	return pc, time.Since(dialStart), err
}

// sendOpeners sends one opener to each of the peer's candidates with
// Config.PunchTTL; see the comment at the top of this file. A socket that
// cannot set a packet's TTL sends none (the dial then races as before).
func (n *Node) sendOpeners(tr *transport.Transport, cands []netip.AddrPort) {
	if n.cfg.PunchTTL == 0 {
		return
	}
	for _, a := range cands {
		n.probes.sentTo(a, time.Now())
		_, err := tr.WriteToTTL(wire.PunchOpener, net.UDPAddrFromAddrPort(a), n.cfg.PunchTTL)
		if errors.Is(err, transport.ErrTTLUnsupported) {
			n.log.Debug("no punch openers: the socket cannot set a packet's time to live")
			return
		}
		if err == nil {
			n.stats.punchOpenersSent.Add(1)
		}
	}
}

func writePunch(c net.Conn, m wire.PunchMsg) error {
	b, err := wire.AppendPunch(nil, m)
	if err != nil {
		return err
	}
	_, err = c.Write(b)
	return err
}

// dialParallel dials id at its candidates, dialStagger apart, and keeps
// the first connection; if the peer's own dial reached us first, that one
// is used. Only a direct connection counts: a connection inside a circuit
// that is active meanwhile (or was before) is no punch's result, and
// taking it made a failed punch look like a success.
func (n *Node) dialParallel(ctx context.Context, tr *transport.Transport, id NodeID, cands []netip.AddrPort) (*peerConn, error) {
	ctx, cancel := context.WithTimeout(ctx, punchDialTimeout)
	type result struct {
		pc  *peerConn
		err error
	}
	res := make(chan result, len(cands))
	for i, a := range cands {
		go func() {
			// Staggered, so that where several candidates work (the
			// reflexive ports of an endpoint-dependent NAT that filters
			// nothing) the first connection is up, and the rest
			// cancelled, before the next starts: two connections dialled
			// by one side at once may register in different orders at
			// the two ends, and the ends would then keep different ones.
			if i > 0 {
				t := time.NewTimer(time.Duration(i) * dialStagger)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					res <- result{err: ctx.Err()}
					return
				}
			}
			if ctx.Err() != nil {
				res <- result{err: ctx.Err()}
				return
			}
			// A dial once started runs to its end even when we have
			// returned (the peer's own dial won here, say): cancelling
			// it mid-handshake can leave the peer holding a connection
			// we dropped, which wins its duplicate race there and then
			// dies by stateless reset, taking the good one with it. A
			// late success joins the peer table, which keeps one.
			dctx, dcancel := context.WithTimeout(n.ctx, punchDialTimeout)
			defer dcancel()
			n.probes.sentTo(a, time.Now())
			qc, err := tr.Dial(dctx, net.UDPAddrFromAddrPort(a), id)
			if err != nil {
				res <- result{err: err}
				return
			}
			n.stats.connsOut.Add(1)
			res <- result{pc: n.addConn(qc, id, true)}
		}()
	}
	// The first connection wins, ours or the peer's (its dial to us
	// lands in the peer table); dials not yet started are cancelled, and
	// started ones end on their own (a late success joins the peer table,
	// which keeps one).
	defer cancel()
	var errs []error
	changed, _ := n.peers.activeChanged(id, nil)
	for pending := len(cands); pending > 0; {
		select {
		case r := <-res:
			pending--
			if r.pc != nil {
				return r.pc, nil
			}
			errs = append(errs, r.err)
		case <-changed:
			if pc := n.peers.activeDirect(id); pc != nil {
				return pc, nil
			}
			changed, _ = n.peers.activeChanged(id, nil)
		case <-ctx.Done():
			// Our bound is spent (started dials go on and may still
			// join the peer table); the caller has a circuit to try.
			if pc := n.peers.activeDirect(id); pc != nil {
				return pc, nil
			}
			return nil, errors.Join(append(errs, ctx.Err())...)
		}
	}
	if pc := n.peers.activeDirect(id); pc != nil {
		return pc, nil // the peer's dial won
	}
	return nil, errors.Join(errs...)
}

// awaitPeer waits, up to punchDialTimeout, for a direct connection to id
// that the peer dials.
func (n *Node) awaitPeer(ctx context.Context, id NodeID) (*peerConn, error) {
	ctx, cancel := context.WithTimeout(ctx, punchDialTimeout)
	defer cancel()
	for {
		changed, _ := n.peers.activeChanged(id, nil)
		if pc := n.peers.activeDirect(id); pc != nil {
			return pc, nil
		}
		var again <-chan time.Time
		if changed == nil { // no entry for id in the table: look again soon
			again = time.After(50 * time.Millisecond)
		}
		select {
		case <-changed:
		case <-again:
		case <-ctx.Done():
			return nil, fmt.Errorf("the target did not dial us back: %w", ctx.Err())
		}
	}
}

// servePunchRelay answers a PunchService stream from a, which asks us to
// coordinate a punch with a node we hold a connection to.
func (n *Node) servePunchRelay(c net.Conn, from NodeID) {
	defer c.Close()
	select {
	case n.punches.relays <- struct{}{}:
		defer func() { <-n.punches.relays }()
	default:
		writePunch(c, wire.PunchMsg{Type: wire.PunchRefused, Reason: wire.RefusedBusy})
		return
	}
	c.SetDeadline(time.Now().Add(punchStepTimeout))
	m, err := wire.ReadPunch(c)
	if err != nil || m.Type != wire.PunchConnect {
		return
	}
	target := NodeID(m.ID)
	tpc := n.peers.active(target)
	if target == n.id || target == from || tpc == nil {
		writePunch(c, wire.PunchMsg{Type: wire.PunchRefused, Reason: wire.RefusedNoPeer})
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, 2*punchStepTimeout)
	defer cancel()
	tc, err := n.openStream(ctx, tpc, wire.PunchTargetService)
	if err != nil {
		writePunch(c, wire.PunchMsg{Type: wire.PunchRefused, Reason: wire.RefusedNoPeer})
		return
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(2 * punchStepTimeout))
	c.SetDeadline(time.Now().Add(2 * punchStepTimeout))
	m.ID = from // the target learns who asks, as we authenticated it
	m.Candidates = withObserved(m.Candidates, n.peers.active(from))
	if writePunch(tc, m) != nil {
		return
	}
	n.stats.punchRelayed.Add(1)
	done := make(chan struct{})
	go func() { relayPunch(c, tc, nil); close(done) }()     // dialer -> target: SYNC
	relayPunch(tc, c, func(m wire.PunchMsg) wire.PunchMsg { // target -> dialer: CONNECT or REFUSED
		if m.Type == wire.PunchConnect {
			m.Candidates = withObserved(m.Candidates, tpc)
		}
		return m
	})
	<-done
}

// withObserved puts first among a CONNECT's candidates the address we
// see its sender at on our direct connection pc, if not there already:
// the sender's own view of its public address can be stale (its NAT
// rebound since it last asked STUN), ours is what its NAT maps to now,
// and for an endpoint-independent mapping that is what the peer must
// punch towards.
func withObserved(cands []netip.AddrPort, pc *peerConn) []netip.AddrPort {
	if pc == nil || pc.via != nil {
		return cands
	}
	seen, ok := udpAddrPort(pc.qc.RemoteAddr())
	if !ok || slices.Contains(cands, seen) {
		return cands
	}
	out := append([]netip.AddrPort{seen}, cands...)
	if len(out) > wire.MaxPunchCandidates {
		out = out[:wire.MaxPunchCandidates]
	}
	return out
}

// relayPunch copies up to maxRelayedMessages well-formed frames from src
// to dst, passed through edit when it is not nil, then closes dst's write
// side.
func relayPunch(src, dst net.Conn, edit func(wire.PunchMsg) wire.PunchMsg) {
	defer func() {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	for range maxRelayedMessages {
		m, err := wire.ReadPunch(src)
		if err == nil && edit != nil {
			m = edit(m)
		}
		if err != nil || writePunch(dst, m) != nil {
			return
		}
	}
}

// servePunchTarget answers a PunchTargetService stream from a relay that
// passes on a punch request of the dialer named in the CONNECT.
func (n *Node) servePunchTarget(c net.Conn) {
	defer c.Close()
	select {
	case n.punches.targets <- struct{}{}:
		defer func() { <-n.punches.targets }()
	default:
		writePunch(c, wire.PunchMsg{Type: wire.PunchRefused, Reason: wire.RefusedBusy})
		return
	}
	c.SetDeadline(time.Now().Add(punchStepTimeout))
	m, err := wire.ReadPunch(c)
	if err != nil || m.Type != wire.PunchConnect || len(m.Candidates) == 0 {
		return
	}
	dialer := NodeID(m.ID)
	if dialer == n.id || dialer.IsZero() {
		return
	}
	theirs := nat.Behavior{}
	if r, ok := n.Lookup(dialer); ok {
		theirs = recordBehavior(r)
	}
	if nat.CanPunch(n.natBehavior(), theirs) == nat.Relay {
		writePunch(c, wire.PunchMsg{Type: wire.PunchRefused, Reason: wire.RefusedNoPunch})
		return
	}
	tr, err := n.transport()
	if err != nil {
		return
	}
	if !theirs.Public {
		n.sendOpeners(tr, m.Candidates) // before our answer, so before A's SYNC and dial
	}
	if err := writePunch(c, wire.PunchMsg{Type: wire.PunchConnect, ID: n.id, Candidates: n.ourCandidates()}); err != nil {
		return
	}
	s, err := wire.ReadPunch(c)
	if err != nil || s.Type != wire.PunchSync {
		return
	}
	n.stats.punchAnswered.Add(1)
	ctx, cancel := context.WithTimeout(n.ctx, punchDialTimeout)
	defer cancel()
	n.dialParallel(ctx, tr, dialer, m.Candidates)
}
