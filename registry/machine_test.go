package registry

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Config){
		func(c *Config) { c.MaxRecords = 0 },
		func(c *Config) { c.Lifetime = MaxLifetime + time.Second },
		func(c *Config) { c.Lifetime = 1500 * time.Millisecond },
		func(c *Config) { c.RefreshInterval = c.Lifetime },
		func(c *Config) { c.LeaveLifetime = 0 },
		func(c *Config) { c.DigestChunk = MaxDigestEntries + 1 },
		func(c *Config) { c.MaxRecordsPerPeerPerSecond = 0 },
		func(c *Config) { c.SweepInterval = 0 },
	}
	for i, edit := range bad {
		c := DefaultConfig()
		edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("case %d: Validate = %v", i, err)
		}
		k, _ := testKey(1)
		if _, err := New(k, c, nil); !errors.Is(err, ErrBadConfig) {
			t.Errorf("case %d: New = %v", i, err)
		}
	}
}

func TestRejectionsCounted(t *testing.T) {
	m := newTestMachine(t, 0, DefaultConfig())
	now := t0.Add(time.Hour)
	r, k := basicRecord(1, 10, now)
	good := mustSign(t, r, k)
	if got := changes(m.HandleBroadcast(now, good)); !reflect.DeepEqual(got, []Changed{{ID: r.ID}}) {
		t.Fatalf("Changed = %v", got)
	}

	flipped := bytes.Clone(good)
	flipped[45] ^= 1
	other, _ := testKey(2)
	byOther := append(appendBody(nil, r), edSign(other, appendBody(nil, r))...)
	older := r
	older.Seq = 9
	future := r
	future.Seq, future.Issued = 11, now.Add(MaxClockSkew+time.Second)
	expired := r
	expired.Seq, expired.Issued = 12, now.Add(-time.Hour)

	m.HandleBroadcast(now, flipped)
	m.HandleBroadcast(now, byOther)
	m.HandleBroadcast(now, mustSign(t, older, k))
	m.HandleBroadcast(now, mustSign(t, future, k))
	m.HandleBroadcast(now, mustSign(t, expired, k))
	m.HandleBroadcast(now, make([]byte, MaxRecordSize+1))
	m.HandleBroadcast(now, []byte{1, 2, 3})
	m.HandleBroadcast(now, good)

	s := m.Stats()
	want := Stats{BroadcastsIn: 9, Accepted: 1, Forged: 2, Stale: 1, FarFuture: 1, Expired: 1, Oversized: 1, Malformed: 1, Duplicates: 1, Held: 1}
	if s != want {
		t.Fatalf("Stats =\n%+v\nwant\n%+v", s, want)
	}
	if got, ok := m.Lookup(now, r.ID); !ok || got.Seq != 10 {
		t.Fatalf("Lookup = %+v, %v", got, ok)
	}
}

func TestMergeHigherSeqAndConflict(t *testing.T) {
	m := newTestMachine(t, 0, DefaultConfig())
	r, k := basicRecord(1, 1, t0)
	m.HandleBroadcast(t0, mustSign(t, r, k))
	r.Seq = 2
	r.Inbound = false
	out := m.HandleBroadcast(t0, mustSign(t, r, k))
	if got := changes(out); !reflect.DeepEqual(got, []Changed{{ID: r.ID}}) {
		t.Fatalf("Changed = %v", got)
	}
	if got, _ := m.Lookup(t0, r.ID); got.Inbound {
		t.Fatal("higher seq did not replace")
	}

	// Two different records with one seq: every node keeps the one with
	// the larger signature, whatever the order of arrival.
	a, b := r, r
	a.Seq, b.Seq = 3, 3
	b.Inbound = true
	ra, rb := mustSign(t, a, k), mustSign(t, b, k)
	winner := ra
	if bytes.Compare(rb[len(rb)-64:], ra[len(ra)-64:]) > 0 {
		winner = rb
	}
	for _, order := range [][2][]byte{{ra, rb}, {rb, ra}} {
		m2 := newTestMachine(t, 0, DefaultConfig())
		m2.HandleBroadcast(t0, order[0])
		m2.HandleBroadcast(t0, order[1])
		if got := m2.store.get(r.ID).raw; !bytes.Equal(got, winner) {
			t.Fatal("conflict kept the smaller signature")
		}
		if m2.Stats().Conflicts != 1 {
			t.Fatalf("Conflicts = %d", m2.Stats().Conflicts)
		}
	}
}

