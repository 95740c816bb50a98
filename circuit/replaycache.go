package circuit

import (
	"container/heap"
	"fmt"
	"sync"
	"time"
)

// ReplayCache remembers the replay tags of the setup onions a node has
// peeled, so each onion is accepted once. A tag is kept for
// 2*SetupMaxAge after it was seen: an onion is accepted only within
// SetupMaxAge of its creation time, so after that no copy of it can pass
// the age check again.
//
// The cache is bounded. When it holds max unexpired tags it refuses new
// onions with ErrReplayCacheFull rather than forget a tag early, which
// would let that onion be replayed; circuit setup then fails until tags
// expire. Size max for the setup rate the node will accept over
// 2*SetupMaxAge. Only onions whose MAC verifies reach the cache, so
// forged onions cannot fill it.
//
// Time comes only from the now passed to Peel. A ReplayCache is safe for
// concurrent use.
type ReplayCache struct {
	mu      sync.Mutex
	max     int
	expires map[[replayTagSize]byte]time.Time
	order   expiryHeap
}

// NewReplayCache returns an empty cache holding at most max tags (at
// least 1).
func NewReplayCache(max int) *ReplayCache {
	if max < 1 {
		max = 1
	}
	return &ReplayCache{max: max, expires: make(map[[replayTagSize]byte]time.Time)}
}

// Len returns how many tags the cache holds, expired ones not yet
// dropped included.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.expires)
}

// insert records tag as seen at now. It fails with ErrReplay if tag is
// held and unexpired, and with ErrReplayCacheFull if the cache is full
// of unexpired tags.
func (c *ReplayCache) insert(tag [replayTagSize]byte, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if _, ok := c.expires[tag]; ok {
		return ErrReplay
	}
	if len(c.expires) >= c.max {
		return fmt.Errorf("%w: %d tags", ErrReplayCacheFull, len(c.expires))
	}
	exp := now.Add(2 * SetupMaxAge)
	c.expires[tag] = exp
	heap.Push(&c.order, tagExpiry{tag: tag, at: exp})
	return nil
}

// expire drops every tag whose expiry is not after now.
func (c *ReplayCache) expire(now time.Time) {
	for len(c.order) > 0 && !c.order[0].at.After(now) {
		e := heap.Pop(&c.order).(tagExpiry)
		delete(c.expires, e.tag)
	}
}

// tagExpiry is one tag and when it expires.
type tagExpiry struct {
	tag [replayTagSize]byte
	at  time.Time
}

// expiryHeap is a min-heap of tags by expiry (container/heap).
type expiryHeap []tagExpiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(tagExpiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
