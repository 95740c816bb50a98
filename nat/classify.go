package nat

import (
	"net/netip"

	"github.com/mycelium-net/mycelium/registry"
)

// Observation is one observer's answer to a Binding request.
type Observation struct {
	Observer netip.AddrPort // where we sent the Binding request
	Mapped   netip.AddrPort // the reflexive address it reported
}

// ClassifyMapping gives the RFC 4787 section 4.1 mapping behaviour shown
// by obs, all sent from one local socket. Observations with an invalid
// Observer or Mapped are ignored, and so are repeats of an observer.
//
//   - Fewer than 2 observers: NATUnknown.
//   - Every Mapped equal, across at least 2 observer IPs:
//     NATEndpointIndependent. Across one IP only (several ports):
//     NATUnknown, since that rules out address-and-port dependence only.
//   - Mapped differs between two observers with the same IP and
//     different ports: NATAddressAndPortDependent.
//   - Otherwise, if some observer IP has at least 2 ports (with equal
//     Mapped, else the case above) and Mapped differs across IPs:
//     NATAddressDependent.
//   - Mapped differs across IPs but no IP has 2 ports: NATUnknown. The
//     NAT is endpoint-dependent, but without a same-IP pair address
//     dependence cannot be told from address-and-port dependence.
//
// One exception comes first: with at least 4 observers, if all but one
// report the same Mapped, from at least 2 IPs, the mapping is
// NATEndpointIndependent and the odd one out is taken for a collision.
// Linux MASQUERADE keeps the source port whenever it can, so it maps
// endpoint-independently until some remote's unasked packet has left a
// conntrack entry that the next mapping toward that remote would clash
// with; that one mapping then gets another port. A NAT that picks a port
// per destination gives 3 equal ports out of 4 almost never, and an
// address-dependent one gives at most 2 (the two ports of one IP).
//
// Observers that sit behind the same NAT as us, or answer from another
// address than asked, mislead it; the caller picks observers. So does
// state an observer's own unasked packets left in our NAT (the collision
// above), and a NAT that filters nothing may send our packets out by the
// mapping such a packet came in on; the caller keeps such nodes out of
// its observers where it knows of them.
func ClassifyMapping(obs []Observation) registry.NATClass {
	seen := make(map[netip.AddrPort]bool, len(obs))
	byIP := make(map[netip.Addr][]netip.AddrPort, len(obs)) // Mapped of each port, by observer IP
	var first netip.AddrPort
	n, allEqual := 0, true
	for _, o := range obs {
		obsv, ok1 := cleanAddr(o.Observer)
		mapped, ok2 := cleanAddr(o.Mapped)
		if !ok1 || !ok2 || seen[obsv] {
			continue
		}
		seen[obsv] = true
		if n == 0 {
			first = mapped
		} else if mapped != first {
			allEqual = false
		}
		n++
		byIP[obsv.Addr()] = append(byIP[obsv.Addr()], mapped)
	}
	if n < 2 {
		return registry.NATUnknown
	}
	if allEqual {
		if len(byIP) >= 2 {
			return registry.NATEndpointIndependent
		}
		return registry.NATUnknown
	}
	if n >= 4 && oneOutlier(byIP, n) {
		return registry.NATEndpointIndependent
	}
	multiPort := false
	for _, ms := range byIP {
		if len(ms) < 2 {
			continue
		}
		multiPort = true
		for _, m := range ms[1:] {
			if m != ms[0] {
				return registry.NATAddressAndPortDependent
			}
		}
	}
	// Mapped differs somewhere, and not within any one IP: across IPs.
	if multiPort {
		return registry.NATAddressDependent
	}
	return registry.NATUnknown
}

// oneOutlier reports whether all but one of the n observations (Mapped by
// observer IP) agree, and the agreeing ones come from at least 2 IPs.
func oneOutlier(byIP map[netip.Addr][]netip.AddrPort, n int) bool {
	count := map[netip.AddrPort]int{}
	ips := map[netip.AddrPort]map[netip.Addr]bool{}
	for ip, ms := range byIP {
		for _, m := range ms {
			count[m]++
			if ips[m] == nil {
				ips[m] = map[netip.Addr]bool{}
			}
			ips[m][ip] = true
		}
	}
	for m, c := range count {
		if c == n-1 && len(ips[m]) >= 2 {
			return true
		}
	}
	return false
}

// Public reports whether the node is not behind a NAT, or behind a 1:1
// one: at least one observation, and every Mapped equal to local, the
// node's bound address. Mapping and filtering are then
// endpoint-independent (if no firewall filters). local must be specific:
// with an unspecified (wildcard) address Public cannot tell and reports
// false; pass the address of the interface the packets left by.
func Public(local netip.AddrPort, obs []Observation) bool {
	l, ok := cleanAddr(local)
	if !ok || len(obs) == 0 {
		return false
	}
	for _, o := range obs {
		m, ok := cleanAddr(o.Mapped)
		if !ok || m != l {
			return false
		}
	}
	return true
}

// FilterProbe is the outcome of one unsolicited probe an observer was
// asked to send to our reflexive address: from an IP we never sent to
// (OtherIP true), or from another port of an IP we did send to (OtherIP
// false). Received means it arrived.
type FilterProbe struct {
	OtherIP  bool
	Received bool
}

// ClassifyFiltering gives the RFC 4787 section 5 filtering behaviour
// shown by probes:
//
//   - an OtherIP probe received: NATEndpointIndependent;
//   - else, an OtherIP probe sent (and lost) and an OtherPort probe
//     received: NATAddressDependent;
//   - else, at least one probe of each kind sent and none received:
//     NATAddressAndPortDependent;
//   - otherwise NATUnknown (for instance only OtherPort probes, received:
//     endpoint-independent and address-dependent filtering look alike).
//
// A lost probe reads as filtering, so the result errs towards stricter
// filtering under loss. Probes should be repeated: set Received if any of
// N tries arrived.
func ClassifyFiltering(probes []FilterProbe) registry.NATClass {
	var ipSent, ipRecv, portSent, portRecv bool
	for _, p := range probes {
		if p.OtherIP {
			ipSent = true
			ipRecv = ipRecv || p.Received
		} else {
			portSent = true
			portRecv = portRecv || p.Received
		}
	}
	switch {
	case ipRecv:
		return registry.NATEndpointIndependent
	case ipSent && portRecv:
		return registry.NATAddressDependent
	case ipSent && portSent && !portRecv:
		return registry.NATAddressAndPortDependent
	}
	return registry.NATUnknown
}