func TestTombstone(t *testing.T) {
	m := newTestMachine(t, 0, DefaultConfig())
	r, k := basicRecord(1, 5, t0)
	m.HandleBroadcast(t0, mustSign(t, r, k))
	tomb := Record{ID: r.ID, Seq: 6, Issued: t0, Lifetime: 2 * time.Minute, Leaving: true}
	out := m.HandleBroadcast(t0, mustSign(t, tomb, k))
	if got := changes(out); !reflect.DeepEqual(got, []Changed{{ID: r.ID, Removed: true}}) {
		t.Fatalf("Changed = %v", got)
	}
	if _, ok := m.Lookup(t0, r.ID); ok {
		t.Fatal("tombstoned node still found")
	}
	if len(m.Records(t0)) != 0 {
		t.Fatal("Records lists a tombstone")
	}
	// The old record cannot come back, not even after the tombstone
	// expires: it is held as long as the record it replaced could live.
	old := mustSign(t, r, k)
	for _, at := range []time.Duration{time.Second, 3 * time.Minute, 29 * time.Minute} {
		now := t0.Add(at)
		m.HandleTimer(now, timerOf(t, m.Start(now), TimerSweep).Timer)
		if out := m.HandleBroadcast(now, old); len(out) != 0 {
			t.Fatalf("at +%v: old record came back: %v", at, out)
		}
	}
	if m.Stats().Stale != 3 {
		t.Fatalf("Stale = %d", m.Stats().Stale)
	}
	now := t0.Add(31 * time.Minute)
	m.HandleTimer(now, timerOf(t, m.Start(now), TimerSweep).Timer)
	if m.Len() != 0 {
		t.Fatalf("Len = %d after the hold passed", m.Len())
	}
}

func TestSweepExpires(t *testing.T) {
	cfg := DefaultConfig()
	m := newTestMachine(t, 0, cfg)
	st := timerOf(t, m.Start(t0), TimerSweep)
	r, k := basicRecord(1, 1, t0)
	r.Lifetime = time.Minute
	m.HandleBroadcast(t0, mustSign(t, r, k))
	out := m.HandleTimer(st.At, st.Timer)
	if len(changes(out)) != 0 {
		t.Fatalf("early sweep removed: %v", out)
	}
	// A stale timer does nothing.
	if out := m.HandleTimer(t0.Add(time.Hour), st.Timer); len(out) != 0 {
		t.Fatalf("stale timer: %v", out)
	}
	st = timerOf(t, out, TimerSweep)
	if st.At != t0.Add(60*time.Second) {
		t.Fatalf("sweep at %v", st.At)
	}
	out = m.HandleTimer(st.At, st.Timer) // at the expiry instant
	if got := changes(out); !reflect.DeepEqual(got, []Changed{{ID: r.ID, Removed: true}}) {
		t.Fatalf("Changed = %v", got)
	}
	if m.Len() != 0 || m.Stats().Expirations != 1 {
		t.Fatalf("Len %d, Expirations %d", m.Len(), m.Stats().Expirations)
	}
}

func TestCapEviction(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxRecords = 3
	m := newTestMachine(t, 0, cfg)
	if _, err := m.SetLocal(t0, Record{}); err != nil {
		t.Fatal(err)
	}
	_, self := testKey(0)
	add := func(i int, life time.Duration) []Output {
		r, k := basicRecord(i, 1, t0)
		r.Lifetime = life
		return m.HandleBroadcast(t0, mustSign(t, r, k))
	}
	_, id1 := testKey(1)
	_, id2 := testKey(2)
	_, id3 := testKey(3)
	add(1, 10*time.Minute)
	add(2, 20*time.Minute)
	// Full (own + 2). Node 3 expires after node 1: node 1 goes.
	out := add(3, 15*time.Minute)
	if got := changes(out); !reflect.DeepEqual(got, []Changed{{ID: id1, Removed: true}, {ID: id3}}) {
		t.Fatalf("Changed = %v", got)
	}
	// Node 4 expires before everything held: it is refused.
	if out := add(4, 5*time.Minute); len(out) != 0 {
		t.Fatalf("short-lived newcomer evicted: %v", out)
	}
	// Node 5 outlives all; node 3 expires soonest; own (30 min) is never a victim
	// even when it expires soonest.
	add(5, 24*time.Hour)
	add(6, 24*time.Hour)
	ids := []identity.NodeID{}
	for _, r := range m.Records(t0) {
		ids = append(ids, r.ID)
	}
	if m.Len() != 3 || !slices.Contains(ids, self) || slices.Contains(ids, id2) || slices.Contains(ids, id3) {
		t.Fatalf("held %v", ids)
	}
	if m.Stats().Evicted != 4 {
		t.Fatalf("Evicted = %d", m.Stats().Evicted)
	}
}

