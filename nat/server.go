package nat

import (
	"container/list"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ServerConfig tunes a Server. Start from DefaultServerConfig; NewServer
// calls Validate.
type ServerConfig struct {
	// RatePerSource is the refill rate of each source's token bucket, in
	// answers per second. A source is an IPv4 address or an IPv6 /64.
	// Default 20 (guess: a prober sends a handful of requests per round;
	// 20 answers of at most 44 bytes is under 1 KiB/s reflected at any
	// one victim).
	RatePerSource float64

	// Burst is the capacity of each token bucket, in answers. Default 40
	// (guess: two seconds' worth).
	Burst int

	// MaxSources bounds the token buckets held. When it is reached, a new
	// source evicts the least recently used bucket if that bucket has
	// refilled (a full bucket is the same as none); otherwise the new
	// source is refused and counted as SourcesFull. Default 4096 (guess:
	// about 400 KiB).
	MaxSources int
}

// DefaultServerConfig returns the defaults documented on each field.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{RatePerSource: 20, Burst: 40, MaxSources: 4096}
}

// Bounds on ServerConfig, so that a typo cannot make a node hold
// unbounded state or answer without limit.
const (
	MaxServerRate    = 1e6
	MaxServerBurst   = 1 << 20
	MaxServerSources = 1 << 20
)

// Validate reports the first field that is out of range.
func (c ServerConfig) Validate() error {
	switch {
	case !(c.RatePerSource > 0 && c.RatePerSource <= MaxServerRate):
		return fmt.Errorf("%w: RatePerSource %v, want in (0, %v]", ErrBadConfig, c.RatePerSource, float64(MaxServerRate))
	case c.Burst < 1 || c.Burst > MaxServerBurst:
		return fmt.Errorf("%w: Burst %d, want 1..%d", ErrBadConfig, c.Burst, MaxServerBurst)
	case c.MaxSources < 1 || c.MaxSources > MaxServerSources:
		return fmt.Errorf("%w: MaxSources %d, want 1..%d", ErrBadConfig, c.MaxSources, MaxServerSources)
	}
	return nil
}

// ServerStats are a Server's plain counters since NewServer; Sources is a
// gauge. Each packet given to Handle lands in exactly one of Answered,
// BadSource, Oversized, Malformed, NotRequest, Unsupported, TooShort,
// RateLimited or SourcesFull.
type ServerStats struct {
	Packets  uint64 // packets given to Handle
	Requests uint64 // well-formed Binding requests among them
	Answered uint64 // Binding success responses returned

	BadSource   uint64 // from was not a usable address (invalid, unspecified, port 0)
	Oversized   uint64 // over MaxSTUNSize, dropped unread
	Malformed   uint64 // not STUN, or bad attributes or FINGERPRINT
	NotRequest  uint64 // well-formed STUN but not a Binding request (responses, indications, other methods)
	Unsupported uint64 // Binding requests with an unknown comprehension-required attribute (any but the address ones, which are ignored)
	TooShort    uint64 // Binding requests whose answer would exceed len(pkt)+MaxAmplification
	RateLimited uint64 // Binding requests over the source's token bucket
	SourcesFull uint64 // Binding requests from a new source refused: MaxSources held, none refilled

	Evicted uint64 // refilled buckets dropped to make room for a new source
	Sources int    // token buckets held now
}

// Server answers STUN Binding requests (RFC 8489 section 6.3) arriving on
// the node's one UDP socket. It is not safe for concurrent use; the
// socket's reader owns it.
type Server struct {
	cfg   ServerConfig
	stats ServerStats

	buckets map[netip.Addr]*list.Element // of *bucket, by source key
	lru     list.List                    // front: most recently used
}

// bucket is one source's token bucket.
type bucket struct {
	key    netip.Addr
	tokens float64
	last   time.Time // when tokens was last brought up to date
}

// NewServer returns a Server with no sources.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, buckets: make(map[netip.Addr]*list.Element)}, nil
}

