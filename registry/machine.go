package registry

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Machine is the registry of one node, sans-IO: see the package doc. It
// is not safe for concurrent use; its driver owns it.
type Machine struct {
	cfg Config
	key ed25519.PrivateKey
	id  identity.NodeID
	rng *rand.Rand

	store store

	// local is what SetLocal last said, nil before the first SetLocal;
	// left is set by Leave and cleared by SetLocal.
	local *Record
	left  bool
	// seq is the highest Seq we have signed, or seen in a record about
	// our ID; the next record we sign has a higher one.
	seq uint64

	sweepGen, refreshGen uint64

	buckets map[identity.NodeID]*bucket
	// pushes are the token buckets of what each peer's DIGESTs may make
	// us push, at the same rate: a small DIGEST can ask for every record.
	pushes map[identity.NodeID]*bucket

	stats Stats
}

// New returns a Machine that speaks for the node whose key is key. It
// holds no record of its own until SetLocal.
func New(key ed25519.PrivateKey, cfg Config, rng *rand.Rand) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, fmt.Errorf("%w: nil rand", ErrBadConfig)
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key of %d bytes", ErrBadConfig, len(key))
	}
	id, err := identity.IDFromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	m := &Machine{
		cfg:     cfg,
		key:     slices.Clone(key),
		id:      id,
		rng:     rng,
		buckets: make(map[identity.NodeID]*bucket),
		pushes:  make(map[identity.NodeID]*bucket),
	}
	m.store.init(id, cfg.MaxRecords)
	return m, nil
}

// ID returns the node this Machine speaks for.
func (m *Machine) ID() identity.NodeID { return m.id }

// Start arms the sweep timer, and the refresh timer if SetLocal was
// called. Calling it again re-arms both (the earlier timers go stale).
func (m *Machine) Start(now time.Time) []Output {
	out := []Output{m.armSweep(now)}
	if m.local != nil && !m.left {
		out = append(out, m.armRefresh(now))
	}
	return out
}

func (m *Machine) armSweep(now time.Time) Output {
	m.sweepGen++
	return SetTimer{At: now.Add(m.cfg.SweepInterval), Timer: Timer{Kind: TimerSweep, gen: m.sweepGen}}
}

func (m *Machine) armRefresh(now time.Time) Output {
	m.refreshGen++
	r := int64(m.cfg.RefreshInterval)
	wait := time.Duration(r - m.rng.Int64N(r/4+1))
	return SetTimer{At: now.Add(wait), Timer: Timer{Kind: TimerRefresh, gen: m.refreshGen}}
}

// SetLocal replaces what our record says. The machine fills ID, Seq
// (max(previous+1, now in Unix milliseconds), so a restarted node with no
// saved state still outranks its old record), Issued (now, in whole
// seconds), Lifetime (Config.Lifetime) and Leaving (false), signs it,
// stores it and publishes it, and arms the refresh timer. It returns the
// validation error of a record Sign refuses, and then changes nothing.
func (m *Machine) SetLocal(now time.Time, r Record) ([]Output, error) {
	r = r.clone()
	r.ID, r.Leaving = m.id, false
	raw, rec, err := m.signOwn(now, r, m.cfg.Lifetime)
	if err != nil {
		return nil, err
	}
	tmpl := r
	m.local, m.left = &tmpl, false
	out := m.storeOwn(rec, raw)
	return append(out, m.armRefresh(now)), nil
}

// Leave publishes a tombstone (Leaving, no addresses or services) with
// lifetime Config.LeaveLifetime, and stops refreshing. Other nodes drop
// the node at once and hold the tombstone until it expires, so an older
// record cannot come back. SetLocal undoes it.
func (m *Machine) Leave(now time.Time) []Output {
	m.left = true
	m.refreshGen++ // a pending refresh goes stale
	raw, rec, err := m.signOwn(now, Record{ID: m.id, Leaving: true}, m.cfg.LeaveLifetime)
	if err != nil {
		return nil // cannot happen: a tombstone always validates
	}
	return m.storeOwn(rec, raw)
}

// signOwn fills Seq, Issued and Lifetime and signs r; it returns the
// signed bytes and the record as Parse gives it. It takes the Seq only
// if signing succeeds.
func (m *Machine) signOwn(now time.Time, r Record, life time.Duration) ([]byte, Record, error) {
	seq := m.seq + 1
	if ms := now.UnixMilli(); ms > 0 && uint64(ms) > seq {
		seq = uint64(ms)
	}
	r.Seq, r.Issued, r.Lifetime = seq, time.Unix(now.Unix(), 0).UTC(), life
	raw, err := Sign(r, m.key)
	if err != nil {
		return nil, Record{}, err
	}
	rec, err := Parse(raw)
	if err != nil {
		return nil, Record{}, fmt.Errorf("registry: own record does not parse: %w", err) // a bug
	}
	m.seq = seq
	return raw, rec, nil
}

// storeOwn replaces our record with rec and publishes it.
func (m *Machine) storeOwn(rec Record, raw []byte) []Output {
	m.stats.Published++
	out := []Output{Publish{Payload: raw}}
	return append(out, m.store.put(rec, raw, &m.stats)...)
}

// republish signs our current record (or tombstone) again with a new
// Seq and Issued and publishes it. Without one it does nothing.
func (m *Machine) republish(now time.Time) []Output {
	switch {
	case m.left:
		raw, rec, err := m.signOwn(now, Record{ID: m.id, Leaving: true}, m.cfg.LeaveLifetime)
		if err != nil {
			return nil
		}
		return m.storeOwn(rec, raw)
	case m.local != nil:
		raw, rec, err := m.signOwn(now, m.local.clone(), m.cfg.Lifetime)
		if err != nil {
			return nil // cannot happen: SetLocal validated it
		}
		return m.storeOwn(rec, raw)
	}
	return nil
}

