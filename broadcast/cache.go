package broadcast

import (
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/mycelium-net/mycelium/internal/identity"
)

// cacheEntry is what a node remembers of a received message: its ID (the
// map key), for deduplication, and while CacheBytes allows, its content,
// for answering GRAFTs.
type cacheEntry struct {
	origin  identity.NodeID
	seq     uint64
	topic   string
	payload []byte // nil once dropped for CacheBytes
	hasBody bool   // payload is kept (an empty payload is still a body)
	// hops is this node's distance from the origin along the tree it
	// currently uses for the message; parent is the neighbour it came from
	// (self at the origin). The optimisation of §3.8 updates both.
	hops    uint16
	parent  identity.NodeID
	expires time.Time
	n       uint64 // insertion number, to match bodyQ entries
}

// msgCache is the paper's receivedMsgs set plus the payloads kept for
// GRAFT answers, bounded in entries (CacheSize), age (CacheTTL) and payload
// bytes (CacheBytes).
//
// It reads entries only with Peek, so the LRU's recency order is insertion
// order. With one TTL for all and a driver whose clock does not run
// backwards, insertion order is expiry order too: the oldest entry is the
// first to expire, and a sweep stops at the first live one.
type msgCache struct {
	lru   *simplelru.LRU[MessageID, *cacheEntry]
	ttl   time.Duration
	limit int // CacheBytes
	bytes int // payload bytes held
	next  uint64
	// bodyQ lists the entries holding a body, oldest first, so bodies can
	// be dropped oldest first when bytes exceed limit.
	bodyQ []bodyRef
	head  int
}

type bodyRef struct {
	id MessageID
	n  uint64
}

func newMsgCache(cfg Config) *msgCache {
	c := &msgCache{ttl: cfg.CacheTTL, limit: cfg.CacheBytes}
	// NewLRU fails only for a size below 1, which Validate refuses.
	c.lru, _ = simplelru.NewLRU(cfg.CacheSize, func(_ MessageID, e *cacheEntry) {
		c.dropBody(e)
	})
	return c
}

func (c *msgCache) len() int { return c.lru.Len() }

// get returns the live entry for id, removing it if it has expired.
func (c *msgCache) get(now time.Time, id MessageID) (*cacheEntry, bool) {
	e, ok := c.lru.Peek(id)
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		c.lru.Remove(id)
		c.trimQueue()
		return nil, false
	}
	return e, true
}

// add remembers a message not present in the cache (the caller checked
// with get), evicting the oldest entries and bodies past the bounds.
func (c *msgCache) add(now time.Time, id MessageID, e *cacheEntry) {
	e.expires = now.Add(c.ttl)
	c.next++
	e.n = c.next
	e.hasBody = true
	c.bytes += len(e.payload)
	c.lru.Add(id, e)
	c.bodyQ = append(c.bodyQ, bodyRef{id: id, n: e.n})
	for c.bytes > c.limit && c.head < len(c.bodyQ) {
		r := c.bodyQ[c.head]
		c.head++
		if old, ok := c.lru.Peek(r.id); ok && old.n == r.n {
			c.dropBody(old)
		}
	}
	c.trimQueue()
}

// sweep removes every expired entry and returns how many are left.
func (c *msgCache) sweep(now time.Time) int {
	for {
		_, e, ok := c.lru.GetOldest()
		if !ok || now.Before(e.expires) {
			break
		}
		c.lru.RemoveOldest()
	}
	c.trimQueue()
	return c.lru.Len()
}

func (c *msgCache) dropBody(e *cacheEntry) {
	if e.hasBody {
		c.bytes -= len(e.payload)
		e.payload, e.hasBody = nil, false
	}
}

// trimQueue pops references to entries that are gone or bodiless from the
// front of bodyQ and compacts it, so it stays within about twice the
// number of bodies held.
func (c *msgCache) trimQueue() {
	for c.head < len(c.bodyQ) {
		r := c.bodyQ[c.head]
		if e, ok := c.lru.Peek(r.id); ok && e.n == r.n && e.hasBody {
			break
		}
		c.head++
	}
	if c.head > 64 && c.head*2 > len(c.bodyQ) {
		n := copy(c.bodyQ, c.bodyQ[c.head:])
		clear(c.bodyQ[n:])
		c.bodyQ = c.bodyQ[:n]
		c.head = 0
	}
}