// Stats returns the counters.
func (s *Server) Stats() ServerStats {
	st := s.stats
	st.Sources = len(s.buckets)
	return st
}

// Handle answers one packet from `from` (already known to be non-QUIC).
// It returns the response to send back to from, or nil. Only well-formed
// Binding requests are answered (class request, method Binding, no
// comprehension-required attribute but (XOR-)MAPPED-ADDRESS, which is
// ignored, FINGERPRINT correct if present), with
// a Binding success response carrying the same transaction ID and
// XOR-MAPPED-ADDRESS = from, nothing else: 32 bytes for IPv4, 44 for
// IPv6. The answer is never longer than len(pkt)+MaxAmplification; a
// request too short for that is not answered. Each source (IPv4 address
// or IPv6 /64) has a token bucket (ServerConfig); requests beyond it are
// dropped. from should be unmapped; Handle unmaps it and drops its zone.
// Every packet not answered is counted in Stats by reason.
func (s *Server) Handle(now time.Time, pkt []byte, from netip.AddrPort) []byte {
	s.stats.Packets++
	from, ok := cleanAddr(from)
	if !ok {
		s.stats.BadSource++
		return nil
	}
	h, a, err := parseMessage(pkt, knownInRequest)
	switch {
	case errors.Is(err, ErrTooLarge):
		s.stats.Oversized++
		return nil
	case err != nil:
		s.stats.Malformed++
		return nil
	case h.typ != typeBindingRequest:
		s.stats.NotRequest++
		return nil
	}
	s.stats.Requests++
	if a.unknownRequired {
		s.stats.Unsupported++
		return nil
	}
	respLen := headerSize + 4 + 8
	if from.Addr().Is6() {
		respLen = headerSize + 4 + 20
	}
	if respLen > len(pkt)+MaxAmplification {
		s.stats.TooShort++
		return nil
	}
	if !s.take(now, from.Addr()) {
		return nil
	}
	s.stats.Answered++
	return appendBindingSuccess(make([]byte, 0, respLen), h.tx, from)
}

// sourceKey is the rate-limit key of a: itself for IPv4, its /64 for
// IPv6, since one host commonly holds a whole /64.
func sourceKey(a netip.Addr) netip.Addr {
	if a.Is4() {
		return a
	}
	p, _ := a.Prefix(64)
	return p.Addr()
}

// take spends one token of a's bucket, reporting whether there was one.
// Refusals are counted (RateLimited or SourcesFull).
func (s *Server) take(now time.Time, a netip.Addr) bool {
	key := sourceKey(a)
	if e, ok := s.buckets[key]; ok {
		b := e.Value.(*bucket)
		s.refill(now, b)
		s.lru.MoveToFront(e)
		if b.tokens < 1 {
			s.stats.RateLimited++
			return false
		}
		b.tokens--
		return true
	}
	if len(s.buckets) >= s.cfg.MaxSources && !s.evict(now) {
		s.stats.SourcesFull++
		return false
	}
	b := &bucket{key: key, tokens: float64(s.cfg.Burst) - 1, last: now}
	s.buckets[key] = s.lru.PushFront(b)
	return true
}

// refill brings b's tokens up to date at now. A clock that went back
// refills nothing.
func (s *Server) refill(now time.Time, b *bucket) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(s.cfg.Burst), b.tokens+d.Seconds()*s.cfg.RatePerSource)
		b.last = now
	}
}

// evict drops the least recently used bucket if it has refilled,
// reporting whether it did. Looking at the tail only keeps a flood of new
// sources at O(1) work each; a refilled bucket further up the list waits
// its turn.
func (s *Server) evict(now time.Time) bool {
	e := s.lru.Back()
	if e == nil {
		return false
	}
	b := e.Value.(*bucket)
	s.refill(now, b)
	if b.tokens < float64(s.cfg.Burst) {
		return false
	}
	s.lru.Remove(e)
	delete(s.buckets, b.key)
	s.stats.Evicted++
	return true
}
