package membership

import (
	"slices"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// TestShuffleOrigin: the tick sends a SHUFFLE with ShuffleActive other
// active and ShufflePassive passive peers; the reply's peers replace the
// passive peers the SHUFFLE sent first.
func TestShuffleOrigin(t *testing.T) {
	cfg := DefaultConfig()
	m, tick := machineWith(t, cfg, []int{2, 3, 4, 5}, span(10, 39))
	outs := m.HandleTimer(t0.Add(time.Minute), tick)
	to, msg := sent(t, outs)
	if msg.Type != MsgShuffle || msg.Peer.ID != m.self.ID || int(msg.TTL) != cfg.ShuffleTTL {
		t.Fatalf("sent %+v", msg)
	}
	if !m.active.has(to.ID) {
		t.Fatalf("SHUFFLE went to %s, not an active peer", name(to.ID))
	}
	var sentActive, sentPassive []int
	for _, p := range msg.Peers {
		n := int(p.ID[1])
		switch {
		case p.ID == to.ID:
			t.Errorf("the SHUFFLE carries its own target %s", name(p.ID))
		case m.active.has(p.ID):
			sentActive = append(sentActive, n)
		case m.passive.has(p.ID):
			sentPassive = append(sentPassive, n)
		default:
			t.Errorf("the SHUFFLE carries unknown %s", name(p.ID))
		}
	}
	if len(sentActive) != cfg.ShuffleActive || len(sentPassive) != cfg.ShufflePassive {
		t.Fatalf("SHUFFLE carries %d active and %d passive peers, want %d and %d", len(sentActive), len(sentPassive), cfg.ShuffleActive, cfg.ShufflePassive)
	}
	if _, at := timerOf(t, outs, TimerShuffle); at.Sub(t0.Add(time.Minute)) < cfg.ShuffleInterval/2 || at.Sub(t0.Add(time.Minute)) >= cfg.ShuffleInterval*3/2 {
		t.Fatalf("next shuffle at %v, outside [I/2, 3I/2)", at.Sub(t0.Add(time.Minute)))
	}

	// The reply: a peer we know, ourselves, and 5 new peers.
	reply := []Peer{testPeer(sentPassive[0]), m.self}
	fresh := span(60, 64)
	for _, n := range fresh {
		reply = append(reply, testPeer(n))
	}
	want(t, m.HandleMessage(t0, testID(77), enc(t, Message{Type: MsgShuffleReply, Peers: reply})))
	if m.passive.len() != cfg.PassiveSize {
		t.Fatalf("passive view has %d peers, want %d", m.passive.len(), cfg.PassiveSize)
	}
	for _, n := range fresh {
		if !inPassive(m, n) {
			t.Errorf("n%d from the reply is not passive", n)
		}
	}
	// 5 fresh peers into a full view: the 4 passive peers sent go first,
	// then one random old one.
	for _, n := range sentPassive {
		if inPassive(m, n) {
			t.Errorf("n%d, sent in the SHUFFLE, was not evicted first", n)
		}
	}
	if m.passive.has(m.self.ID) {
		t.Error("ourselves in the passive view")
	}
	if m.Stats().ShuffleReplies != 1 {
		t.Fatalf("ShuffleReplies = %d", m.Stats().ShuffleReplies)
	}

	// A second reply to the same SHUFFLE is not taken.
	want(t, m.HandleMessage(t0, testID(78), enc(t, Message{Type: MsgShuffleReply, Peers: []Peer{testPeer(90)}})))
	if inPassive(m, 90) || m.Stats().Drop.Unexpected != 1 {
		t.Fatal("an unasked SHUFFLE_REPLY was taken")
	}
}

// TestShuffleEnd: a walk that ends here is answered over a one-shot link
// with as many passive peers, and what it carried replaces them.
func TestShuffleEnd(t *testing.T) {
	cfg := DefaultConfig()
	m, _ := machineWith(t, cfg, []int{2}, span(10, 39))
	carried := []Peer{testPeer(60), testPeer(61), testPeer(62), testPeer(63), testPeer(64)}
	shuffle := enc(t, Message{Type: MsgShuffle, TTL: 6, Peer: testPeer(50), Peers: carried})
	want(t, m.HandleMessage(t0, testID(2), shuffle), "Connect(n50)") // one neighbour: the walk ends here
	for _, n := range []int{50, 60, 61, 62, 63, 64} {
		if !inPassive(m, n) {
			t.Errorf("n%d is not passive", n)
		}
	}
	if m.passive.len() != cfg.PassiveSize {
		t.Fatalf("passive view has %d peers", m.passive.len())
	}
	outs := m.HandleConnected(t0, testID(50))
	want(t, outs, "Send(n50 SHUFFLE_REPLY n=6)", "Disconnect(n50)")
	_, reply := sent(t, outs)
	for _, p := range reply.Peers {
		if m.passive.has(p.ID) {
			t.Errorf("%s, sent in the reply, was not evicted first", name(p.ID))
		}
		if p.ID == testID(50) {
			t.Error("the reply carries the origin")
		}
	}
	if len(m.links) != 0 {
		t.Fatal("the one-shot link is still held")
	}
}

func TestShuffleWalk(t *testing.T) {
	tests := []struct {
		name   string
		active []int
		ttl    uint8
		origin int
		want   []string
	}{
		{"forwards", []int{2, 3, 4}, 3, 50, []string{"Send(X SHUFFLE ttl=2 origin=n50 n=1)"}},
		{"ttl_one_ends_here", []int{2, 3, 4}, 1, 50, []string{"Connect(n50)"}},
		{"ttl_zero_ends_here", []int{2, 3, 4}, 0, 50, []string{"Connect(n50)"}},
		{"one_neighbour_ends_here", []int{2}, 5, 50, []string{"Connect(n50)"}},
		{"origin_active_answered_directly", []int{2, 3}, 1, 3, []string{"Send(X SHUFFLE_REPLY n=2)"}},
		{"own_shuffle_dropped", []int{2, 3, 4}, 3, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := machineWith(t, DefaultConfig(), tt.active, []int{20, 21})
			outs := m.HandleMessage(t0, testID(2), enc(t, Message{Type: MsgShuffle, TTL: tt.ttl, Peer: testPeer(tt.origin), Peers: []Peer{testPeer(70)}}))
			got := describeAll(outs)
			for i := range got {
				got[i] = replaceX(got[i])
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("outputs %q, want %q", describeAll(outs), tt.want)
			}
		})
	}
}