// HandleTimer handles a timer the machine asked for; a stale one is
// ignored. The sweep removes expired records and reports each that was
// visible as Changed with Removed; the refresh signs our record again
// and publishes it.
func (m *Machine) HandleTimer(now time.Time, t Timer) []Output {
	switch {
	case t.Kind == TimerSweep && t.gen == m.sweepGen:
		out := m.store.sweep(now, &m.stats)
		m.pruneBuckets(now, m.buckets)
		m.pruneBuckets(now, m.pushes)
		return append(out, m.armSweep(now))
	case t.Kind == TimerRefresh && t.gen == m.refreshGen && m.local != nil && !m.left:
		m.stats.Refreshes++
		out := m.republish(now)
		return append(out, m.armRefresh(now))
	}
	return nil
}

// HandleBroadcast handles a record delivered by Plumtree on the registry
// topic. A record that fails a check is dropped and counted.
func (m *Machine) HandleBroadcast(now time.Time, payload []byte) []Output {
	m.stats.BroadcastsIn++
	return m.offer(now, payload)
}

// offer checks one signed record and merges it.
func (m *Machine) offer(now time.Time, raw []byte) []Output {
	rec, err := Parse(raw)
	if err == nil {
		err = rec.CheckTime(now)
	}
	if err != nil {
		m.countRejection(err)
		return nil
	}
	if rec.ID == m.id {
		return m.offerSelf(now, rec, raw)
	}
	out, err := m.store.merge(rec, bytes.Clone(raw), &m.stats)
	if err != nil {
		m.countRejection(err)
	}
	return out
}

// offerSelf handles a record about our own ID. One we signed ourselves
// is a duplicate or stale. Any other (an earlier run of this node) is
// never stored; if its Seq is at least ours, our Seq is bumped above it
// and our record published again.
func (m *Machine) offerSelf(now time.Time, rec Record, raw []byte) []Output {
	if e := m.store.get(m.id); e != nil && bytes.Equal(e.raw, raw) {
		m.stats.Duplicates++
		return nil
	}
	if rec.Seq < m.seq {
		m.stats.Stale++
		return nil
	}
	m.stats.SelfRecords++
	m.seq = rec.Seq
	return m.republish(now)
}

// countRejection counts a dropped record by its error.
func (m *Machine) countRejection(err error) {
	switch {
	case errors.Is(err, ErrOversized):
		m.stats.Oversized++
	case errors.Is(err, ErrForged):
		m.stats.Forged++
	case errors.Is(err, ErrExpired):
		m.stats.Expired++
	case errors.Is(err, ErrFarFuture):
		m.stats.FarFuture++
	case errors.Is(err, ErrStale):
		m.stats.Stale++
	default:
		m.stats.Malformed++
	}
}

// Lookup returns the live record of id, ours included; not a tombstone.
func (m *Machine) Lookup(now time.Time, id identity.NodeID) (Record, bool) {
	e := m.store.get(id)
	if e == nil || !e.visible(now) {
		return Record{}, false
	}
	return e.rec.clone(), true
}

// Services returns, sorted, the nodes whose live record offers name.
func (m *Machine) Services(now time.Time, name string) []identity.NodeID {
	var ids []identity.NodeID
	for _, id := range m.store.sortedIDs() {
		if e := m.store.get(id); e.visible(now) && e.rec.hasService(name) {
			ids = append(ids, id)
		}
	}
	return ids
}

// Relays returns the live records that offer to relay, best first: lowest
// RelayLoad/RelayCapacity (a capacity of zero ranks last), then most
// recently Issued, then lowest ID.
func (m *Machine) Relays(now time.Time) []Record {
	var rs []Record
	for _, e := range m.store.byID {
		if e.visible(now) && e.rec.Relay {
			rs = append(rs, e.rec.clone())
		}
	}
	slices.SortFunc(rs, compareRelays)
	return rs
}

// compareRelays orders relays best first; see Relays.
func compareRelays(a, b Record) int {
	switch {
	case a.RelayCapacity == 0 && b.RelayCapacity != 0:
		return 1
	case a.RelayCapacity != 0 && b.RelayCapacity == 0:
		return -1
	case a.RelayCapacity != 0:
		// a.load/a.cap vs b.load/b.cap without division: both products
		// fit in 64 bits.
		if c := cmp.Compare(uint64(a.RelayLoad)*uint64(b.RelayCapacity), uint64(b.RelayLoad)*uint64(a.RelayCapacity)); c != 0 {
			return c
		}
	}
	if c := b.Issued.Compare(a.Issued); c != 0 {
		return c
	}
	return bytes.Compare(a.ID[:], b.ID[:])
}

// Records returns every live record that is not a tombstone, ours
// included, sorted by ID.
func (m *Machine) Records(now time.Time) []Record {
	var rs []Record
	for _, id := range m.store.sortedIDs() {
		if e := m.store.get(id); e.visible(now) {
			rs = append(rs, e.rec.clone())
		}
	}
	return rs
}

// Len returns how many records are held, tombstones and expired records
// not yet forgotten included. It never exceeds Config.MaxRecords.
func (m *Machine) Len() int { return len(m.store.byID) }

// Stats returns the counters.
func (m *Machine) Stats() Stats {
	s := m.stats
	s.Held = len(m.store.byID)
	s.Tombstones = m.store.tombstones
	return s
}
