package registry

import (
	"bytes"
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// maxBuckets bounds the per-sender token buckets. Buckets that have
// refilled are dropped first; beyond that, RECORDS from a new sender are
// rate limited outright.
const maxBuckets = 4096

// maxID is the highest node ID, the end of the ID space.
var maxID = func() (id identity.NodeID) {
	for i := range id {
		id[i] = 0xff
	}
	return id
}()

// HandleNeighborUp sends our digest to peer, a new neighbour, in DIGEST
// messages of at most Config.DigestChunk entries whose ranges cover the
// whole ID space. The peer pushes what we lack; it does the same for us
// with its own digest.
func (m *Machine) HandleNeighborUp(now time.Time, peer identity.NodeID) []Output {
	if peer.IsZero() || peer == m.id {
		return nil
	}
	ids := m.store.sortedIDs()
	var out []Output
	var from identity.NodeID
	for i := 0; ; i += m.cfg.DigestChunk {
		end := min(i+m.cfg.DigestChunk, len(ids))
		d := Digest{From: from, To: maxID}
		if end < len(ids) {
			d.To = ids[end-1]
		}
		if end > i {
			d.Entries = make([]DigestEntry, 0, end-i)
			for _, id := range ids[i:end] {
				d.Entries = append(d.Entries, DigestEntry{ID: id, Seq: m.store.get(id).rec.Seq})
			}
		}
		msg, err := AppendDigest(nil, d)
		if err != nil {
			panic("registry: own digest does not encode: " + err.Error()) // a bug
		}
		m.stats.DigestsOut++
		out = append(out, Send{To: peer, Msg: msg})
		if end >= len(ids) {
			return out
		}
		from = next(d.To)
	}
}

// next returns id+1; id must not be maxID.
func next(id identity.NodeID) identity.NodeID {
	for i := len(id) - 1; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			break
		}
	}
	return id
}

// HandleNeighborDown forgets peer's rate bucket.
func (m *Machine) HandleNeighborDown(_ time.Time, peer identity.NodeID) []Output {
	delete(m.buckets, peer)
	delete(m.pushes, peer)
	return nil
}

// HandleMessage handles an anti-entropy message from the neighbour from.
// A DIGEST is answered with RECORDS carrying every live record we hold in
// its range that from lacks or holds with a lower Seq. The records of a
// RECORDS message are charged to from's token bucket, then checked and
// merged as broadcasts are. A message that does not parse, or from the
// zero ID or ourselves, is dropped and counted.
func (m *Machine) HandleMessage(now time.Time, from identity.NodeID, msg []byte) []Output {
	if from.IsZero() || from == m.id {
		m.stats.BadMessages++
		return nil
	}
	pm, err := ParseMessage(msg)
	if err != nil {
		m.stats.BadMessages++
		return nil
	}
	switch pm.Type {
	case MsgDigest:
		m.stats.DigestsIn++
		return m.answerDigest(now, from, pm.Digest)
	case MsgRecords:
		var out []Output
		for _, raw := range pm.Records {
			if !m.take(now, m.buckets, from) {
				m.stats.RateLimited++
				continue
			}
			m.stats.RecordsIn++
			out = append(out, m.offer(now, raw)...)
		}
		return out
	}
	return nil
}

// answerDigest pushes to peer what its digest d shows it lacks.
func (m *Machine) answerDigest(now time.Time, peer identity.NodeID, d Digest) []Output {
	ids := m.store.sortedIDs()
	lo, _ := slices.BinarySearchFunc(ids, d.From, compareIDs)
	hi, found := slices.BinarySearchFunc(ids, d.To, compareIDs)
	if found {
		hi++
	}
	var raws [][]byte
	j := 0
	for _, id := range ids[lo:hi] {
		for j < len(d.Entries) && compareIDs(d.Entries[j].ID, id) < 0 {
			j++
		}
		e := m.store.get(id)
		if j < len(d.Entries) && d.Entries[j].ID == id && d.Entries[j].Seq >= e.rec.Seq {
			continue
		}
		if !now.Before(e.expires) {
			continue // the peer would refuse it
		}
		if !m.take(now, m.pushes, peer) {
			m.stats.PushLimited++
			continue
		}
		raws = append(raws, e.raw)
	}
	return m.pushRecords(peer, raws)
}

// pushRecords sends raws to peer in as few RECORDS messages as fit
// MaxMessageSize.
func (m *Machine) pushRecords(peer identity.NodeID, raws [][]byte) []Output {
	var out []Output
	for len(raws) > 0 {
		size, n := recordsHeaderLen, 0
		for n < len(raws) && n < 1<<16-1 && size+2+len(raws[n]) <= MaxMessageSize {
			size += 2 + len(raws[n])
			n++
		}
		msg, err := AppendRecords(make([]byte, 0, size), raws[:n])
		if err != nil {
			panic("registry: RECORDS does not encode: " + err.Error()) // a bug
		}
		m.stats.RecordsMsgsOut++
		m.stats.RecordsPushed += uint64(n)
		out = append(out, Send{To: peer, Msg: msg})
		raws = raws[n:]
	}
	return out
}

func compareIDs(a, b identity.NodeID) int { return bytes.Compare(a[:], b[:]) }

// bucket is one sender's token bucket for records arriving in RECORDS.
type bucket struct {
	tokens float64
	last   time.Time
}

// refill brings b up to now.
func (m *Machine) refill(b *bucket, now time.Time) {
	rate := float64(m.cfg.MaxRecordsPerPeerPerSecond)
	if now.After(b.last) {
		b.tokens = min(10*rate, b.tokens+now.Sub(b.last).Seconds()*rate)
		b.last = now
	}
}

// take spends one of peer's tokens in buckets (m.buckets or m.pushes),
// and reports whether there was one.
func (m *Machine) take(now time.Time, buckets map[identity.NodeID]*bucket, peer identity.NodeID) bool {
	b := buckets[peer]
	if b == nil {
		if len(buckets) >= maxBuckets {
			m.pruneBuckets(now, buckets)
			if len(buckets) >= maxBuckets {
				return false
			}
		}
		b = &bucket{tokens: 10 * float64(m.cfg.MaxRecordsPerPeerPerSecond), last: now}
		buckets[peer] = b
	}
	m.refill(b, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// pruneBuckets drops the buckets that have refilled: a new one would
// behave the same.
func (m *Machine) pruneBuckets(now time.Time, buckets map[identity.NodeID]*bucket) {
	burst := 10 * float64(m.cfg.MaxRecordsPerPeerPerSecond)
	for id, b := range buckets {
		m.refill(b, now)
		if b.tokens >= burst {
			delete(buckets, id)
		}
	}
}
