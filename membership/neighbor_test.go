package membership

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNeighborRequestHandling(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		name   string
		active []int
		prio   Priority
		from   int
		body   int // the peer the NEIGHBOR names (its sender unless spoofed)
		want   []string
		evicts bool
	}{
		{
			name: "first_neighbour_arms_shuffle", prio: PriorityLow, from: 7, body: 7,
			want: []string{"Connect(n7)", "Send(n7 NEIGHBOR_ACCEPT)", "NeighborUp(n7)", "SetTimer(shuffle)"},
		},
		{
			name: "low_accepted_with_room", active: []int{2, 3, 4, 5}, prio: PriorityLow, from: 7, body: 7,
			want: []string{"Connect(n7)", "Send(n7 NEIGHBOR_ACCEPT)", "NeighborUp(n7)"},
		},
		{
			name: "low_rejected_when_full", active: []int{2, 3, 4, 5, 6}, prio: PriorityLow, from: 7, body: 7,
			want: []string{"Send(n7 NEIGHBOR_REJECT)"},
		},
		{
			name: "high_accepted_with_eviction", active: []int{2, 3, 4, 5, 6}, prio: PriorityHigh, from: 7, body: 7,
			want:   []string{"Send(VICTIM DISCONNECT)", "Disconnect(VICTIM)", "NeighborDown(VICTIM)", "Connect(n7)", "Send(n7 NEIGHBOR_ACCEPT)", "NeighborUp(n7)"},
			evicts: true,
		},
		{
			name: "already_active_accepted_again", active: []int{2, 3, 4, 5, 7}, prio: PriorityLow, from: 7, body: 7,
			want: []string{"Send(n7 NEIGHBOR_ACCEPT)"},
		},
		{
			name: "spoofed_dropped", active: []int{2}, prio: PriorityHigh, from: 7, body: 8,
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := machineWith(t, cfg, tt.active, nil)
			before := slices.Clone(m.Active())
			outs := m.HandleMessage(t0, testID(tt.from), enc(t, Message{Type: MsgNeighbor, Priority: tt.prio, Peer: testPeer(tt.body)}))
			wantOuts := slices.Clone(tt.want)
			if tt.evicts {
				victim, _ := sent(t, outs[:1])
				for i := range wantOuts {
					wantOuts[i] = strings.ReplaceAll(wantOuts[i], "VICTIM", name(victim.ID))
				}
				if !m.passive.has(victim.ID) {
					t.Errorf("evicted %s is not in the passive view", name(victim.ID))
				}
				if !slices.ContainsFunc(before, func(p Peer) bool { return p.ID == victim.ID }) {
					t.Errorf("evicted %s was not active", name(victim.ID))
				}
			}
			want(t, outs, wantOuts...)
			if n := m.active.len(); n > cfg.ActiveSize {
				t.Errorf("active view has %d peers", n)
			}
			if tt.body != tt.from && m.Stats().Drop.Spoofed != 1 {
				t.Errorf("Drop.Spoofed = %d, want 1", m.Stats().Drop.Spoofed)
			}
		})
	}
}

// TestRepairFromPassive: a neighbour fails; the node asks every passive
// peer at once (one per free slot), the first asked with high priority
// since its active view is empty, and takes the accepter only when the
// accept arrives.
func TestRepairFromPassive(t *testing.T) {
	m, shuffle := machineWith(t, DefaultConfig(), []int{2}, []int{3, 4, 5})
	outs := m.HandleDisconnected(t0, testID(2))
	if got := describeAll(outs); got[0] != "NeighborDown(n2)" || len(got) != 7 {
		t.Fatalf("outputs %q, want NeighborDown then a Connect and a timer for each of 3 passive peers", got)
	}
	var asked []string
	for _, o := range outs {
		if c, ok := o.(Connect); ok {
			asked = append(asked, name(c.Peer.ID))
		}
	}
	slices.Sort(asked)
	if !slices.Equal(asked, []string{"n3", "n4", "n5"}) {
		t.Fatalf("asked %v, want n3 n4 n5", asked)
	}
	if len(m.Active()) != 0 {
		t.Fatal("active view not empty after its only member failed")
	}
	if inPassive(m, 2) {
		t.Fatal("failed n2 went to the passive view")
	}

	want(t, m.HandleConnected(t0, testID(3)), "Send(n3 NEIGHBOR high)")
	want(t, m.HandleConnected(t0, testID(4)), "Send(n4 NEIGHBOR low)") // one high request at a time
	if len(m.Active()) != 0 {
		t.Fatal("a peer entered the active view before its accept")
	}

	want(t, m.HandleConnectFailed(t0, testID(5)))
	if inPassive(m, 5) {
		t.Error("n5, whose link failed, is still passive")
	}
	want(t, m.HandleMessage(t0, testID(4), enc(t, Message{Type: MsgNeighborReject})), "Disconnect(n4)")
	if !inPassive(m, 4) {
		t.Error("n4, which rejected, left the passive view")
	}
	want(t, m.HandleMessage(t0, testID(3), enc(t, Message{Type: MsgNeighborAccept})), "NeighborUp(n3)")
	if got := activeNames(m); !slices.Equal(got, []string{"n3"}) {
		t.Fatalf("active %v, want [n3]", got)
	}

	// n4 rejected us: it is asked again only after the next shuffle tick.
	outs = m.HandleTimer(t0.Add(time.Minute), shuffle)
	got := describeAll(outs)
	if !slices.Contains(got, "Connect(n4)") || !slices.Contains(got, "Send(n3 SHUFFLE ttl=6 origin=n1 n=1)") {
		t.Fatalf("shuffle tick: %q, want a new request to n4 and a SHUFFLE to n3", got)
	}
	s := m.Stats()
	if s.Failures != 1 || s.NeighborFailures != 1 || s.NeighborRejected != 1 || s.NeighborAccepted != 1 || s.NeighborRequests != 4 {
		t.Errorf("stats %+v", s)
	}
}

