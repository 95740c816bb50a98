package broadcast

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

var testNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Peers in ID order: A < B < C < D; self sorts last.
var (
	self = testID(100)
	pA   = testID(1)
	pB   = testID(2)
	pC   = testID(3)
	pD   = testID(4)
)

func peerName(id identity.NodeID) string {
	switch id {
	case self:
		return "self"
	case pA:
		return "A"
	case pB:
		return "B"
	case pC:
		return "C"
	case pD:
		return "D"
	}
	return id.Short()
}

// harness drives one Machine by hand and renders its outputs as text.
type harness struct {
	t      *testing.T
	m      *Machine
	now    time.Time
	timers []SetTimer // every timer asked for, in order
}

func newHarness(t *testing.T, cfg Config, peers ...identity.NodeID) *harness {
	t.Helper()
	m, err := New(self, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, m: m, now: testNow}
	for _, p := range peers {
		h.m.HandleNeighborUp(h.now, p)
	}
	return h
}

// note records the timers among out and returns out.
func (h *harness) note(out []Output) []Output {
	for _, o := range out {
		if st, ok := o.(SetTimer); ok {
			h.timers = append(h.timers, st)
		}
	}
	return out
}

// render describes outputs one line each.
func (h *harness) render(out []Output) []string {
	h.t.Helper()
	var lines []string
	for _, o := range out {
		switch o := o.(type) {
		case Send:
			msg, err := ParseMessage(o.Msg)
			if err != nil {
				h.t.Fatalf("machine sent an unparsable message %x: %v", o.Msg, err)
			}
			lines = append(lines, fmt.Sprintf("send %s %s", peerName(o.To), describe(msg)))
		case SetTimer:
			lines = append(lines, fmt.Sprintf("timer +%v %s", o.At.Sub(h.now), kindName(o.Timer.kind)))
		case Deliver:
			lines = append(lines, fmt.Sprintf("deliver %s/%s hops=%d from=%s", o.Topic, o.Payload, o.Hops, peerName(o.From)))
		default:
			h.t.Fatalf("unknown output %T", o)
		}
	}
	return lines
}

func describe(m Message) string {
	switch m := m.(type) {
	case Gossip:
		return fmt.Sprintf("GOSSIP r=%d %s/%s", m.Round, m.Topic, m.Payload)
	case IHave:
		rs := make([]string, len(m.Announcements))
		for i, a := range m.Announcements {
			rs[i] = fmt.Sprint(a.Round)
		}
		return "IHAVE r=" + strings.Join(rs, ",")
	case Graft:
		if !m.HasID {
			return "GRAFT link"
		}
		return fmt.Sprintf("GRAFT r=%d", m.Round)
	case Prune:
		return "PRUNE"
	}
	return fmt.Sprintf("%T", m)
}

func kindName(k timerKind) string {
	switch k {
	case timerFlush:
		return "flush"
	case timerMissing:
		return "missing"
	case timerSweep:
		return "sweep"
	}
	return "?"
}

func (h *harness) expect(out []Output, want ...string) {
	h.t.Helper()
	got := h.render(out)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		h.t.Fatalf("outputs:\n  got  %q\n  want %q", got, want)
	}
}

func (h *harness) advance(d time.Duration) { h.now = h.now.Add(d) }

// fire runs the most recent timer of kind k, at its time.
func (h *harness) fire(k timerKind) []Output {
	h.t.Helper()
	for i := len(h.timers) - 1; i >= 0; i-- {
		if st := h.timers[i]; st.Timer.kind == k {
			h.timers = slices.Delete(h.timers, i, i+1)
			if st.At.After(h.now) {
				h.now = st.At
			}
			return h.note(h.m.HandleTimer(h.now, st.Timer))
		}
	}
	h.t.Fatalf("no %s timer was set", kindName(k))
	return nil
}

