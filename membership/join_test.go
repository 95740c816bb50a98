package membership

import (
	"slices"
	"testing"
	"time"
)

// TestJoinerWaitsForAccept walks the joiner's side: Connect, JOIN once the
// link is up, the contact in the active view only when it accepts.
func TestJoinerWaitsForAccept(t *testing.T) {
	m := newTestMachine(t, 1, DefaultConfig(), 1)
	outs := m.Join(t0, testPeer(2))
	want(t, outs, "SetTimer(shuffle)", "Connect(n2)", "SetTimer(join n2 +10s)")
	join, at := timerOf(t, outs, TimerJoin)
	want(t, m.HandleConnected(t0, testID(2)), "Send(n2 JOIN)")
	if len(m.Active()) != 0 {
		t.Fatal("contact active before its accept")
	}
	want(t, m.HandleMessage(t0, testID(2), enc(t, Message{Type: MsgNeighborAccept})), "NeighborUp(n2)")
	if got := activeNames(m); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("active %v", got)
	}
	want(t, m.HandleTimer(at, join)) // the join is over
	if s := m.Stats(); s.Joins != 1 || s.NeighborAccepted != 1 || s.JoinRetries != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestJoinRetries: an unanswered JOIN is sent again over the same link,
// with a doubling wait, even once other nodes have made us a neighbour.
func TestJoinRetries(t *testing.T) {
	m := newTestMachine(t, 1, DefaultConfig(), 1)
	join, at := timerOf(t, m.Join(t0, testPeer(2)), TimerJoin)
	want(t, m.HandleConnected(t0, testID(2)), "Send(n2 JOIN)")

	outs := m.HandleTimer(at, join)
	want(t, outs, "Send(n2 JOIN)", "SetTimer(join n2 +30s)")
	join, at = timerOf(t, outs, TimerJoin)

	// A walk made n3 our neighbour meanwhile; the JOIN goes on.
	m.HandleMessage(at, testID(3), enc(t, Message{Type: MsgNeighbor, Priority: PriorityHigh, Peer: testPeer(3)}))
	outs = m.HandleTimer(at, join)
	want(t, outs, "Send(n2 JOIN)", "SetTimer(join n2 +1m10s)")
	join, at = timerOf(t, outs, TimerJoin)

	want(t, m.HandleMessage(at, testID(2), enc(t, Message{Type: MsgNeighborAccept})), "NeighborUp(n2)")
	want(t, m.HandleTimer(at, join))
	if got := activeNames(m); !slices.Equal(got, []string{"n2", "n3"}) {
		t.Fatalf("active %v", got)
	}
	if m.Stats().JoinRetries != 2 {
		t.Fatalf("JoinRetries = %d", m.Stats().JoinRetries)
	}
}

func TestJoinRetryBackoff(t *testing.T) {
	m := newTestMachine(t, 1, DefaultConfig(), 1)
	timer, at := timerOf(t, m.Join(t0, testPeer(2)), TimerJoin)
	m.HandleConnectFailed(t0, testID(2)) // the contact is down
	var waits []time.Duration
	for range 6 {
		outs := m.HandleTimer(at, timer)
		if !slices.Contains(describeAll(outs), "Connect(n2)") {
			t.Fatalf("retry %q has no Connect", describeAll(outs))
		}
		next, nextAt := timerOf(t, outs, TimerJoin)
		waits = append(waits, nextAt.Sub(at))
		m.HandleConnectFailed(at, testID(2))
		timer, at = next, nextAt
	}
	jt := DefaultConfig().JoinTimeout
	wantWaits := []time.Duration{2 * jt, 4 * jt, 8 * jt, 8 * jt, 8 * jt, 8 * jt}
	if !slices.Equal(waits, wantWaits) {
		t.Fatalf("waits %v, want %v", waits, wantWaits)
	}
	if m.Stats().JoinRetries != 6 {
		t.Fatalf("JoinRetries = %d", m.Stats().JoinRetries)
	}
}

func TestJoinBadContact(t *testing.T) {
	m := newTestMachine(t, 1, DefaultConfig(), 1)
	want(t, m.Join(t0, testPeer(1)))
	want(t, m.Join(t0, Peer{}))
	if m.Stats().Drop.BadPeer != 2 {
		t.Fatalf("Drop.BadPeer = %d", m.Stats().Drop.BadPeer)
	}
}