func TestNeighborTimeout(t *testing.T) {
	m, _ := machineWith(t, DefaultConfig(), []int{2}, []int{3})
	outs := m.HandleDisconnected(t0, testID(2))
	timer, at := timerOf(t, outs, TimerNeighbor)
	if d := at.Sub(t0); d != DefaultConfig().NeighborTimeout {
		t.Fatalf("neighbor timer in %v", d)
	}
	want(t, m.HandleConnected(t0, testID(3)), "Send(n3 NEIGHBOR high)")
	want(t, m.HandleTimer(at, timer), "Disconnect(n3)")
	if inPassive(m, 3) || len(m.pending) != 0 || len(m.links) != 0 {
		t.Fatal("a timed-out peer is kept")
	}
	if m.Stats().NeighborTimeouts != 1 {
		t.Fatalf("NeighborTimeouts = %d", m.Stats().NeighborTimeouts)
	}
	want(t, m.HandleTimer(at, timer)) // stale now
	// A late accept is answered with DISCONNECT.
	want(t, m.HandleMessage(at, testID(3), enc(t, Message{Type: MsgNeighborAccept})), "Send(n3 DISCONNECT)", "Disconnect(n3)")
	if m.Stats().Drop.Unexpected != 1 {
		t.Fatalf("Drop.Unexpected = %d", m.Stats().Drop.Unexpected)
	}
}

// TestTimeoutWhileConnecting: a request that times out before its link
// is up closes the link when it comes up after all.
func TestTimeoutWhileConnecting(t *testing.T) {
	m, _ := machineWith(t, DefaultConfig(), []int{2}, []int{3})
	timer, at := timerOf(t, m.HandleDisconnected(t0, testID(2)), TimerNeighbor)
	want(t, m.HandleTimer(at, timer))
	want(t, m.HandleConnected(at, testID(3)), "Disconnect(n3)")
	want(t, m.HandleConnected(at, testID(3)), "Disconnect(n3)") // a link nobody asked for
	if m.Stats().UnwantedLinks != 1 {
		t.Fatalf("UnwantedLinks = %d", m.Stats().UnwantedLinks)
	}
}

func TestDisconnectReceived(t *testing.T) {
	m, _ := machineWith(t, DefaultConfig(), []int{2, 3}, nil)
	want(t, m.HandleMessage(t0, testID(2), enc(t, Message{Type: MsgDisconnect})), "NeighborDown(n2)")
	if !inPassive(m, 2) {
		t.Fatal("the peer that dropped us is not passive")
	}
	if got := activeNames(m); !slices.Equal(got, []string{"n3"}) {
		t.Fatalf("active %v", got)
	}
	// Its link closing afterwards changes nothing.
	want(t, m.HandleDisconnected(t0, testID(2)))
	// A DISCONNECT from a stranger is counted.
	want(t, m.HandleMessage(t0, testID(9), enc(t, Message{Type: MsgDisconnect})))
	if m.Stats().Drop.Unexpected != 1 || m.Stats().Disconnected != 1 {
		t.Fatalf("stats %+v", m.Stats())
	}
}

