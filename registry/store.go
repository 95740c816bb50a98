package registry

import (
	"bytes"
	"container/heap"
	"crypto/ed25519"
	"slices"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// entry is one held record.
type entry struct {
	rec     Record
	raw     []byte    // the signed encoding, as received
	expires time.Time // rec.Expires()
	// hold is when the entry is forgotten: the later of its own expiry
	// and the hold of the entry it replaced, so that a replaced record
	// (or one older still) cannot come back while it could be live.
	hold time.Time
	// shown is whether the last Changed about this ID said present.
	shown bool
	// dead is set by the sweep once the record has expired.
	dead bool
	// idx is the entry's place in the eviction heap; -1 for our own.
	idx int
}

// visible reports whether Lookup and the other queries return e.
func (e *entry) visible(now time.Time) bool {
	return e != nil && !e.rec.Leaving && now.Before(e.expires)
}

// sig is the signature of the held encoding.
func (e *entry) sig() []byte { return e.raw[len(e.raw)-ed25519.SignatureSize:] }

// store holds the records: by ID, and in a min-heap by (expiry, ID) for
// eviction, our own record excepted.
type store struct {
	self       identity.NodeID
	max        int
	byID       map[identity.NodeID]*entry
	evict      evictHeap
	sorted     []identity.NodeID // byID's keys in order; nil when stale
	tombstones int
}

func (s *store) init(self identity.NodeID, max int) {
	s.self, s.max = self, max
	s.byID = make(map[identity.NodeID]*entry)
}

func (s *store) get(id identity.NodeID) *entry { return s.byID[id] }

// sortedIDs returns the held IDs in increasing order. The slice is
// shared: callers must not keep it across a change to the store.
func (s *store) sortedIDs() []identity.NodeID {
	if s.sorted == nil {
		s.sorted = make([]identity.NodeID, 0, len(s.byID))
		for id := range s.byID {
			s.sorted = append(s.sorted, id)
		}
		slices.SortFunc(s.sorted, func(a, b identity.NodeID) int { return bytes.Compare(a[:], b[:]) })
	}
	return s.sorted
}

// merge offers rec, about another node, signed as raw, and already
// checked (Parse, CheckTime). It returns ErrStale for a record that
// loses to the one held; a duplicate or a newcomer refused for room is
// counted and returns nil.
func (s *store) merge(rec Record, raw []byte, st *Stats) ([]Output, error) {
	if e := s.byID[rec.ID]; e != nil {
		if rec.Seq < e.rec.Seq {
			return nil, ErrStale
		}
		if rec.Seq == e.rec.Seq {
			if bytes.Equal(raw, e.raw) {
				st.Duplicates++
				return nil, nil
			}
			// Two records with one Seq: the node signed twice (a
			// restart within a millisecond, or a shared key). Every
			// node keeps the one with the larger signature.
			st.Conflicts++
			if bytes.Compare(raw[len(raw)-ed25519.SignatureSize:], e.sig()) <= 0 {
				return nil, ErrStale
			}
		}
		st.Accepted++
		return s.replace(e, rec, raw), nil
	}
	var out []Output
	if len(s.byID) >= s.max {
		if len(s.evict) == 0 || !rec.Expires().After(s.evict[0].expires) {
			st.Evicted++
			return nil, nil
		}
		victim := s.evict[0]
		st.Evicted++
		if victim.shown {
			out = append(out, Changed{ID: victim.rec.ID, Removed: true})
		}
		s.remove(victim)
	}
	st.Accepted++
	return append(out, s.insert(rec, raw)...), nil
}

// put stores our own record, replacing the one held.
func (s *store) put(rec Record, raw []byte, _ *Stats) []Output {
	if e := s.byID[rec.ID]; e != nil {
		return s.replace(e, rec, raw)
	}
	if len(s.byID) >= s.max && len(s.evict) > 0 {
		victim := s.evict[0]
		var out []Output
		if victim.shown {
			out = append(out, Changed{ID: victim.rec.ID, Removed: true})
		}
		s.remove(victim)
		return append(out, s.insert(rec, raw)...)
	}
	return s.insert(rec, raw)
}

// insert adds a record about an ID not held.
func (s *store) insert(rec Record, raw []byte) []Output {
	e := &entry{rec: rec, raw: raw, expires: rec.Expires(), idx: -1}
	e.hold = e.expires
	e.shown = !rec.Leaving
	s.byID[rec.ID] = e
	s.sorted = nil
	if rec.Leaving {
		s.tombstones++
	}
	if rec.ID != s.self {
		heap.Push(&s.evict, e)
	}
	if e.shown {
		return []Output{Changed{ID: rec.ID}}
	}
	return nil
}

// replace puts rec in place of e's record.
func (s *store) replace(e *entry, rec Record, raw []byte) []Output {
	if e.rec.Leaving {
		s.tombstones--
	}
	if rec.Leaving {
		s.tombstones++
	}
	wasShown := e.shown
	e.rec, e.raw, e.expires, e.dead = rec, raw, rec.Expires(), false
	if e.expires.After(e.hold) {
		e.hold = e.expires
	}
	e.shown = !rec.Leaving
	if e.idx >= 0 {
		heap.Fix(&s.evict, e.idx)
	}
	switch {
	case e.shown:
		return []Output{Changed{ID: rec.ID}}
	case wasShown:
		return []Output{Changed{ID: rec.ID, Removed: true}}
	}
	return nil
}

// remove forgets e.
func (s *store) remove(e *entry) {
	if e.rec.Leaving {
		s.tombstones--
	}
	if e.idx >= 0 {
		heap.Remove(&s.evict, e.idx)
	}
	delete(s.byID, e.rec.ID)
	s.sorted = nil
}

// sweep reports records that expired since the last sweep, in ID order,
// and forgets those whose hold has passed.
func (s *store) sweep(now time.Time, st *Stats) []Output {
	var out []Output
	var gone []*entry
	for _, id := range s.sortedIDs() {
		e := s.byID[id]
		if !e.dead && !now.Before(e.expires) {
			e.dead = true
			st.Expirations++
			if e.shown {
				e.shown = false
				out = append(out, Changed{ID: id, Removed: true})
			}
		}
		if !now.Before(e.hold) {
			gone = append(gone, e)
		}
	}
	for _, e := range gone {
		s.remove(e)
	}
	return out
}

// evictHeap orders entries by expiry, then ID: the first is evicted
// first.
type evictHeap []*entry

func (h evictHeap) Len() int { return len(h) }
func (h evictHeap) Less(i, j int) bool {
	if c := h[i].expires.Compare(h[j].expires); c != 0 {
		return c < 0
	}
	return bytes.Compare(h[i].rec.ID[:], h[j].rec.ID[:]) < 0
}
func (h evictHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *evictHeap) Push(x any) {
	e := x.(*entry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *evictHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.idx = -1
	return e
}
