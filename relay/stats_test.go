package relay

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/wire"
)

func TestStatsCounters(t *testing.T) {
	res := DefaultResources()
	res.MaxCircuitsPerPeer, res.BytesPerSecond, res.Burst = 2, 1000, 2000
	tab := newTestTable(t, res, 40)
	a := mustOpen(t, tab, t0, node(1), 1, node(9))
	b := mustOpen(t, tab, t0, node(1), 2, node(9))
	tab.Open(t0, node(1), 3, node(9), testKeys(t)) // peer limit
	tab.Open(t0, node(1), 0, node(9), testKeys(t)) // bad
	tab.OpenTerminal(t0, node(1), 4, testTerm(t))  // peer limit
	term, _ := tab.OpenTerminal(t0, node(2), 1, testTerm(t))

	a.AllowForward(t0, 1500)  // passes
	a.AllowForward(t0, 600)   // dropped: 500 left
	a.AllowBackward(t0, 2000) // passes
	b.AllowForward(t0, 3000)  // dropped: over the burst
	term.AllowBackward(t0, 70)
	tab.Close(a, wire.ReasonClosed)   // its counts stay in the totals
	a.AllowForward(at(time.Hour), 10) // closed: not counted

	want := Stats{
		Circuits: 2, Relays: 1, Terminals: 1,
		Memory: relayCost + endCost, MaxMemory: res.MaxMemory,
		Opened:   3,
		Refused:  map[byte]uint64{wire.ReasonPeerLimit: 2, wire.ReasonBadOnion: 1},
		Closed:   map[byte]uint64{wire.ReasonClosed: 1},
		Forward:  Flow{Packets: 1, Bytes: 1500, DroppedPackets: 2, DroppedBytes: 3600},
		Backward: Flow{Packets: 2, Bytes: 2070},
	}
	if got := tab.Stats(); !reflect.DeepEqual(got, want) {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}
}

func TestSnapshot(t *testing.T) {
	tab := newTestTable(t, DefaultResources(), 41)
	b := mustOpen(t, tab, at(10*time.Second), node(2), 5, node(9))
	a := mustOpen(t, tab, t0, node(1), 7, node(8))
	init, _ := tab.OpenInitiator(at(20*time.Second), node(9), testInit(t))
	a.AllowForward(at(30*time.Second), 100)
	a.AllowBackward(at(40*time.Second), 250)
	a.AllowBackward(at(40*time.Second), 250)

	got := tab.Snapshot(at(time.Minute))
	want := []CircuitInfo{
		{Kind: KindInitiator, Next: node(9), NextCID: init.NextCID, Age: 40 * time.Second, Idle: 40 * time.Second},
		{Kind: KindRelay, Prev: node(1), PrevCID: 7, Next: node(8), NextCID: a.NextCID, Age: time.Minute, Idle: 20 * time.Second,
			Forward: Flow{Packets: 1, Bytes: 100}, Backward: Flow{Packets: 2, Bytes: 500}},
		{Kind: KindRelay, Prev: node(2), PrevCID: 5, Next: node(9), NextCID: b.NextCID, Age: 50 * time.Second, Idle: 50 * time.Second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("snapshot\n got %+v\nwant %+v", got, want)
	}
	tab.Close(a, wire.ReasonClosed)
	if got := tab.Snapshot(at(time.Minute)); len(got) != 2 {
		t.Fatalf("snapshot after close has %d circuits", len(got))
	}
}

func TestKindString(t *testing.T) {
	for k, s := range map[Kind]string{KindRelay: "relay", KindTerminal: "terminal", KindInitiator: "initiator", 0: "unknown", 9: "unknown"} {
		if k.String() != s {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), s)
		}
	}
}

// TestConcurrentUse runs packets on both directions of many circuits
// while other goroutines look circuits up, read stats and open and
// close circuits of their own; run with -race. Ends are not rate
// limited, so every packet counts.
func TestConcurrentUse(t *testing.T) {
	tab := newTestTable(t, DefaultResources(), 42)
	const circuits, packets = 8, 500
	var cs []*Circuit
	for i := range circuits {
		c, r := tab.OpenTerminal(t0, node(byte(i+1)), 1, testTerm(t))
		if c == nil {
			t.Fatalf("refused: %d", r)
		}
		cs = append(cs, c)
	}
	var wg sync.WaitGroup
	for i, c := range cs {
		for _, dir := range []func(time.Time, int) bool{c.AllowForward, c.AllowBackward} {
			wg.Go(func() {
				for p := range packets {
					if tab.FromPrev(node(byte(i+1)), 1) != c || !dir(at(time.Duration(p)*time.Millisecond), 100) {
						t.Error("a packet was refused")
						return
					}
				}
			})
		}
	}
	wg.Go(func() {
		for i := range 200 {
			c := mustOpen(t, tab, t0, node(0xF0), uint32(i+1), node(0xF1))
			tab.Stats()
			tab.Snapshot(at(time.Second))
			tab.Close(c, wire.ReasonClosed)
		}
	})
	wg.Go(func() {
		for range 200 {
			tab.Sweep(at(time.Second)) // nothing is idle yet
		}
	})
	wg.Wait()
	s := tab.Stats()
	if s.Forward.Packets != circuits*packets || s.Backward.Packets != circuits*packets || s.Circuits != circuits {
		t.Fatalf("stats %+v", s)
	}
	if s.Forward.Bytes != circuits*packets*100 || s.Closed[wire.ReasonClosed] != 200 {
		t.Fatalf("stats %+v", s)
	}
}
