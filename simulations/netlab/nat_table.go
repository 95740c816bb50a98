package netlab

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// table is one NAT router's mappings (RFC 4787 §4) and, under each, its
// permissions: the filtering state (§5), one per remote endpoint the
// internal endpoint has sent to through the mapping. A permission is what
// a Linux conntrack entry is to MASQUERADE: it has its own timer, set by
// the datagrams of its flow (see perm), and a mapping lives exactly as
// long as one of its permissions does. The owner holds Network.mu.
//
// One simplification against Linux: a public port belongs to one mapping
// at a time. Linux needs only the whole tuple (public port and remote
// endpoint) to be unique, so two internal endpoints may share a public
// port towards different remotes; here the second gets another port.
type table struct {
	cfg     NATConfig
	byKey   map[mapKey]*mapping
	byPort  map[uint16]*mapping
	retired map[uint16]struct{} // ports Rebind keeps out of use
	next    uint16              // where PortSequential goes on from
	sweepAt int                 // mapping count at which the next new mapping sweeps out the dead

	// Port choices draw from one random stream per internal endpoint, so
	// that one host's mappings do not depend on when another's are made.
	randKey uint64
	rands   map[netip.AddrPort]*rand.Rand
}

// mapKey is what makes an outbound datagram reuse a mapping: its internal
// source, and as much of its destination as the mapping behaviour looks
// at (none, the address, or both address and port).
type mapKey struct {
	internal netip.AddrPort
	remote   netip.AddrPort
}

// mapping is one public port of the router and its permissions.
type mapping struct {
	key     mapKey
	port    uint16
	expires time.Time                // when the last of its permissions expires
	perms   map[netip.AddrPort]*perm // by remote endpoint
	sweepAt int                      // permission count at which a new one sweeps out the dead
	// aliases are further keys that lead to this mapping: sessions an
	// inbound datagram opened (NATConfig.InboundSessions).
	aliases []mapKey
}

// perm is the state of the flow between a mapping and one remote
// endpoint, modelled on a Linux UDP conntrack entry as Linux 6.18 keeps
// it (nf_conntrack_udp_packet in nf_conntrack_proto_udp.c; IPS_SEEN_REPLY
// is set by nf_conntrack_in after that function has run):
//
//   - the datagram that opens it, outbound, sets its timer to
//     UnrepliedTimeout (nf_conntrack_udp_timeout, 30 s);
//   - a datagram back from the remote marks it replied (IPS_SEEN_REPLY)
//     but, being the first of its kind, sets the timer as before:
//     UnrepliedTimeout;
//   - any later datagram, in either direction, sets the timer to Timeout
//     (nf_conntrack_udp_timeout_stream, 120 s) if the flow was opened more
//     than 2 s before, and the flow is then assured (IPS_ASSURED); within
//     the first 2 s it sets UnrepliedTimeout again.
//
// So one request and its reply, a STUN binding say, leave 30 s of life;
// a flow still carrying traffic both ways after 2 s gets 120 s from each
// datagram. Where Linux sets the timer on every datagram, netlab does on
// outbound ones only unless NATConfig.InboundRefresh is set; an inbound
// datagram always marks the permission replied.
type perm struct {
	opened  time.Time
	expires time.Time
	replied bool
}

// streamAge is how old a replied flow must be for its next datagram to
// assure it (the kernel's stream_ts, 2 s after the first datagram).
const streamAge = 2 * time.Second

const (
	minSweep     = 1024 // mappings
	minPermSweep = 64   // permissions of one mapping
)

func newTable(cfg NATConfig, randKey uint64) *table {
	return &table{
		cfg:     cfg,
		byKey:   make(map[mapKey]*mapping),
		byPort:  make(map[uint16]*mapping),
		next:    cfg.PortMin,
		sweepAt: minSweep,
		randKey: randKey,
	}
}

// timeout is what a datagram refreshing p at now sets its timer to.
func (t *table) timeout(p *perm, now time.Time) time.Duration {
	if p.replied && now.Sub(p.opened) > streamAge {
		return t.cfg.Timeout
	}
	if t.cfg.UnrepliedTimeout > 0 {
		return t.cfg.UnrepliedTimeout
	}
	return t.cfg.Timeout
}

// refresh sets the timer of m's permission p, as a datagram at now does.
func (t *table) refresh(m *mapping, p *perm, now time.Time) {
	p.expires = now.Add(t.timeout(p, now))
	if p.expires.After(m.expires) {
		m.expires = p.expires
	}
}

// outbound finds or makes the mapping for a datagram from src to dst,
// opens or refreshes the permission for dst in it, and returns it. It
// returns nil when no public port is free.
func (t *table) outbound(src, dst netip.AddrPort, now time.Time) *mapping {
	key := t.key(src, dst)
	m := t.byKey[key]
	if m != nil && !m.live(now) {
		t.remove(m)
		m = nil
	}
	if m == nil {
		if len(t.byPort) >= t.sweepAt {
			t.sweep(now)
			t.sweepAt = max(minSweep, 2*len(t.byPort))
		}
		port, ok := t.alloc(src, now)
		if !ok {
			return nil
		}
		m = &mapping{key: key, port: port, perms: make(map[netip.AddrPort]*perm, 1), sweepAt: minPermSweep}
		t.byKey[key] = m
		t.byPort[port] = m
	}
	p := m.perms[dst]
	if p == nil || !now.Before(p.expires) {
		if len(m.perms) >= m.sweepAt {
			m.sweep(now)
			m.sweepAt = max(minPermSweep, 2*len(m.perms))
		}
		p = &perm{opened: now}
		m.perms[dst] = p
	}
	t.refresh(m, p, now)
	return m
}

