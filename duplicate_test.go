package mycelium

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

// settleTimeout bounds the wait for two nodes to agree on one connection.
// It is a safety net, not a timing bar: the wait ends on the event.
const settleTimeout = 10 * time.Second

// orderedKeys returns two fresh keys, the one with the lower ID first.
func orderedKeys(t *testing.T) (lo, hi *Key) {
	t.Helper()
	k1, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID().Less(k1.ID()) {
		k1, k2 = k2, k1
	}
	return k1, k2
}

func withKey(k *Key) func(*Config) { return func(c *Config) { c.Key = k } }

// peerView is one node's table entry for a peer, copied under the lock.
type peerView struct {
	active   *peerConn
	draining []*peerConn
}

func viewOf(n *Node, id NodeID) peerView {
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	ps := n.peers.peers[id]
	if ps == nil {
		return peerView{}
	}
	return peerView{active: ps.active, draining: append([]*peerConn(nil), ps.draining...)}
}

func streamsOf(n *Node, pc *peerConn) int {
	n.peers.mu.Lock()
	defer n.peers.mu.Unlock()
	return pc.streams
}

// changedChan returns a channel closed at the next change to id's state.
func (t *peerTable) changedChan(id NodeID) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.getLocked(id).changed
}

// connKey names a QUIC connection identically at both its ends: TLS
// keying material exported from the connection's handshake.
func connKey(t *testing.T, pc *peerConn) string {
	t.Helper()
	tls := pc.qc.ConnectionState().TLS
	k, err := tls.ExportKeyingMaterial("EXPORTER-mycelium-test-conn", nil, 16)
	if err != nil {
		t.Fatal(err)
	}
	return string(k)
}

// waitPeers waits until cond holds for the views a has of b and b of a.
// It re-checks on every change to either table (peerState.changed), so it
// waits on events, not time; settleTimeout only bounds a failure.
func waitPeers(t *testing.T, a, b *Node, what string, cond func(va, vb peerView) bool) {
	t.Helper()
	timeout := time.NewTimer(settleTimeout)
	defer timeout.Stop()
	for {
		// Take the channels before looking, so no change is missed.
		ca, cb := a.peers.changedChan(b.ID()), b.peers.changedChan(a.ID())
		va, vb := viewOf(a, b.ID()), viewOf(b, a.ID())
		if cond(va, vb) {
			return
		}
		select {
		case <-ca:
		case <-cb:
		case <-timeout.C:
			t.Fatalf("after %v, still waiting for %s: a sees %s, b sees %s", settleTimeout, what, describeView(va), describeView(vb))
		}
	}
}

func describeView(v peerView) string {
	if v.active == nil {
		return fmt.Sprintf("no active connection, %d draining", len(v.draining))
	}
	return fmt.Sprintf("active outbound=%v, %d draining", v.active.outbound, len(v.draining))
}

// waitAgreed waits until a and b each hold exactly one live connection to
// the other, none draining, and it is the same connection at both ends.
func waitAgreed(t *testing.T, a, b *Node) {
	t.Helper()
	waitPeers(t, a, b, "one agreed connection", func(va, vb peerView) bool {
		return va.active != nil && vb.active != nil &&
			len(va.draining) == 0 && len(vb.draining) == 0 &&
			connKey(t, va.active) == connKey(t, vb.active)
	})
}

// waitIdle waits until neither node counts a stream on its connection to
// the other: the echo servers close their ends a moment after the client
// has read the echo's EOF.
func waitIdle(t *testing.T, a, b *Node) {
	t.Helper()
	waitPeers(t, a, b, "no streams left", func(va, vb peerView) bool {
		return va.active != nil && vb.active != nil && streamsOf(a, va.active) == 0 && streamsOf(b, vb.active) == 0
	})
}