func TestSetLocalSeqAcrossRestart(t *testing.T) {
	cfg := DefaultConfig()
	m := newTestMachine(t, 0, cfg)
	m.Start(t0)
	local := Record{Inbound: true, Listen: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.7:1")}}
	var last uint64
	var lastRaw []byte
	for range 5 {
		out, err := m.SetLocal(t0, local) // same millisecond: seq still climbs
		if err != nil {
			t.Fatal(err)
		}
		r, _ := m.Lookup(t0, m.ID())
		if r.Seq <= last {
			t.Fatalf("seq %d after %d", r.Seq, last)
		}
		last, lastRaw = r.Seq, published(out)[0]
		timerOf(t, out, TimerRefresh)
	}
	// A restart, same clock, no saved state: the new machine's first seq
	// is lower than the last one. Hearing its old record, it bumps above
	// it and publishes again.
	m2 := newTestMachine(t, 0, cfg)
	if _, err := m2.SetLocal(t0, local); err != nil {
		t.Fatal(err)
	}
	out := m2.HandleBroadcast(t0, lastRaw)
	p := published(out)
	if len(p) != 1 || m2.Stats().SelfRecords != 1 {
		t.Fatalf("no re-publish: %v", out)
	}
	r, _ := Parse(p[0])
	if r.Seq <= last {
		t.Fatalf("seq %d not above old %d", r.Seq, last)
	}
	// A restart a second later outranks at once.
	m3 := newTestMachine(t, 0, cfg)
	m3.SetLocal(t0.Add(time.Second), local)
	if r, _ := m3.Lookup(t0.Add(time.Second), m3.ID()); r.Seq <= last {
		t.Fatalf("seq %d after restart, old %d", r.Seq, last)
	}
	// SetLocal refuses an invalid record and changes nothing.
	if _, err := m.SetLocal(t0, Record{Mapping: 9}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("SetLocal = %v", err)
	}
	if r, _ := m.Lookup(t0, m.ID()); r.Seq != last {
		t.Fatal("a refused SetLocal changed the record")
	}
}

func TestRefreshAndLeave(t *testing.T) {
	cfg := DefaultConfig()
	m := newTestMachine(t, 0, cfg)
	m.Start(t0)
	out, _ := m.SetLocal(t0, Record{})
	rt := timerOf(t, out, TimerRefresh)
	if rt.At.Before(t0.Add(cfg.RefreshInterval*3/4)) || rt.At.After(t0.Add(cfg.RefreshInterval)) {
		t.Fatalf("refresh at %v", rt.At)
	}
	before, _ := m.Lookup(t0, m.ID())
	out = m.HandleTimer(rt.At, rt.Timer)
	refreshed := published(out)
	after, _ := m.Lookup(rt.At, m.ID())
	if len(published(out)) != 1 || after.Seq <= before.Seq || !after.Issued.After(before.Issued) {
		t.Fatalf("refresh: %v, %+v", out, after)
	}
	rt = timerOf(t, out, TimerRefresh)
	now := rt.At.Add(-time.Second)
	out = m.Leave(now)
	p := published(out)
	tomb, err := Parse(p[0])
	if err != nil || !tomb.Leaving || tomb.Lifetime != cfg.LeaveLifetime {
		t.Fatalf("tombstone %+v, %v", tomb, err)
	}
	if got := changes(out); !reflect.DeepEqual(got, []Changed{{ID: m.ID(), Removed: true}}) {
		t.Fatalf("Changed = %v", got)
	}
	if out := m.HandleTimer(rt.At, rt.Timer); len(out) != 0 {
		t.Fatalf("refresh after Leave: %v", out)
	}
	// Another node takes the tombstone and drops us.
	o := newTestMachine(t, 1, cfg)
	o.HandleBroadcast(now, refreshed[0])
	if _, ok := o.Lookup(now, m.ID()); !ok {
		t.Fatal("peer did not take the refreshed record")
	}
	o.HandleBroadcast(now, p[0])
	if _, ok := o.Lookup(now, m.ID()); ok {
		t.Fatal("peer still finds a node that left")
	}
}

func TestServicesAndRelays(t *testing.T) {
	m := newTestMachine(t, 0, DefaultConfig())
	add := func(i int, edit func(*Record)) identity.NodeID {
		r, k := basicRecord(i, 1, t0)
		edit(&r)
		m.HandleBroadcast(t0, mustSign(t, r, k))
		return r.ID
	}
	a := add(1, func(r *Record) { r.Services = []Service{{Name: "chat"}, {Name: "dns"}} })
	b := add(2, func(r *Record) { r.Services = []Service{{Name: "chat", Meta: []byte{1}}} })
	add(3, func(r *Record) { r.Services = []Service{{Name: "web"}} })
	want := []identity.NodeID{a, b}
	slices.SortFunc(want, compareIDs)
	if got := m.Services(t0, "chat"); !reflect.DeepEqual(got, want) {
		t.Fatalf("Services(chat) = %v", got)
	}
	if got := m.Services(t0, "none"); len(got) != 0 {
		t.Fatalf("Services(none) = %v", got)
	}

	relay := func(i int, capacity, load uint32, issued time.Time) identity.NodeID {
		r, k := basicRecord(i, 1, issued)
		r.Relay, r.RelayCapacity, r.RelayLoad = true, capacity, load
		m.HandleBroadcast(t0, mustSign(t, r, k))
		return r.ID
	}
	half := relay(10, 100, 50, t0)
	tenth := relay(11, 1000, 100, t0)
	halfNewer := relay(12, 10, 5, t0.Add(time.Minute))
	noCap := relay(13, 0, 0, t0)
	idle := relay(14, 5, 0, t0)
	var got []identity.NodeID
	for _, r := range m.Relays(t0) {
		got = append(got, r.ID)
	}
	if want := []identity.NodeID{idle, tenth, halfNewer, half, noCap}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Relays order wrong: %d entries", len(got))
	}
}
