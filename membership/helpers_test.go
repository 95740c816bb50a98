package membership

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func newTestMachine(t testing.TB, n int, cfg Config, seed uint64) *Machine {
	t.Helper()
	m, err := New(testPeer(n), cfg, rand.New(rand.NewPCG(seed, 7)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func enc(t testing.TB, m Message) []byte {
	t.Helper()
	b, err := AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func describeAll(outs []Output) []string {
	s := make([]string, len(outs))
	for i, o := range outs {
		s[i] = describe(o)
	}
	return s
}

// want fails unless outs render as exactly want.
func want(t testing.TB, outs []Output, want ...string) {
	t.Helper()
	if got := describeAll(outs); !slices.Equal(got, want) {
		t.Fatalf("outputs:\n got %q\nwant %q", got, want)
	}
}

// machineWith returns machine n1 whose active view holds the given peers
// (each accepted from a low-priority NEIGHBOR) and whose passive view
// holds the others. It returns the shuffle timer armed on the way.
func machineWith(t testing.TB, cfg Config, active, passive []int) (*Machine, Timer) {
	t.Helper()
	m := newTestMachine(t, 1, cfg, 1)
	var shuffle Timer
	for _, n := range active {
		outs := m.HandleMessage(t0, testID(n), enc(t, Message{Type: MsgNeighbor, Peer: testPeer(n)}))
		for _, o := range outs {
			if st, ok := o.(SetTimer); ok && st.Timer.Kind == TimerShuffle {
				shuffle = st.Timer
			}
		}
	}
	for _, n := range passive {
		m.addPassive(testPeer(n))
	}
	m.stats = Stats{}
	return m, shuffle
}

func span(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func activeNames(m *Machine) []string {
	var s []string
	for _, p := range m.Active() {
		s = append(s, name(p.ID))
	}
	return s
}

func inPassive(m *Machine, n int) bool { return m.passive.has(testID(n)) }

// timerOf returns the timer of kind k among outs.
func timerOf(t testing.TB, outs []Output, k TimerKind) (Timer, time.Time) {
	t.Helper()
	for _, o := range outs {
		if st, ok := o.(SetTimer); ok && st.Timer.Kind == k {
			return st.Timer, st.At
		}
	}
	t.Fatalf("no %v timer in %q", k, describeAll(outs))
	return Timer{}, time.Time{}
}

// sent returns the decoded message of the one Send in outs.
func sent(t testing.TB, outs []Output) (Peer, Message) {
	t.Helper()
	var to Peer
	var msg Message
	n := 0
	for _, o := range outs {
		if s, ok := o.(Send); ok {
			m, err := ParseMessage(s.Msg)
			if err != nil {
				t.Fatal(err)
			}
			to, msg = s.To, m
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d Sends in %q, want 1", n, describeAll(outs))
	}
	return to, msg
}