// TestAcceptOfActiveLinkFailure: the accepter's Connect for a new
// neighbour fails; the neighbour leaves.
func TestAcceptOfActiveLinkFailure(t *testing.T) {
	m, _ := machineWith(t, DefaultConfig(), []int{2, 3}, nil)
	want(t, m.HandleConnected(t0, testID(2))) // confirmed: nothing to do
	want(t, m.HandleConnectFailed(t0, testID(3)), "NeighborDown(n3)")
	if got := activeNames(m); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("active %v", got)
	}
}

// TestStarvedNodeEscalates: a node whose active view stays at most half
// full, every peer refusing it, sends one high-priority NEIGHBOR after
// StarveTicks shuffle ticks, then waits twice as long for the next; a
// full view resets the wait; a view more than half full never escalates;
// StarveTicks 0 never escalates.
func TestStarvedNodeEscalates(t *testing.T) {
	// tick runs one shuffle tick, answers the NEIGHBOR it starts to n3
	// with a reject, and returns that NEIGHBOR's priority.
	tick := func(t *testing.T, m *Machine, shuffle *Timer, now time.Time) Priority {
		t.Helper()
		outs := m.HandleTimer(now, *shuffle)
		*shuffle, _ = timerOf(t, outs, TimerShuffle)
		if got := describeAll(outs); !slices.Contains(got, "Connect(n3)") {
			t.Fatalf("tick: %q, want a request to n3", got)
		}
		_, msg := sent(t, m.HandleConnected(now, testID(3)))
		if msg.Type != MsgNeighbor {
			t.Fatalf("sent %v, want NEIGHBOR", msg.Type)
		}
		want(t, m.HandleMessage(now, testID(3), enc(t, Message{Type: MsgNeighborReject})), "Disconnect(n3)")
		return msg.Priority
	}
	highTicks := func(t *testing.T, m *Machine, shuffle *Timer, from, n int) []int {
		var high []int
		for i := from; i < from+n; i++ {
			if tick(t, m, shuffle, t0.Add(time.Duration(i)*time.Minute)) == PriorityHigh {
				high = append(high, i)
			}
		}
		return high
	}

	t.Run("default", func(t *testing.T) {
		m, shuffle := machineWith(t, DefaultConfig(), []int{2}, []int{3})
		if got := highTicks(t, m, &shuffle, 1, 10); !slices.Equal(got, []int{3, 9}) {
			t.Fatalf("high-priority NEIGHBORs at ticks %v, want [3 9] (after 3 ticks, then after 6)", got)
		}
		if s := m.Stats(); s.Escalations != 2 || s.NeighborRejected != 10 {
			t.Fatalf("Escalations %d, NeighborRejected %d, want 2 and 10", s.Escalations, s.NeighborRejected)
		}
		// Filled up: the next tick resets the backoff.
		for n := 4; n <= 7; n++ {
			m.HandleMessage(t0, testID(n), enc(t, Message{Type: MsgNeighbor, Peer: testPeer(n)}))
		}
		if len(m.Active()) != 5 {
			t.Fatalf("active %v, want 5 peers", activeNames(m))
		}
		outs := m.HandleTimer(t0.Add(11*time.Minute), shuffle)
		shuffle, _ = timerOf(t, outs, TimerShuffle)
		m.HandleDisconnected(t0.Add(11*time.Minute), testID(4)) // repair asks n3, politely
		if _, msg := sent(t, m.HandleConnected(t0, testID(3))); msg.Priority != PriorityLow {
			t.Fatal("repair of a view that is not empty asked with high priority")
		}
		want(t, m.HandleMessage(t0, testID(3), enc(t, Message{Type: MsgNeighborReject})), "Disconnect(n3)")
		if got := highTicks(t, m, &shuffle, 12, 10); len(got) != 0 {
			t.Fatalf("4 of 5 neighbours: high-priority NEIGHBORs at ticks %v, want none", got)
		}
		m.HandleDisconnected(t0.Add(22*time.Minute), testID(5))
		m.HandleDisconnected(t0.Add(22*time.Minute), testID(6))
		if got := highTicks(t, m, &shuffle, 23, 3); !slices.Equal(got, []int{25}) {
			t.Fatalf("2 of 5 neighbours after a full view: high-priority NEIGHBORs at ticks %v, want [25]", got)
		}
	})
	t.Run("off", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.StarveTicks = 0
		m, shuffle := machineWith(t, cfg, []int{2}, []int{3})
		if got := highTicks(t, m, &shuffle, 1, 20); len(got) != 0 {
			t.Fatalf("high-priority NEIGHBORs at ticks %v with StarveTicks 0", got)
		}
	})
}