func TestPickConn(t *testing.T) {
	leakcheck.Check(t)
	loKey, hiKey := orderedKeys(t)
	lo, hi := loKey.ID(), hiKey.ID()
	tests := []struct {
		name          string
		self          NodeID
		old, new      *peerConn
		wantNewWins   bool
		wantDialerOfW NodeID
	}{
		// Different dialers: the lower dialer's connection wins, and both
		// ends, each from its own perspective, name the same one.
		{"lo_view_old_lo_dialed_beats_new_hi_dialed", lo, &peerConn{peer: hi, outbound: true}, &peerConn{peer: hi, outbound: false}, false, lo},
		{"lo_view_new_lo_dialed_beats_old_hi_dialed", lo, &peerConn{peer: hi, outbound: false}, &peerConn{peer: hi, outbound: true}, true, lo},
		{"hi_view_new_lo_dialed_beats_old_hi_dialed", hi, &peerConn{peer: lo, outbound: true}, &peerConn{peer: lo, outbound: false}, true, lo},
		{"hi_view_old_lo_dialed_beats_new_hi_dialed", hi, &peerConn{peer: lo, outbound: false}, &peerConn{peer: lo, outbound: true}, false, lo},
		// Same dialer (a redial or a restart): the newer wins.
		{"lo_view_both_outbound_newer_wins", lo, &peerConn{peer: hi, outbound: true}, &peerConn{peer: hi, outbound: true}, true, lo},
		{"lo_view_both_inbound_newer_wins", lo, &peerConn{peer: hi, outbound: false}, &peerConn{peer: hi, outbound: false}, true, hi},
		{"hi_view_both_outbound_newer_wins", hi, &peerConn{peer: lo, outbound: true}, &peerConn{peer: lo, outbound: true}, true, hi},
		{"hi_view_both_inbound_newer_wins", hi, &peerConn{peer: lo, outbound: false}, &peerConn{peer: lo, outbound: false}, true, lo},
		// A circuit and a direct connection: the direct one wins
		// whoever dialed which, at both ends.
		{"lo_view_new_direct_beats_old_circuit", lo, &peerConn{peer: hi, outbound: true, via: []NodeID{{7}}}, &peerConn{peer: hi, outbound: false}, true, hi},
		{"hi_view_old_direct_beats_new_circuit", hi, &peerConn{peer: lo, outbound: true}, &peerConn{peer: lo, outbound: false, via: []NodeID{{7}}}, false, hi},
		{"lo_view_old_direct_beats_new_circuit_by_lo", lo, &peerConn{peer: hi, outbound: false}, &peerConn{peer: hi, outbound: true, via: []NodeID{{7}}}, false, hi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, l := pickConn(tt.self, tt.old, tt.new, time.Second)
			wantW, wantL := tt.old, tt.new
			if tt.wantNewWins {
				wantW, wantL = tt.new, tt.old
			}
			if w != wantW || l != wantL {
				t.Fatalf("pickConn picked the %s connection", map[bool]string{true: "new", false: "old"}[w == tt.new])
			}
			dialer := w.peer
			if w.outbound {
				dialer = tt.self
			}
			if dialer != tt.wantDialerOfW {
				t.Fatalf("winner dialed by %s, want %s", dialer.Short(), tt.wantDialerOfW.Short())
			}
		})
	}

	t.Run("stale_old_loses_to_new", func(t *testing.T) {
		// The peer restarted: this node still holds the old connection,
		// which it dialed from the lower ID, and the peer dials anew.
		// Past the window the new one wins, or the peer would be refused
		// on its only connection for as long as the old one lingers.
		now := time.Now()
		old := &peerConn{peer: hi, outbound: true, since: now.Add(-time.Minute)}
		new := &peerConn{peer: hi, outbound: false, since: now}
		if w, _ := pickConn(lo, old, new, 10*time.Second); w != new {
			t.Fatal("a stale connection beat the peer's new one")
		}
		old.since = now.Add(-time.Second)
		if w, _ := pickConn(lo, old, new, 10*time.Second); w != old {
			t.Fatal("inside the window the lower dialer's connection must win")
		}
	})

	t.Run("both_ends_agree", func(t *testing.T) {
		// The same two connections, seen from each end, in either
		// arrival order: every view must keep the lo-dialed one.
		for _, loFirst := range []bool{true, false} {
			for _, hiFirst := range []bool{true, false} {
				loView := [2]*peerConn{{peer: hi, outbound: true}, {peer: hi, outbound: false}} // [lo-dialed, hi-dialed]
				hiView := [2]*peerConn{{peer: lo, outbound: false}, {peer: lo, outbound: true}}
				pick := func(self NodeID, v [2]*peerConn, first0 bool) int {
					old, new := v[1], v[0]
					if first0 {
						old, new = v[0], v[1]
					}
					if w, _ := pickConn(self, old, new, time.Second); w == v[0] {
						return 0
					}
					return 1
				}
				if gl, gh := pick(lo, loView, loFirst), pick(hi, hiView, hiFirst); gl != 0 || gh != 0 {
					t.Errorf("lo first=%v hi first=%v: lo keeps #%d, hi keeps #%d, want both #0 (lo-dialed)", loFirst, hiFirst, gl, gh)
				}
			}
		}
	})
}

