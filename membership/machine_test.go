package membership

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

func TestMalformedMessagesCounted(t *testing.T) {
	join := enc(t, Message{Type: MsgJoin, Peer: testPeer(2)})
	tests := []struct {
		name    string
		from    identity.NodeID
		msg     []byte
		counter func(DropCounts) uint64
	}{
		{"empty", testID(2), nil, func(d DropCounts) uint64 { return d.Malformed }},
		{"unknown_type", testID(2), []byte{0x42}, func(d DropCounts) uint64 { return d.Malformed }},
		{"truncated_join", testID(2), join[:len(join)-3], func(d DropCounts) uint64 { return d.Malformed }},
		{"trailing_byte", testID(2), append(enc(t, Message{Type: MsgDisconnect}), 0), func(d DropCounts) uint64 { return d.Malformed }},
		{"oversized", testID(2), make([]byte, MaxMessageSize+1), func(d DropCounts) uint64 { return d.Oversized }},
		{"from_self", testID(1), join, func(d DropCounts) uint64 { return d.BadSender }},
		{"from_zero_id", identity.NodeID{}, join, func(d DropCounts) uint64 { return d.BadSender }},
		{"spoofed_join", testID(3), join, func(d DropCounts) uint64 { return d.Spoofed }},
		{"unasked_reject", testID(2), enc(t, Message{Type: MsgNeighborReject}), func(d DropCounts) uint64 { return d.Unexpected }},
		{"unasked_shuffle_reply", testID(2), enc(t, Message{Type: MsgShuffleReply, Peers: []Peer{testPeer(5)}}), func(d DropCounts) uint64 { return d.Unexpected }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMachine(t, 1, DefaultConfig(), 1)
			want(t, m.HandleMessage(t0, tt.from, tt.msg))
			if got := tt.counter(m.Stats().Drop); got != 1 {
				t.Fatalf("counter = %d, want 1 (drops %+v)", got, m.Stats().Drop)
			}
			if len(m.Active())+len(m.Passive()) != 0 {
				t.Fatal("a dropped message changed the views")
			}
		})
	}
}

