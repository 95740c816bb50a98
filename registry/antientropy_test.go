package registry

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// pump delivers Sends between machines (by ID) until none are left, and
// returns how many messages it carried. Every message is checked against
// MaxMessageSize.
func pump(t *testing.T, now time.Time, ms map[identity.NodeID]*Machine, from identity.NodeID, out []Output) int {
	t.Helper()
	type msg struct {
		from identity.NodeID
		s    Send
	}
	var q []msg
	add := func(from identity.NodeID, out []Output) {
		for _, o := range out {
			if s, ok := o.(Send); ok {
				q = append(q, msg{from, s})
			}
		}
	}
	add(from, out)
	n := 0
	for len(q) > 0 {
		m := q[0]
		q = q[1:]
		n++
		if len(m.s.Msg) > MaxMessageSize {
			t.Fatalf("message of %d bytes", len(m.s.Msg))
		}
		add(m.s.To, ms[m.s.To].HandleMessage(now, m.from, m.s.Msg))
	}
	return n
}

// connect runs both neighbour-ups between a and b and pumps the result.
func connect(t *testing.T, now time.Time, a, b *Machine) {
	t.Helper()
	ms := map[identity.NodeID]*Machine{a.ID(): a, b.ID(): b}
	pump(t, now, ms, a.ID(), a.HandleNeighborUp(now, b.ID()))
	pump(t, now, ms, b.ID(), b.HandleNeighborUp(now, a.ID()))
}

// feed gives m signed records of keys lo..hi-1 with seq.
func feed(t *testing.T, m *Machine, now time.Time, lo, hi int, seq uint64) {
	t.Helper()
	for i := lo; i < hi; i++ {
		r, k := basicRecord(i, seq, now)
		m.HandleBroadcast(now, mustSign(t, r, k))
	}
}

func TestAntiEntropyConverges(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DigestChunk = 3
	a := newTestMachine(t, 1, cfg)
	b := newTestMachine(t, 2, cfg)
	a.SetLocal(t0, Record{})
	b.SetLocal(t0, Record{})
	feed(t, a, t0, 10, 30, 1) // a only
	feed(t, b, t0, 25, 45, 1) // overlap 25..29, b only 30..44
	feed(t, b, t0, 12, 15, 2) // b newer for 12..14
	feed(t, a, t0, 40, 42, 3) // a newer for 40..41
	// A tombstone a holds must reach b and hide the node there.
	k, id := testKey(26)
	tomb := Record{ID: id, Seq: 9, Issued: t0, Lifetime: time.Minute, Leaving: true}
	a.HandleBroadcast(t0, mustSign(t, tomb, k))

	connect(t, t0, a, b)
	ra, rb := a.Records(t0), b.Records(t0)
	if !reflect.DeepEqual(ra, rb) {
		t.Fatalf("records differ after anti-entropy: %d vs %d", len(ra), len(rb))
	}
	if len(ra) != 2+35-1 {
		t.Fatalf("%d records, want %d", len(ra), 2+35-1)
	}
	for _, r := range ra {
		if r.ID == id {
			t.Fatal("tombstoned node listed")
		}
	}
	if r, _ := a.Lookup(t0, mustID(13)); r.Seq != 2 {
		t.Fatalf("a has seq %d for node 13", r.Seq)
	}
	if r, _ := b.Lookup(t0, mustID(40)); r.Seq != 3 {
		t.Fatalf("b has seq %d for node 40", r.Seq)
	}
	if sa := a.Stats(); sa.DigestsOut != 8 || sa.DigestsIn != sa.DigestsOut {
		t.Fatalf("digests: %+v", sa)
	}
	// A second exchange pushes nothing.
	before := a.Stats().RecordsPushed + b.Stats().RecordsPushed
	connect(t, t0, a, b)
	if after := a.Stats().RecordsPushed + b.Stats().RecordsPushed; after != before {
		t.Fatalf("second exchange pushed %d records", after-before)
	}
}

func mustID(i int) identity.NodeID {
	_, id := testKey(i)
	return id
}

func TestAntiEntropyJoiner(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DigestChunk = 7
	old := newTestMachine(t, 1, cfg)
	feed(t, old, t0, 100, 300, 1)
	joiner := newTestMachine(t, 2, cfg)
	connect(t, t0, joiner, old)
	if got := len(joiner.Records(t0)); got != 200 {
		t.Fatalf("joiner learned %d of 200 records", got)
	}
	if !reflect.DeepEqual(joiner.Records(t0), old.Records(t0)) {
		t.Fatal("records differ")
	}
	// The joiner's digest is one empty chunk over the whole ID space.
	if s := joiner.Stats(); s.DigestsOut != 1 || s.RecordsIn != 200 {
		t.Fatalf("joiner stats %+v", s)
	}
}

func TestAntiEntropyLargeRecordsSplit(t *testing.T) {
	cfg := DefaultConfig()
	a := newTestMachine(t, 1, cfg)
	b := newTestMachine(t, 2, cfg)
	// 40 records of ~3.9 KiB: more than one RECORDS message.
	for i := range 40 {
		r, _ := fullRecord()
		k, id := testKey(5000 + i)
		r.ID = id
		a.HandleBroadcast(t0, mustSign(t, r, k))
	}
	connect(t, t0, a, b)
	if len(b.Records(t0)) != 40 || a.Stats().RecordsMsgsOut < 3 {
		t.Fatalf("b has %d, a sent %d RECORDS", len(b.Records(t0)), a.Stats().RecordsMsgsOut)
	}
}

func TestRateLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRecordsPerPeerPerSecond = 5         // burst 50
	a := newTestMachine(t, 1, DefaultConfig()) // pushes without its own limit biting
	feed(t, a, t0, 100, 180, 1)
	b := newTestMachine(t, 2, cfg)
	connect(t, t0, b, a)
	if s := b.Stats(); s.RecordsIn != 50 || s.RateLimited != 30 || len(b.Records(t0)) != 50 {
		t.Fatalf("stats %+v, %d records", s, len(b.Records(t0)))
	}
	// Two seconds later ten tokens are back.
	now := t0.Add(2 * time.Second)
	connect(t, now, b, a)
	if s := b.Stats(); s.RecordsIn != 60 || s.RateLimited != 50 {
		t.Fatalf("after refill: %+v", s)
	}
	// Neighbour-down forgets the bucket: a full burst again.
	b.HandleNeighborDown(now, a.ID())
	connect(t, now, b, a)
	if got := len(b.Records(now)); got != 80 {
		t.Fatalf("%d records after a fresh bucket", got)
	}
}

func TestBadMessages(t *testing.T) {
	m := newTestMachine(t, 1, DefaultConfig())
	peer := mustID(2)
	for _, b := range [][]byte{nil, {9}, {byte(MsgRecords), 0, 0}, make([]byte, MaxMessageSize+1)} {
		if out := m.HandleMessage(t0, peer, b); len(out) != 0 {
			t.Fatalf("answered garbage: %v", out)
		}
	}
	m.HandleMessage(t0, identity.NodeID{}, []byte{byte(MsgDigest)})
	if got := m.Stats().BadMessages; got != 5 {
		t.Fatalf("BadMessages = %d", got)
	}
}

func TestMessageCodec(t *testing.T) {
	d := Digest{From: mustID(1), To: maxID}
	if bytesCompare(d.From, d.To) > 0 {
		d.From, d.To = d.To, d.From
	}
	d.Entries = []DigestEntry{{ID: d.To, Seq: 7}}
	b, err := AppendDigest(nil, d)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMessage(b)
	if err != nil || !reflect.DeepEqual(m.Digest, d) {
		t.Fatalf("digest round trip: %+v, %v", m, err)
	}
	bad := []Digest{
		{From: maxID, To: mustID(1)},
		{To: maxID, Entries: []DigestEntry{{}}},
		{To: mustID(1), Entries: []DigestEntry{{ID: maxID}}},
		{To: maxID, Entries: []DigestEntry{{ID: mustID(1)}, {ID: mustID(1)}}},
		{To: maxID, Entries: make([]DigestEntry, MaxDigestEntries+1)},
	}
	for i, d := range bad {
		if _, err := AppendDigest(nil, d); err == nil {
			t.Errorf("bad digest %d encoded", i)
		}
	}
	r, k := basicRecord(1, 1, t0)
	raw := mustSign(t, r, k)
	b, err = AppendRecords(nil, [][]byte{raw, raw})
	if err != nil {
		t.Fatal(err)
	}
	m, err = ParseMessage(b)
	if err != nil || len(m.Records) != 2 || string(m.Records[1]) != string(raw) {
		t.Fatalf("records round trip: %v", err)
	}
	if _, err := ParseMessage(b[:len(b)-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated RECORDS: %v", err)
	}
	if _, err := AppendRecords(nil, nil); err == nil {
		t.Fatal("empty RECORDS encoded")
	}
	big := make([][]byte, 17)
	for i := range big {
		big[i] = make([]byte, MaxRecordSize)
	}
	if _, err := AppendRecords(nil, big); !errors.Is(err, ErrOversized) {
		t.Fatalf("oversized RECORDS: %v", err)
	}
	if full := digestHeaderLen + MaxDigestEntries*digestEntryLen; full > MaxMessageSize {
		t.Fatalf("a full DIGEST is %d bytes", full)
	}
}

func bytesCompare(a, b identity.NodeID) int { return compareIDs(a, b) }

func TestNext(t *testing.T) {
	id := identity.NodeID{31: 0xff, 30: 0x01}
	if got := next(id); got != (identity.NodeID{30: 0x02}) {
		t.Fatalf("next = %x", got)
	}
}

// TestPushLimit: what one peer's DIGESTs make us push is bounded by its
// own token bucket; a neighbour-down resets it.
func TestPushLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRecordsPerPeerPerSecond = 5 // burst 50
	a := newTestMachine(t, 1, cfg)
	feed(t, a, t0, 100, 180, 1)
	b := newTestMachine(t, 2, DefaultConfig())
	connect(t, t0, b, a)
	if s := a.Stats(); s.RecordsPushed != 50 || s.PushLimited != 30 {
		t.Fatalf("pusher stats %+v", s)
	}
	if got := len(b.Records(t0)); got != 50 {
		t.Fatalf("receiver holds %d records, want 50", got)
	}
	a.HandleNeighborDown(t0, b.ID())
	connect(t, t0, b, a)
	if got := len(b.Records(t0)); got != 80 {
		t.Fatalf("after a fresh push budget the receiver holds %d, want 80", got)
	}
}