// key is the mapping key of a datagram from internal to remote.
func (t *table) key(internal, remote netip.AddrPort) mapKey {
	key := mapKey{internal: internal}
	switch t.cfg.Mapping {
	case AddressDependent:
		key.remote = netip.AddrPortFrom(remote.Addr(), 0)
	case AddressAndPortDependent:
		key.remote = remote
	}
	return key
}

// inbound returns the mapping that lets a datagram from src in through
// public port port, or why none does.
func (t *table) inbound(src netip.AddrPort, port uint16, now time.Time) (*mapping, DropReason) {
	m := t.byPort[port]
	if m == nil {
		return nil, DropNoMapping
	}
	if !m.live(now) {
		t.remove(m)
		return nil, DropNoMapping
	}
	p := m.perms[src]
	if p != nil && !now.Before(p.expires) {
		delete(m.perms, src)
		p = nil
	}
	switch t.cfg.Filtering {
	case AddressDependent:
		if p == nil && !m.permits(src.Addr(), now) {
			return nil, DropFiltered
		}
	case AddressAndPortDependent:
		if p == nil {
			return nil, DropFiltered
		}
	}
	// A datagram from an endpoint with no permission of its own (let in
	// by endpoint-independent or address-dependent filtering) opens no
	// state and refreshes none, unless it opens a session.
	if p == nil && t.cfg.InboundSessions && t.cfg.Mapping != EndpointIndependent {
		key := t.key(m.key.internal, src)
		if other := t.byKey[key]; other == nil || !other.live(now) {
			if other != nil {
				t.remove(other)
			}
			t.byKey[key] = m
			m.aliases = append(m.aliases, key)
			p = &perm{opened: now}
			m.perms[src] = p
			t.refresh(m, p, now)
		}
	}
	if p != nil {
		if t.cfg.InboundRefresh {
			t.refresh(m, p, now) // with replied as it was, as Linux does
		}
		p.replied = true
	}
	return m, 0
}

// live reports whether m has not yet timed out: whether one of its
// permissions has not.
func (m *mapping) live(now time.Time) bool { return now.Before(m.expires) }

// permits reports whether m has a live permission for a remote endpoint
// at addr.
func (m *mapping) permits(addr netip.Addr, now time.Time) bool {
	for remote, p := range m.perms {
		if remote.Addr() == addr && now.Before(p.expires) {
			return true
		}
	}
	return false
}

// sweep forgets m's expired permissions.
func (m *mapping) sweep(now time.Time) {
	for remote, p := range m.perms {
		if !now.Before(p.expires) {
			delete(m.perms, remote)
		}
	}
}

func (t *table) remove(m *mapping) {
	for _, k := range append(m.aliases, m.key) {
		if t.byKey[k] == m {
			delete(t.byKey, k)
		}
	}
	delete(t.byPort, m.port)
}

func (t *table) sweep(now time.Time) {
	for _, m := range t.byPort {
		if !m.live(now) {
			t.remove(m)
		}
	}
}

// count returns the number of live mappings.
func (t *table) count(now time.Time) int {
	n := 0
	for _, m := range t.byPort {
		if m.live(now) {
			n++
		}
	}
	return n
}

// flush forgets every mapping.
func (t *table) flush() {
	clear(t.byKey)
	clear(t.byPort)
}

// rebind forgets every mapping and keeps their ports out of use until
// the next rebind.
func (t *table) rebind() {
	t.retired = make(map[uint16]struct{}, len(t.byPort))
	for port := range t.byPort {
		t.retired[port] = struct{}{}
	}
	t.flush()
}

// randFor returns the random stream of port choices for internal.
func (t *table) randFor(internal netip.AddrPort) *rand.Rand {
	r := t.rands[internal]
	if r == nil {
		if t.rands == nil {
			t.rands = make(map[netip.AddrPort]*rand.Rand)
		}
		r = newStream(hashAddrPort(t.randKey, internal))
		t.rands[internal] = r
	}
	return r
}

// alloc picks a free public port for a new mapping of internal by the
// allocation policy.
func (t *table) alloc(internal netip.AddrPort, now time.Time) (uint16, bool) {
	lo, hi := int(t.cfg.PortMin), int(t.cfg.PortMax)
	size := hi - lo + 1
	free := func(p uint16) bool {
		if _, ok := t.retired[p]; ok {
			return false
		}
		m := t.byPort[p]
		if m != nil && !m.live(now) {
			t.remove(m)
			m = nil
		}
		return m == nil
	}
	// scan returns the first free port from offset start in the range.
	scan := func(start int) (uint16, bool) {
		for i := range size {
			if p := uint16(lo + (start+i)%size); free(p) {
				return p, true
			}
		}
		return 0, false
	}
	switch t.cfg.Ports {
	case PortPreserving:
		if want := internal.Port(); free(want) {
			return want, true
		}
		// As Linux's nf_nat_l4proto_unique_tuple for source NAT: from a
		// random offset in the range, the first free port.
		return scan(t.randFor(internal).IntN(size))
	case PortRandom:
		r := t.randFor(internal)
		for range 16 {
			if p := uint16(lo + r.IntN(size)); free(p) {
				return p, true
			}
		}
		return scan(r.IntN(size))
	}
	p, ok := scan(int(t.next) - lo)
	if ok {
		t.next = uint16(lo + (int(p)-lo+1)%size)
	}
	return p, ok
}
