package netlab

import (
	"math/rand/v2"
	"net/netip"
)

// Randomness. Every random decision draws from a stream of its own,
// seeded from Config.Seed and what the decision is about, never from a
// source shared by the whole network: then the fate of a flow's n-th
// datagram does not depend on how the goroutines sending other flows
// interleave with it. The streams are PCGs seeded by hashing the seed with
// a name and, per flow, its endpoints; the n-th draw of a stream is the
// per-flow counter.
//
//   - loss and jitter: one stream per link and direction of flow, keyed by
//     the name of the host or router owning the link and the datagram's
//     source and destination as they cross it (flowRands);
//   - a NAT router's port choices: one stream per internal endpoint, keyed
//     by the router's name and that endpoint (table.randFor);
//   - ephemeral ports: one stream per host, keyed by its name.

// Domain tags keep the streams of different kinds of decision apart.
const (
	tagLink      = 1
	tagNATPorts  = 2
	tagEphemeral = 3
)

// mix is SplitMix64's finalizer: a bijection on uint64 that spreads every
// input bit over every output bit.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// hashString folds s into h (FNV-1a over its bytes, then mix).
func hashString(h uint64, s string) uint64 {
	f := uint64(14695981039346656037)
	for i := range len(s) {
		f ^= uint64(s[i])
		f *= 1099511628211
	}
	return mix(h ^ f)
}

// hashAddrPort folds ap into h.
func hashAddrPort(h uint64, ap netip.AddrPort) uint64 {
	a := ap.Addr().As16()
	var hi, lo uint64
	for i := range 8 {
		hi = hi<<8 | uint64(a[i])
		lo = lo<<8 | uint64(a[8+i])
	}
	h = mix(h ^ hi)
	h = mix(h ^ lo)
	return mix(h ^ uint64(ap.Port()))
}

// streamKey is the hash of the network's seed, a domain tag and a name:
// where a family of streams starts.
func streamKey(seed uint64, tag uint64, name string) uint64 {
	return hashString(mix(mix(seed)^tag), name)
}

// newStream returns a random source seeded by key.
func newStream(key uint64) *rand.Rand {
	return rand.New(rand.NewPCG(mix(key), mix(key^0x6a09e667f3bcc908)))
}

// flowKey is a flow as one link sees it.
type flowKey struct {
	src, dst netip.AddrPort
}

// flowRands are the random streams of the flows crossing one link: one
// per source and destination, made on the flow's first datagram over a
// link with loss or jitter and kept for the network's life (a few dozen
// bytes per flow). Guarded by Network.mu.
type flowRands struct {
	key   uint64 // streamKey of the link's owner
	flows map[flowKey]*rand.Rand
}

// get returns the stream of the flow from src to dst.
func (f *flowRands) get(src, dst netip.AddrPort) *rand.Rand {
	k := flowKey{src, dst}
	r := f.flows[k]
	if r == nil {
		if f.flows == nil {
			f.flows = make(map[flowKey]*rand.Rand)
		}
		r = newStream(hashAddrPort(hashAddrPort(f.key, src), dst))
		f.flows[k] = r
	}
	return r
}
