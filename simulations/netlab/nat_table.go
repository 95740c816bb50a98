package netlab

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// table is one NAT router's mappings (RFC 4787 §4) and the filtering
// state that goes with each (§5). Its owner holds Network.mu.
//
// Two simplifications against a real router: a public port belongs to one
// mapping at a time (Linux conntrack may reuse a port towards different
// destinations), and filtering state lives and dies with its mapping
// rather than with per-destination timers.
type table struct {
	cfg     NATConfig
	byKey   map[mapKey]*mapping
	byPort  map[uint16]*mapping
	next    uint16 // where PortSequential goes on from
	sweepAt int    // mapping count at which the next new mapping sweeps out the dead
}

// mapKey is what makes an outbound datagram reuse a mapping: its internal
// source, and as much of its destination as the mapping behaviour looks
// at (none, the address, or both address and port).
type mapKey struct {
	internal netip.AddrPort
	remote   netip.AddrPort
}

// mapping is one public port of the router and what it may let in.
type mapping struct {
	key       mapKey
	port      uint16
	refreshed time.Time // last datagram that refreshed it
	replied   bool      // it has let a datagram in
	// The destinations the internal endpoint has sent to: addresses for
	// address-dependent filtering, endpoints for address-and-port.
	addrs map[netip.Addr]struct{}
	eps   map[netip.AddrPort]struct{}
}

const minSweep = 1024

func newTable(cfg NATConfig) *table {
	return &table{
		cfg:     cfg,
		byKey:   make(map[mapKey]*mapping),
		byPort:  make(map[uint16]*mapping),
		next:    cfg.PortMin,
		sweepAt: minSweep,
	}
}

// outbound finds or makes the mapping for a datagram from src to dst,
// refreshes it and lets dst answer through it. It returns nil when no
// public port is free.
func (t *table) outbound(src, dst netip.AddrPort, now time.Time, r *rand.Rand) *mapping {
	key := mapKey{internal: src}
	switch t.cfg.Mapping {
	case AddressDependent:
		key.remote = netip.AddrPortFrom(dst.Addr(), 0)
	case AddressAndPortDependent:
		key.remote = dst
	}
	m := t.byKey[key]
	if m != nil && !t.live(m, now) {
		t.remove(m)
		m = nil
	}
	if m == nil {
		if len(t.byPort) >= t.sweepAt {
			t.sweep(now)
			t.sweepAt = max(minSweep, 2*len(t.byPort))
		}
		port, ok := t.alloc(src.Port(), now, r)
		if !ok {
			return nil
		}
		m = &mapping{key: key, port: port}
		t.byKey[key] = m
		t.byPort[port] = m
	}
	m.refreshed = now
	switch t.cfg.Filtering {
	case AddressDependent:
		if m.addrs == nil {
			m.addrs = make(map[netip.Addr]struct{})
		}
		m.addrs[dst.Addr()] = struct{}{}
	case AddressAndPortDependent:
		if m.eps == nil {
			m.eps = make(map[netip.AddrPort]struct{})
		}
		m.eps[dst] = struct{}{}
	}
	return m
}

// inbound returns the mapping that lets a datagram from src in through
// public port port, or why none does.
func (t *table) inbound(src netip.AddrPort, port uint16, now time.Time) (*mapping, DropReason) {
	m := t.byPort[port]
	if m == nil {
		return nil, DropNoMapping
	}
	if !t.live(m, now) {
		t.remove(m)
		return nil, DropNoMapping
	}
	switch t.cfg.Filtering {
	case AddressDependent:
		if _, ok := m.addrs[src.Addr()]; !ok {
			return nil, DropFiltered
		}
	case AddressAndPortDependent:
		if _, ok := m.eps[src]; !ok {
			return nil, DropFiltered
		}
	}
	m.replied = true
	if t.cfg.InboundRefresh {
		m.refreshed = now
	}
	return m, 0
}

// live reports whether m has not yet timed out.
func (t *table) live(m *mapping, now time.Time) bool {
	timeout := t.cfg.Timeout
	if !m.replied && t.cfg.UnrepliedTimeout > 0 {
		timeout = t.cfg.UnrepliedTimeout
	}
	return now.Before(m.refreshed.Add(timeout))
}

func (t *table) remove(m *mapping) {
	delete(t.byKey, m.key)
	delete(t.byPort, m.port)
}

func (t *table) sweep(now time.Time) {
	for _, m := range t.byPort {
		if !t.live(m, now) {
			t.remove(m)
		}
	}
}

// count returns the number of live mappings.
func (t *table) count(now time.Time) int {
	n := 0
	for _, m := range t.byPort {
		if t.live(m, now) {
			n++
		}
	}
	return n
}

func (t *table) flush() {
	clear(t.byKey)
	clear(t.byPort)
}

// alloc picks a free public port by the allocation policy; want is the
// internal port.
func (t *table) alloc(want uint16, now time.Time, r *rand.Rand) (uint16, bool) {
	lo, hi := int(t.cfg.PortMin), int(t.cfg.PortMax)
	size := hi - lo + 1
	free := func(p uint16) bool {
		m := t.byPort[p]
		if m != nil && !t.live(m, now) {
			t.remove(m)
			m = nil
		}
		return m == nil
	}
	start := int(t.next) - lo // scan offset within the range
	switch t.cfg.Ports {
	case PortPreserving:
		if free(want) {
			return want, true
		}
		if w := int(want); w >= lo && w <= hi {
			start = w - lo + 1
		}
	case PortRandom:
		for range 16 {
			if p := uint16(lo + r.IntN(size)); free(p) {
				return p, true
			}
		}
		start = r.IntN(size)
	}
	for i := range size {
		p := lo + (start+i)%size
		if free(uint16(p)) {
			if t.cfg.Ports == PortSequential {
				t.next = uint16(lo + (p-lo+1)%size)
			}
			return uint16(p), true
		}
	}
	return 0, false
}