func (h *harness) recv(from identity.NodeID, msg Message) []Output {
	h.t.Helper()
	b, err := AppendMessage(nil, msg)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.note(h.m.HandleMessage(h.now, from, b))
}

func (h *harness) sets(eager, lazy string) {
	h.t.Helper()
	names := func(ids []identity.NodeID) string {
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = peerName(id)
		}
		return strings.Join(s, ",")
	}
	if e, l := names(h.m.Eager()), names(h.m.Lazy()); e != eager || l != lazy {
		h.t.Fatalf("eager=[%s] lazy=[%s], want eager=[%s] lazy=[%s]", e, l, eager, lazy)
	}
}

func gossip(origin identity.NodeID, seq uint64, round uint16, payload string) Gossip {
	return Gossip{Round: round, Origin: origin, Seq: seq, Topic: "t", Payload: []byte(payload)}
}

func TestMachineTransitions(t *testing.T) {
	cfg := DefaultConfig()
	tests := []struct {
		name string
		run  func(h *harness)
	}{
		{"broadcast_delivers_locally_and_pushes", func(h *harness) {
			h.expect(h.recv(pC, Prune{}))
			h.sets("A,B", "C")
			id, out, err := h.m.Broadcast(h.now, "t", []byte("x"))
			if err != nil {
				h.t.Fatal(err)
			}
			h.note(out)
			h.expect(out,
				"deliver t/x hops=0 from=self",
				"send A GOSSIP r=1 t/x", "send B GOSSIP r=1 t/x",
				"timer +50ms flush", "timer +5s sweep")
			if d := out[0].(Deliver); d.ID != id || d.Origin != self {
				h.t.Fatalf("deliver %+v, want ID %s from origin self", d, id)
			}
			h.expect(h.fire(timerFlush), "send C IHAVE r=1")
		}},
		{"first_gossip_forwards_and_sender_becomes_eager", func(h *harness) {
			h.expect(h.recv(pA, Prune{}))
			h.expect(h.recv(pC, Prune{}))
			h.sets("B", "A,C")
			h.expect(h.recv(pA, gossip(pD, 1, 3, "m")),
				"deliver t/m hops=3 from=A",
				"send B GOSSIP r=4 t/m",
				"timer +50ms flush", "timer +5s sweep")
			h.sets("A,B", "C")
			h.expect(h.fire(timerFlush), "send C IHAVE r=4")
		}},
		{"duplicate_prunes_sender", func(h *harness) {
			h.recv(pA, gossip(pD, 1, 2, "m"))
			h.expect(h.recv(pB, gossip(pD, 1, 2, "m")), "send B PRUNE")
			h.sets("A,C", "B")
			if s := h.m.Stats(); s.Duplicates != 1 || s.Delivered != 1 || s.PruneOut != 1 {
				h.t.Fatalf("stats %+v", s)
			}
		}},
		{"prune_makes_lazy_graft_makes_eager", func(h *harness) {
			h.expect(h.recv(pB, Prune{}))
			h.sets("A,C", "B")
			h.expect(h.recv(pB, Graft{}))
			h.sets("A,B,C", "")
		}},
		{"graft_answers_from_cache", func(h *harness) {
			h.recv(pA, gossip(pD, 1, 2, "m"))
			h.recv(pB, Prune{})
			id := ComputeMessageID(pD, 1, "t", []byte("m"))
			h.expect(h.recv(pB, Graft{HasID: true, ID: id, Round: 9}), "send B GOSSIP r=3 t/m")
			h.sets("A,B,C", "")
			h.expect(h.recv(pB, Graft{HasID: true, ID: MessageID{1}, Round: 1}))
			if s := h.m.Stats(); s.Drops.GraftUnknown != 1 {
				h.t.Fatalf("GraftUnknown = %d, want 1", s.Drops.GraftUnknown)
			}
		}},
		{"ihave_then_timeouts_graft_each_announcer", func(h *harness) {
			h.recv(pA, Prune{})
			h.recv(pB, Prune{})
			h.recv(pC, Prune{})
			id := ComputeMessageID(pD, 1, "t", []byte("m"))
			h.expect(h.recv(pB, IHave{Announcements: []Announcement{{ID: id, Round: 4}}}), "timer +1s missing")
			h.expect(h.recv(pA, IHave{Announcements: []Announcement{{ID: id, Round: 2}}}))
			h.expect(h.recv(pB, IHave{Announcements: []Announcement{{ID: id, Round: 4}}}))
			h.expect(h.fire(timerMissing), "send B GRAFT r=4", "timer +500ms missing")
			h.sets("B", "A,C")
			h.expect(h.fire(timerMissing), "send A GRAFT r=2", "timer +500ms missing")
			h.sets("A,B", "C")
			h.expect(h.fire(timerMissing))
			if s := h.m.Stats(); s.GraftsForMissing != 2 || s.MissingGaveUp != 1 || s.Missing != 0 {
				h.t.Fatalf("stats %+v", s)
			}
		}},
		{"gossip_cancels_missing_timer", func(h *harness) {
			h.recv(pB, Prune{})
			g := gossip(pD, 1, 3, "m")
			h.expect(h.recv(pB, IHave{Announcements: []Announcement{{ID: g.ID(), Round: 3}}}), "timer +1s missing")
			h.advance(100 * time.Millisecond)
			h.expect(h.recv(pA, g),
				"deliver t/m hops=3 from=A",
				"send C GOSSIP r=4 t/m",
				"timer +50ms flush", "timer +5s sweep")
			h.expect(h.fire(timerMissing))
			h.expect(h.fire(timerFlush), "send B IHAVE r=4")
		}},
		{"neighbor_down_forgets_announcements", func(h *harness) {
			id := MessageID{7}
			h.recv(pA, Prune{})
			h.recv(pB, Prune{})
			h.recv(pA, IHave{Announcements: []Announcement{{ID: id, Round: 2}}})
			h.recv(pB, IHave{Announcements: []Announcement{{ID: id, Round: 3}}})
			h.expect(h.m.HandleNeighborDown(h.now, pA))
			h.sets("C", "B")
			h.expect(h.fire(timerMissing), "send B GRAFT r=3", "timer +500ms missing")
		}},
		{"neighbor_down_drops_queued_ihave", func(h *harness) {
			h.recv(pC, Prune{})
			h.recv(pA, gossip(pD, 1, 1, "m"))
			h.m.HandleNeighborDown(h.now, pC)
			h.expect(h.fire(timerFlush))
		}},
		{"neighbor_up_again_is_eager", func(h *harness) {
			h.recv(pC, Prune{})
			h.m.HandleNeighborUp(h.now, pC)
			h.sets("A,B,C", "")
			h.m.HandleNeighborUp(h.now, self)
			h.sets("A,B,C", "")
		}},
		{"optimization_on_ihave_for_received_message", func(h *harness) {
			h.recv(pB, Prune{})
			h.recv(pC, Prune{})
			g := gossip(pD, 1, 10, "m")
			h.recv(pA, g)
			// 10 - 4 = 6 < 7: nothing.
			h.expect(h.recv(pB, IHave{Announcements: []Announcement{{ID: g.ID(), Round: 4}}}))
			// 10 - 3 = 7: graft C, prune the parent A.
			h.expect(h.recv(pC, IHave{Announcements: []Announcement{{ID: g.ID(), Round: 3}}}),
				"send C GRAFT link", "send A PRUNE")
			h.sets("C", "A,B")
			// Now at 3 via C: a later, closer-by-7 announcement is needed.
			h.expect(h.recv(pB, IHave{Announcements: []Announcement{{ID: g.ID(), Round: 1}}}))
			if s := h.m.Stats(); s.Optimizations != 1 {
				h.t.Fatalf("Optimizations = %d, want 1", s.Optimizations)
			}
		}},
		{"optimization_on_gossip_with_pending_announcement", func(h *harness) {
			h.recv(pB, Prune{})
			h.recv(pC, Prune{})
			g := gossip(pD, 1, 9, "m")
			h.recv(pC, IHave{Announcements: []Announcement{{ID: g.ID(), Round: 5}}})
			h.recv(pB, IHave{Announcements: []Announcement{{ID: g.ID(), Round: 2}}})
			h.expect(h.recv(pA, g),
				"deliver t/m hops=9 from=A",
				"timer +50ms flush", "timer +5s sweep",
				"send B GRAFT link", "send A PRUNE")
			h.sets("B", "A,C")
			// Queued before B turned eager; harmless.
			h.expect(h.fire(timerFlush), "send B IHAVE r=10", "send C IHAVE r=10")
		}},
		{"ihave_batches_split_at_max", func(h *harness) {
			h.m.cfg.MaxIHaveBatch = 2
			h.recv(pC, Prune{})
			h.expect(h.recv(pA, gossip(pD, 1, 1, "a")), "deliver t/a hops=1 from=A", "send B GOSSIP r=2 t/a", "timer +50ms flush", "timer +5s sweep")
			h.expect(h.recv(pA, gossip(pD, 2, 1, "b")), "deliver t/b hops=1 from=A", "send B GOSSIP r=2 t/b", "send C IHAVE r=2,2")
			h.expect(h.recv(pA, gossip(pD, 3, 1, "c")), "deliver t/c hops=1 from=A", "send B GOSSIP r=2 t/c")
			h.expect(h.fire(timerFlush), "send C IHAVE r=2")
		}},
		{"not_neighbor_control_dropped_gossip_delivered", func(h *harness) {
			stranger := testID(50)
			h.expect(h.recv(stranger, Prune{}))
			h.expect(h.recv(stranger, Graft{}))
			h.expect(h.recv(stranger, IHave{Announcements: []Announcement{{ID: MessageID{1}, Round: 1}}}))
			g := gossip(pD, 1, 1, "m")
			h.expect(h.recv(stranger, g),
				"deliver t/m hops=1 from="+stranger.Short(),
				"send A GOSSIP r=2 t/m", "send B GOSSIP r=2 t/m", "send C GOSSIP r=2 t/m",
				"timer +5s sweep")
			h.expect(h.recv(stranger, g)) // duplicate: no PRUNE to a stranger
			h.sets("A,B,C", "")
			if s := h.m.Stats(); s.Drops.NotNeighbor != 3 || s.Duplicates != 1 {
				h.t.Fatalf("stats %+v", s)
			}
		}},
		{"cache_expiry_forgets_and_sweeps", func(h *harness) {
			g := gossip(pD, 1, 1, "m")
			h.recv(pA, g)
			h.advance(cfg.CacheTTL - time.Nanosecond)
			h.expect(h.recv(pB, g), "send B PRUNE")
			h.advance(time.Nanosecond)
			out := h.recv(pA, g) // forgotten: delivered again
			if len(out) == 0 {
				h.t.Fatal("expired message not delivered again")
			}
			h.m.HandleNeighborDown(h.now, pA)
			h.m.HandleNeighborDown(h.now, pB)
			h.m.HandleNeighborDown(h.now, pC)
			// Sweep timers keep coming while entries live, then stop.
			for range 200 {
				if len(h.timers) == 0 {
					break
				}
				st := h.timers[0]
				h.timers = h.timers[1:]
				h.now = st.At
				h.note(h.m.HandleTimer(h.now, st.Timer))
			}
			if s := h.m.Stats(); s.CacheEntries != 0 || s.CacheBytes != 0 || len(h.timers) != 0 {
				h.t.Fatalf("after sweeps: entries=%d bytes=%d timers=%d", s.CacheEntries, s.CacheBytes, len(h.timers))
			}
		}},
		{"stale_and_unknown_timers_ignored", func(h *harness) {
			h.expect(h.m.HandleTimer(h.now, Timer{}))
			h.expect(h.m.HandleTimer(h.now, Timer{kind: timerFlush, gen: 99}))
			h.expect(h.m.HandleTimer(h.now, Timer{kind: timerSweep, gen: 99}))
			h.expect(h.m.HandleTimer(h.now, Timer{kind: timerMissing, gen: 99, id: MessageID{1}}))
			h.expect(h.m.HandleTimer(h.now, Timer{kind: 77, gen: 1}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(newHarness(t, cfg, pA, pB, pC))
		})
	}
}

func TestBroadcastRefuses(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPayload = 10
	tests := []struct {
		name    string
		topic   string
		payload []byte
		want    error
	}{
		{"empty_topic", "", nil, ErrBadTopic},
		{"long_topic", strings.Repeat("x", MaxTopicLen+1), nil, ErrBadTopic},
		{"space_in_topic", "a b", nil, ErrBadTopic},
		{"payload_over_config", "t", make([]byte, 11), ErrPayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg, pA)
			if _, out, err := h.m.Broadcast(h.now, tt.topic, tt.payload); !errors.Is(err, tt.want) || out != nil {
				t.Fatalf("Broadcast: %d outputs, err %v; want none and %v", len(out), err, tt.want)
			}
		})
	}
	h := newHarness(t, cfg, pA)
	if _, _, err := h.m.Broadcast(h.now, "t", make([]byte, 10)); err != nil {
		t.Fatalf("payload at the limit refused: %v", err)
	}
	// Received payloads over the configured limit are dropped too.
	h.expect(h.recv(pA, gossip(pD, 1, 1, "eleven byte")))
	if s := h.m.Stats(); s.Drops.Oversized != 1 || s.Delivered != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBroadcastIDsAreUniqueAndDeterministic(t *testing.T) {
	run := func() []MessageID {
		h := newHarness(t, DefaultConfig())
		var ids []MessageID
		for i := range 5 {
			id, _, err := h.m.Broadcast(h.now.Add(time.Duration(i/2)), "t", []byte("same"))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		t.Fatal("same inputs gave different IDs")
	}
	seen := map[MessageID]bool{}
	for _, id := range a {
		if seen[id] {
			t.Fatalf("ID %s reused for a new broadcast", id)
		}
		seen[id] = true
	}
}

func TestMalformedInputCounted(t *testing.T) {
	tests := []struct {
		name      string
		from      identity.NodeID
		msg       []byte
		malformed uint64
		oversized uint64
	}{
		{"empty", pA, nil, 1, 0},
		{"unknown_type", pA, []byte{9, 9, 9}, 1, 0},
		{"truncated_gossip", pA, []byte{1, 0, 1}, 1, 0},
		{"over_max_message_size", pA, make([]byte, MaxMessageSize+1), 0, 1},
		{"from_self", self, []byte{byte(TypePrune)}, 1, 0},
		{"from_zero_id", identity.NodeID{}, []byte{byte(TypePrune)}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, DefaultConfig(), pA)
			if out := h.m.HandleMessage(h.now, tt.from, tt.msg); len(out) != 0 {
				t.Fatalf("outputs for bad input: %v", h.render(out))
			}
			d := h.m.Stats().Drops
			if d.Malformed != tt.malformed || d.Oversized != tt.oversized {
				t.Fatalf("drops %+v, want malformed=%d oversized=%d", d, tt.malformed, tt.oversized)
			}
			h.sets("A", "")
		})
	}
}

func TestCacheBytesBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPayload = 100
	cfg.CacheBytes = 250
	h := newHarness(t, cfg, pA, pB)
	var ids []MessageID
	for i := range 5 {
		g := Gossip{Round: 1, Origin: pD, Seq: uint64(i), Topic: "t", Payload: make([]byte, 100)}
		h.recv(pA, g)
		ids = append(ids, g.ID())
	}
	s := h.m.Stats()
	if s.CacheEntries != 5 || s.CacheBytes != 200 {
		t.Fatalf("entries=%d bytes=%d, want 5 and 200", s.CacheEntries, s.CacheBytes)
	}
	// The oldest bodies are gone: GRAFTs for them go unanswered.
	for i, id := range ids {
		out := h.recv(pB, Graft{HasID: true, ID: id, Round: 1})
		if answered := len(out) == 1; answered != (i >= 3) {
			t.Fatalf("GRAFT for message %d answered=%v", i, answered)
		}
	}
	// But their IDs still deduplicate.
	h.expect(h.recv(pA, Gossip{Round: 1, Origin: pD, Seq: 0, Topic: "t", Payload: make([]byte, 100)}), "send A PRUNE")
}

func TestCacheSizeBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CacheSize = 3
	h := newHarness(t, cfg, pA)
	for i := range 10 {
		h.recv(pA, gossip(pD, uint64(i), 1, "m"))
	}
	if s := h.m.Stats(); s.CacheEntries != 3 || s.CacheBytes != 3 {
		t.Fatalf("entries=%d bytes=%d, want 3 and 3", s.CacheEntries, s.CacheBytes)
	}
	if q := len(h.m.cache.bodyQ) - h.m.cache.head; q > 3 {
		t.Fatalf("body queue holds %d references for 3 bodies", q)
	}
}

func TestMissingBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxMissing = 2
	h := newHarness(t, cfg, pA)
	anns := []Announcement{{ID: MessageID{1}, Round: 1}, {ID: MessageID{2}, Round: 1}, {ID: MessageID{3}, Round: 1}}
	h.expect(h.recv(pA, IHave{Announcements: anns}), "timer +1s missing", "timer +1s missing")
	if s := h.m.Stats(); s.Missing != 2 || s.Drops.MissingFull != 1 {
		t.Fatalf("missing=%d full=%d", s.Missing, s.Drops.MissingFull)
	}
}

// TestCatchUp: a new neighbour is sent one IHAVE announcing, newest first,
// the messages received within CatchUpWindow (at most CatchUpMax); a
// neighbour already known gets none; the peer grafts what it lacks.
func TestCatchUp(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CatchUpMax = 3
	h := newHarness(t, cfg, pA)
	h.recv(pA, gossip(pD, 0, 4, "old"))
	h.advance(cfg.CatchUpWindow) // "old" is now at the window's edge
	for i := range 4 {
		h.recv(pA, gossip(pD, uint64(1+i), uint16(1+i), "m"))
	}
	// Four recent messages, at most three announced, newest first.
	h.expect(h.m.HandleNeighborUp(h.now, pB), "send B IHAVE r=5,4,3")
	h.expect(h.m.HandleNeighborUp(h.now, pB)) // already a neighbour
	if s := h.m.Stats(); s.CatchUps != 1 {
		t.Fatalf("CatchUps = %d", s.CatchUps)
	}
	h.advance(cfg.CatchUpWindow + time.Nanosecond)
	h.expect(h.m.HandleNeighborUp(h.now, pC)) // all too old

	// The receiving side grafts a message it lacks.
	r := newHarness(t, cfg)
	r.expect(r.m.HandleNeighborUp(r.now, pB)) // it has nothing to announce
	g := gossip(pD, 1, 1, "m")
	r.expect(r.recv(pB, IHave{Announcements: []Announcement{{ID: g.ID(), Round: 2}}}), "timer +1s missing")
	r.expect(r.fire(timerMissing), "send B GRAFT r=2", "timer +500ms missing")

	cfg.CatchUpWindow = 0
	off := newHarness(t, cfg, pA)
	off.recv(pA, gossip(pD, 0, 1, "m"))
	off.expect(off.m.HandleNeighborUp(off.now, pB))
}