func TestStatsCountMessages(t *testing.T) {
	m := newTestMachine(t, 1, DefaultConfig(), 1)
	m.HandleMessage(t0, testID(2), enc(t, Message{Type: MsgJoin, Peer: testPeer(2)}))
	s := m.Stats()
	if s.In.Join != 1 || s.Out.NeighborAccept != 1 || s.In.Total() != 1 || s.Out.Total() != 1 || s.NeighborUps != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStaleTimersIgnored(t *testing.T) {
	m, tick := machineWith(t, DefaultConfig(), []int{2}, []int{3})
	for _, tm := range []Timer{{}, {Kind: TimerJoin, Peer: testID(2)}, {Kind: TimerNeighbor, Peer: testID(3)}, {Kind: 99}} {
		want(t, m.HandleTimer(t0, tm))
	}
	outs := m.HandleTimer(t0.Add(time.Minute), tick)
	if len(outs) == 0 {
		t.Fatal("the live shuffle timer did nothing")
	}
	want(t, m.HandleTimer(t0.Add(time.Minute), tick)) // fired already: stale
}

func TestViewsAreSortedCopies(t *testing.T) {
	m, _ := machineWith(t, DefaultConfig(), []int{9, 3, 7}, []int{40, 12, 30})
	for _, v := range [][]Peer{m.Active(), m.Passive()} {
		for i := 1; i < len(v); i++ {
			if !v[i-1].ID.Less(v[i].ID) {
				t.Fatalf("not sorted: %s before %s", name(v[i-1].ID), name(v[i].ID))
			}
		}
	}
	a := m.Active()
	a[0].Addrs[0] = netip.MustParseAddrPort("192.0.2.1:1")
	if m.Active()[0].Addrs[0] == a[0].Addrs[0] {
		t.Fatal("Active shares memory with the machine")
	}
}

func TestSetSelf(t *testing.T) {
	m := newTestMachine(t, 1, DefaultConfig(), 1)
	p := testPeer(1)
	p.NoInbound = true
	if err := m.SetSelf(p); err != nil {
		t.Fatal(err)
	}
	outs := m.Join(t0, testPeer(2))
	_ = outs
	outs = m.HandleConnected(t0, testID(2))
	_, msg := sent(t, outs)
	if !msg.Peer.NoInbound {
		t.Fatal("JOIN does not carry the new self")
	}
	if err := m.SetSelf(testPeer(5)); !errors.Is(err, ErrBadPeer) {
		t.Fatalf("SetSelf with another ID: %v", err)
	}
}

func TestNew(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	bad := DefaultConfig()
	bad.ActiveSize = 0
	tooMany := testPeer(1)
	for range MaxAddrs {
		tooMany.Addrs = append(tooMany.Addrs, tooMany.Addrs[0])
	}
	tests := []struct {
		name string
		self Peer
		cfg  Config
		rng  *rand.Rand
	}{
		{"bad_config", testPeer(1), bad, rng},
		{"zero_self", Peer{}, DefaultConfig(), rng},
		{"too_many_addrs", tooMany, DefaultConfig(), rng},
		{"nil_rand", testPeer(1), DefaultConfig(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.self, tt.cfg, tt.rng); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("err = %v, want ErrBadConfig", err)
			}
		})
	}
	m, err := New(testPeer(1), DefaultConfig(), rng)
	if err != nil || m.Self().ID != testID(1) {
		t.Fatalf("New: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"active_zero", func(c *Config) { c.ActiveSize = 0 }},
		{"active_too_big", func(c *Config) { c.ActiveSize = MaxActiveSize + 1 }},
		{"passive_zero", func(c *Config) { c.PassiveSize = 0 }},
		{"passive_too_big", func(c *Config) { c.PassiveSize = MaxPassiveSize + 1 }},
		{"arwl_negative", func(c *Config) { c.ARWL = -1 }},
		{"arwl_too_big", func(c *Config) { c.ARWL = MaxTTL + 1 }},
		{"prwl_above_arwl", func(c *Config) { c.PRWL = c.ARWL + 1 }},
		{"prwl_negative", func(c *Config) { c.PRWL = -1 }},
		{"shuffle_active_negative", func(c *Config) { c.ShuffleActive = -1 }},
		{"shuffle_too_many", func(c *Config) { c.ShuffleActive, c.ShufflePassive = MaxShufflePeers, 1 }},
		{"shuffle_ttl_too_big", func(c *Config) { c.ShuffleTTL = MaxTTL + 1 }},
		{"shuffle_interval_zero", func(c *Config) { c.ShuffleInterval = 0 }},
		{"join_timeout_zero", func(c *Config) { c.JoinTimeout = 0 }},
		{"neighbor_timeout_negative", func(c *Config) { c.NeighborTimeout = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Validate = %v, want ErrBadConfig", err)
			}
		})
	}
}

// TestRejoinWhenAlone: a node that lost both views goes back to its last
// contact at the next shuffle tick.
func TestRejoinWhenAlone(t *testing.T) {
	m := newTestMachine(t, 1, DefaultConfig(), 1)
	tick, _ := timerOf(t, m.Join(t0, testPeer(2)), TimerShuffle)
	m.HandleConnected(t0, testID(2))
	want(t, m.HandleMessage(t0, testID(2), enc(t, Message{Type: MsgNeighborAccept})), "NeighborUp(n2)")
	want(t, m.HandleDisconnected(t0, testID(2)), "NeighborDown(n2)") // nobody passive to ask
	outs := m.HandleTimer(t0.Add(time.Minute), tick)
	got := describeAll(outs)
	if len(got) != 3 || got[0] != "SetTimer(shuffle)" || got[1] != "Connect(n2)" {
		t.Fatalf("outputs %q, want the next tick and a JOIN to n2", got)
	}
	if m.Stats().Rejoins != 1 {
		t.Fatalf("Rejoins = %d", m.Stats().Rejoins)
	}
}