// TestSimultaneousDialCollapse has two nodes dial each other at the same
// moment, over many fresh pairs. Each pair must end with one connection,
// the same at both ends, dialed by the lower ID, and no dial may fail.
func TestSimultaneousDialCollapse(t *testing.T) {
	leakcheck.Check(t)
	const rounds = 20
	collisions := 0
	for i := range rounds {
		t.Run(fmt.Sprintf("round_%02d", i), func(t *testing.T) {
			a, b := newTestNode(t), newTestNode(t)
			for _, n := range []*Node{a, b} {
				l, err := n.Listen("echo")
				if err != nil {
					t.Fatal(err)
				}
				serveEcho(t, l)
			}
			a.AddPeerAddr(b.ID(), b.LocalAddr())
			b.AddPeerAddr(a.ID(), a.LocalAddr())

			type result struct {
				c   net.Conn
				err error
			}
			start := make(chan struct{})
			ra, rb := make(chan result, 1), make(chan result, 1)
			ctx := ctxT(t)
			dial := func(from, to *Node, out chan<- result) {
				<-start
				c, err := from.Dial(ctx, to.ID(), "echo")
				out <- result{c, err}
			}
			go dial(a, b, ra)
			go dial(b, a, rb)
			close(start)
			resA, resB := <-ra, <-rb
			for _, r := range []result{resA, resB} {
				if r.c != nil {
					defer r.c.Close()
				}
			}
			if resA.err != nil || resB.err != nil {
				t.Fatalf("dials: a->b: %v; b->a: %v", resA.err, resB.err)
			}
			for _, e := range []struct {
				name string
				c    net.Conn
			}{{"a->b", resA.c}, {"b->a", resB.c}} {
				if err := echoCheck(e.c, 64<<10); err != nil {
					// If the stream ran on the connection that lost,
					// the echo server's Close drained it, and the
					// loser was closed before this end read the echo.
					t.Fatalf("%s echo: %v", e.name, err)
				}
			}
			resA.c.Close()
			resB.c.Close()

			waitAgreed(t, a, b)
			waitIdle(t, a, b)
			sa, sb := a.Stats(), b.Stats()
			if len(sa.Peers) != 1 || len(sb.Peers) != 1 {
				t.Fatalf("a has %d peer entries, b has %d; want 1 each", len(sa.Peers), len(sb.Peers))
			}
			pa, pb := sa.Peers[0], sb.Peers[0]
			if pa.Outbound == pb.Outbound {
				t.Fatalf("a's outbound=%v and b's outbound=%v: the ends disagree on who dialed", pa.Outbound, pb.Outbound)
			}
			if pa.Streams != 0 || pb.Streams != 0 {
				t.Errorf("streams still counted after both closed: a %d, b %d", pa.Streams, pb.Streams)
			}
			dialer, other := b.ID(), a.ID()
			if pa.Outbound {
				dialer, other = a.ID(), b.ID()
			}
			bothDialed := sa.Counters.ConnsOut > 0 && sb.Counters.ConnsOut > 0
			if bothDialed {
				collisions++
				if !dialer.Less(other) {
					t.Fatalf("both dialed, and the survivor was dialed by the higher ID %s", dialer.Short())
				}
			} else if (dialer == a.ID()) != (sa.Counters.ConnsOut > 0) {
				t.Fatalf("only one node dialed, yet the survivor was dialed by the other")
			}
		})
	}
	t.Logf("%d of %d rounds had both nodes dial", collisions, rounds)
	if collisions == 0 && !t.Failed() {
		// Both goroutines are released by one channel close, and a
		// handshake takes far longer than that; no collision in 20
		// rounds means the test no longer exercises the collapse.
		t.Error("no round had both nodes dial; the collapse went untested")
	}
}