// TestContactAcceptsJoin: the contact takes the joiner at once and starts
// a FORWARD_JOIN walk at each other neighbour.
func TestContactAcceptsJoin(t *testing.T) {
	m, _ := machineWith(t, DefaultConfig(), []int{3, 4}, nil)
	join := enc(t, Message{Type: MsgJoin, Peer: testPeer(9)})
	want(t, m.HandleMessage(t0, testID(9), join),
		"Connect(n9)", "Send(n9 NEIGHBOR_ACCEPT)", "NeighborUp(n9)",
		"Send(n3 FORWARD_JOIN ttl=6 n9)", "Send(n4 FORWARD_JOIN ttl=6 n9)")
	// The same JOIN again (our accept was lost): accept, no new walks.
	want(t, m.HandleMessage(t0, testID(9), join), "Send(n9 NEIGHBOR_ACCEPT)")
	// A JOIN naming someone else than its sender.
	want(t, m.HandleMessage(t0, testID(8), join))
	if s := m.Stats(); s.JoinsAccepted != 1 || s.Drop.Spoofed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestForwardJoin(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		name        string
		active      []int
		ttl         uint8
		newNode     int
		want        []string // "X" stands for either of n3, n4
		wantPassive bool
	}{
		{"ttl_zero_ends_walk", []int{2, 3, 4}, 0, 9, []string{"Connect(n9)", "SetTimer(neighbor n9 +5s)"}, false},
		{"one_neighbour_ends_walk", []int{2}, 5, 9, []string{"Connect(n9)", "SetTimer(neighbor n9 +5s)"}, false},
		{"prwl_adds_passive", []int{2, 3, 4}, uint8(cfg.PRWL), 9, []string{"Send(X FORWARD_JOIN ttl=2 n9)"}, true},
		{"forwards", []int{2, 3, 4}, 5, 9, []string{"Send(X FORWARD_JOIN ttl=4 n9)"}, false},
		{"already_neighbour", []int{2, 3, 9}, 0, 9, nil, false},
		{"about_self", []int{2, 3, 4}, 0, 1, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := machineWith(t, cfg, tt.active, nil)
			outs := m.HandleMessage(t0, testID(2), enc(t, Message{Type: MsgForwardJoin, TTL: tt.ttl, Peer: testPeer(tt.newNode)}))
			got := describeAll(outs)
			for i := range got {
				got[i] = replaceX(got[i])
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("outputs %q, want %q", describeAll(outs), tt.want)
			}
			if inPassive(m, tt.newNode) != tt.wantPassive {
				t.Fatalf("new node passive: %v, want %v", inPassive(m, tt.newNode), tt.wantPassive)
			}
			if tt.newNode == 1 && m.Stats().Drop.Self != 1 {
				t.Fatalf("Drop.Self = %d", m.Stats().Drop.Self)
			}
		})
	}
}

// replaceX hides which of n3, n4 a random walk took.
func replaceX(s string) string {
	for _, n := range []string{"(n3 ", "(n4 "} {
		if len(s) > 5 && s[4:8] == n {
			return s[:5] + "X" + s[7:]
		}
	}
	return s
}

// TestWalkEndWaitsForAccept: the end of a walk asks the new node with
// high priority and adds it only on accept, dropping a random member if
// full (the paper's forced add).
func TestWalkEndWaitsForAccept(t *testing.T) {
	m, _ := machineWith(t, DefaultConfig(), []int{2, 3, 4, 5, 6}, nil)
	m.HandleMessage(t0, testID(2), enc(t, Message{Type: MsgForwardJoin, TTL: 0, Peer: testPeer(9)}))
	want(t, m.HandleConnected(t0, testID(9)), "Send(n9 NEIGHBOR high)")
	if m.active.has(testID(9)) {
		t.Fatal("new node active before its accept")
	}
	outs := m.HandleMessage(t0, testID(9), enc(t, Message{Type: MsgNeighborAccept}))
	got := describeAll(outs)
	if len(got) != 4 || got[3] != "NeighborUp(n9)" || got[1][:11] != "Disconnect(" {
		t.Fatalf("outputs %q, want an eviction then NeighborUp(n9)", got)
	}
	if m.active.len() != 5 || !m.active.has(testID(9)) {
		t.Fatalf("active %v", activeNames(m))
	}
}
