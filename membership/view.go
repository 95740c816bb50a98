package membership

import (
	"math/rand/v2"
	"slices"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// view is a bounded set of peers in a slice. The slice order is an
// accident of history, but a deterministic one, so random picks from it
// repeat under the same seed; nothing here iterates a map. Views hold at
// most MaxPassiveSize peers, so linear scans are cheap.
type view struct {
	peers []Peer
	max   int
}

func (v *view) len() int    { return len(v.peers) }
func (v *view) full() bool  { return len(v.peers) >= v.max }
func (v *view) empty() bool { return len(v.peers) == 0 }

func (v *view) index(id identity.NodeID) int {
	for i := range v.peers {
		if v.peers[i].ID == id {
			return i
		}
	}
	return -1
}

func (v *view) has(id identity.NodeID) bool { return v.index(id) >= 0 }

// add appends p; the caller has made room and checked p is not present.
func (v *view) add(p Peer) { v.peers = append(v.peers, p.clone()) }

// update replaces what the view holds about p.ID, if anything.
func (v *view) update(p Peer) {
	if i := v.index(p.ID); i >= 0 {
		v.peers[i] = p.clone()
	}
}

func (v *view) remove(id identity.NodeID) (Peer, bool) {
	i := v.index(id)
	if i < 0 {
		return Peer{}, false
	}
	p := v.peers[i]
	v.peers = slices.Delete(v.peers, i, i+1)
	return p, true
}

// pick returns a uniformly random peer for which skip is false.
func (v *view) pick(rng *rand.Rand, skip func(Peer) bool) (Peer, bool) {
	s := v.sample(rng, 1, skip)
	if len(s) == 0 {
		return Peer{}, false
	}
	return s[0], true
}

// sample returns up to k distinct random peers for which skip is false
// (skip may be nil), as copies.
func (v *view) sample(rng *rand.Rand, k int, skip func(Peer) bool) []Peer {
	if k <= 0 {
		return nil
	}
	idx := make([]int, 0, len(v.peers))
	for i, p := range v.peers {
		if skip == nil || !skip(p) {
			idx = append(idx, i)
		}
	}
	k = min(k, len(idx))
	out := make([]Peer, 0, k)
	for j := range k { // a partial Fisher-Yates shuffle
		r := j + rng.IntN(len(idx)-j)
		idx[j], idx[r] = idx[r], idx[j]
		out = append(out, v.peers[idx[j]].clone())
	}
	return out
}

// sorted returns copies of the peers, sorted by ID.
func (v *view) sorted() []Peer {
	out := make([]Peer, len(v.peers))
	for i, p := range v.peers {
		out[i] = p.clone()
	}
	slices.SortFunc(out, func(a, b Peer) int { return compareIDs(a.ID, b.ID) })
	return out
}

func compareIDs(a, b identity.NodeID) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

func ids(ps []Peer) []identity.NodeID {
	out := make([]identity.NodeID, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}