// TestCollapseKeepsOpenStream checks that a stream open on the connection
// that loses a duplicate race carries on, that new streams go to the
// winner, and that the loser closes once its last stream ends.
func TestCollapseKeepsOpenStream(t *testing.T) {
	leakcheck.Check(t)
	// b has the lower ID, so a connection b dials beats one a dialed.
	loKey, hiKey := orderedKeys(t)
	a := newTestNode(t, withKey(hiKey))
	b := newTestNode(t, withKey(loKey))
	l, err := b.Listen("echo")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	a.AddPeerAddr(b.ID(), b.LocalAddr())

	s, err := a.Dial(ctxT(t), b.ID(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exchange := func(t *testing.T, what string, size int) {
		t.Helper()
		want := make([]byte, size)
		rand.Read(want)
		s.SetDeadline(time.Now().Add(replyTimeout))
		defer s.SetDeadline(time.Time{})
		if _, err := s.Write(want); err != nil {
			t.Fatalf("%s: write: %v", what, err)
		}
		got := make([]byte, size)
		if _, err := io.ReadFull(s, got); err != nil {
			t.Fatalf("%s: read: %v", what, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: echo differs", what)
		}
	}
	exchange(t, "before the collapse", 16<<10)
	conn1 := viewOf(a, b.ID()).active
	if conn1 == nil || !conn1.outbound {
		t.Fatalf("a's connection to b: %s, want a's own outbound one", describeView(viewOf(a, b.ID())))
	}

	// b opens a second connection, as if its own dial had raced a's.
	tr, err := b.transport()
	if err != nil {
		t.Fatal(err)
	}
	qc, err := tr.Dial(ctxT(t), a.LocalAddr(), a.ID())
	if err != nil {
		t.Fatal(err)
	}
	b.stats.connsOut.Add(1)
	b.addConn(qc, a.ID(), true)

	// Both ends move to b's connection; a's drains for s.
	waitPeers(t, a, b, "both ends to adopt b's connection with a's draining", func(va, vb peerView) bool {
		return va.active != nil && !va.active.outbound && len(va.draining) == 1 && va.draining[0] == conn1 &&
			vb.active != nil && vb.active.outbound && len(vb.draining) == 1
	})
	if k1, k2 := connKey(t, conn1), connKey(t, viewOf(b, a.ID()).draining[0]); k1 != k2 {
		t.Fatal("b drains a different connection from the one a drains")
	}
	if err := conn1.qc.Context().Err(); err != nil {
		t.Fatalf("the losing connection closed under an open stream: %v", context.Cause(conn1.qc.Context()))
	}

	t.Run("open_stream_survives", func(t *testing.T) {
		exchange(t, "after the collapse", 64<<10)
	})

	t.Run("new_dial_uses_winner", func(t *testing.T) {
		c, err := a.Dial(ctxT(t), b.ID(), "echo")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		winner := viewOf(a, b.ID()).active
		if winner == conn1 {
			t.Fatal("a's active connection is still the loser")
		}
		if n := streamsOf(a, winner); n != 1 {
			t.Fatalf("winner carries %d streams, want the new one", n)
		}
		if n := streamsOf(a, conn1); n != 1 {
			t.Fatalf("loser carries %d streams, want only s", n)
		}
		echoRoundTrip(t, c, 64<<10)
	})

	t.Run("loser_closes_after_last_stream", func(t *testing.T) {
		if err := s.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Now().Add(replyTimeout))
		if rest, err := io.ReadAll(s); err != nil || len(rest) != 0 {
			// b's echo handler wrote FIN and closed its end, which
			// released b's last stream on the loser: if b closes the
			// connection then, the FIN and anything else a has not
			// read yet are lost.
			t.Fatalf("reading s to its end after b closed its side: %d bytes, %v; want EOF", len(rest), err)
		}
		s.Close()
		select {
		case <-conn1.qc.Context().Done():
		case <-time.After(settleTimeout):
			t.Fatalf("the drained loser is still open %v after its last stream closed", settleTimeout)
		}
		var appErr *quic.ApplicationError
		if cause := context.Cause(conn1.qc.Context()); !errors.As(cause, &appErr) || appErr.ErrorCode != codeDuplicate {
			t.Fatalf("loser closed with %v, want application error %d (duplicate)", cause, codeDuplicate)
		}
		waitAgreed(t, a, b)
		if va := viewOf(a, b.ID()); va.active.outbound {
			t.Fatal("a kept its own connection")
		}
	})
}

func echoCheck(c net.Conn, size int) error {
	c.SetDeadline(time.Now().Add(replyTimeout))
	defer c.SetDeadline(time.Time{})
	return echo.RoundTrip(c, size)
}