// TestShuffleReplyQueue: replies to an origin whose link is still coming
// up wait for it, within MaxQueuedPerLink.
func TestShuffleReplyQueue(t *testing.T) {
	m, _ := machineWith(t, DefaultConfig(), []int{2}, []int{20})
	shuffle := enc(t, Message{Type: MsgShuffle, TTL: 0, Peer: testPeer(50)})
	for i := range MaxQueuedPerLink + 2 {
		outs := m.HandleMessage(t0, testID(2), shuffle)
		if i == 0 {
			want(t, outs, "Connect(n50)")
		} else {
			want(t, outs)
		}
	}
	if m.Stats().Drop.Limit != 2 {
		t.Fatalf("Drop.Limit = %d, want 2", m.Stats().Drop.Limit)
	}
	outs := m.HandleConnected(t0, testID(50))
	if len(outs) != MaxQueuedPerLink+1 {
		t.Fatalf("outputs %q, want %d replies and a Disconnect", describeAll(outs), MaxQueuedPerLink)
	}
	// The link fails instead: the queue goes with it.
	m.HandleMessage(t0, testID(2), shuffle)
	want(t, m.HandleConnectFailed(t0, testID(50)))
	if len(m.links) != 0 {
		t.Fatal("a failed one-shot link is still held")
	}
}

// TestContactProbe: a node whose passive view stays short of full while
// its contact is not a neighbour sends the contact a TTL-0 SHUFFLE after
// StarveTicks ticks. A reply naming any peer it knows changes nothing
// (a small overlay); a reply naming only strangers makes it send one of
// them a high-priority NEIGHBOR (an island that knew nobody outside).
func TestContactProbe(t *testing.T) {
	setup := func(t *testing.T) *Machine {
		t.Helper()
		m, shuffle := machineWith(t, DefaultConfig(), []int{2, 3, 4, 5, 6}, []int{7})
		m.contact, m.hasContact = testPeer(9), true
		var outs []Output
		for i := 1; i <= 3; i++ {
			outs = m.HandleTimer(t0.Add(time.Duration(i)*time.Minute), shuffle)
			shuffle, _ = timerOf(t, outs, TimerShuffle)
			if i < 3 && slices.Contains(describeAll(outs), "Connect(n9)") {
				t.Fatalf("probe at tick %d, want it at tick 3", i)
			}
		}
		if !slices.Contains(describeAll(outs), "Connect(n9)") {
			t.Fatalf("tick 3: %q, want a link to the contact", describeAll(outs))
		}
		want(t, m.HandleConnected(t0, testID(9)), "Send(n9 SHUFFLE ttl=0 origin=n1 n=4)", "Disconnect(n9)")
		if m.Stats().ContactProbes != 1 {
			t.Fatalf("ContactProbes = %d", m.Stats().ContactProbes)
		}
		return m
	}
	reply := func(ns ...int) []byte {
		var ps []Peer
		for _, n := range ns {
			ps = append(ps, testPeer(n))
		}
		return enc(t, Message{Type: MsgShuffleReply, Peers: ps})
	}

	t.Run("known", func(t *testing.T) {
		m := setup(t)
		want(t, m.HandleMessage(t0, testID(9), reply(2, 11))) // n2 is known
		if !inPassive(m, 11) {
			t.Error("the contact's sample did not enter the passive view")
		}
		if s := m.Stats(); s.IsolationJoins != 0 || s.Drop.Unexpected != 0 || m.probeOut {
			t.Fatalf("probe still out %v, stats %+v", m.probeOut, s)
		}
	})
	t.Run("strangers", func(t *testing.T) {
		m := setup(t)
		outs := m.HandleMessage(t0, testID(9), reply(11, 12))
		var asked string
		var askedID identity.NodeID
		for _, o := range outs {
			if c, ok := o.(Connect); ok {
				asked, askedID = name(c.Peer.ID), c.Peer.ID
			}
		}
		if asked != "n11" && asked != "n12" {
			t.Fatalf("outputs %q, want a request to n11 or n12", describeAll(outs))
		}
		if !inPassive(m, 11) || !inPassive(m, 12) {
			t.Error("the contact's sample did not enter the passive view")
		}
		want(t, m.HandleConnected(t0, askedID), "Send("+asked+" NEIGHBOR high)")
		if m.Stats().IsolationJoins != 1 {
			t.Fatalf("IsolationJoins = %d", m.Stats().IsolationJoins)
		}
	})
}
