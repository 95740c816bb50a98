package nat

import (
	"fmt"

	"github.com/mycelium-net/mycelium/registry"
)

// Behavior is a node's NAT as the registry publishes it: Public (no NAT,
// the node takes inbound at its published address; Mapping and Filtering
// are then ignored), or the RFC 4787 mapping and filtering classes of the
// NAT in front of it, either of which may be NATUnknown.
type Behavior struct {
	Public             bool
	Mapping, Filtering registry.NATClass
}

// String writes b as the simulator and the doc's table do: "public", or
// "<mapping>-<filtering>" with "eim", "adm", "apdm" and "eif", "adf",
// "apdf", and "unknown" for a class not measured.
func (b Behavior) String() string {
	if b.Public {
		return "public"
	}
	return shortClass(b.Mapping, "m") + "-" + shortClass(b.Filtering, "f")
}

func shortClass(c registry.NATClass, suffix string) string {
	switch c {
	case registry.NATEndpointIndependent:
		return "ei" + suffix
	case registry.NATAddressDependent:
		return "ad" + suffix
	case registry.NATAddressAndPortDependent:
		return "apd" + suffix
	}
	return "unknown"
}

// PunchOutcome is what the theory says a node should do to reach a peer
// directly (see "Hole punching" in the package doc).
type PunchOutcome uint8

const (
	// Relay: no direct path can be opened; use the circuit and do not try.
	Relay PunchOutcome = iota
	// Punch: a coordinated simultaneous open over a circuit should work
	// (if the peer's CanPunch towards us is Direct, by the peer dialing
	// us: connection reversal).
	Punch
	// Direct: no punch needed; send to the peer's published address and
	// its NAT (if any) lets us in.
	Direct
	// Unknown: the answer hangs on a class that is not measured; try
	// once, cheaply, then fall back to the circuit.
	Unknown
)

func (o PunchOutcome) String() string {
	switch o {
	case Relay:
		return "relay"
	case Punch:
		return "punch"
	case Direct:
		return "direct"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("PunchOutcome(%d)", uint8(o))
}

// Works reports whether o means a direct path should open (Direct or
// Punch).
func (o PunchOutcome) Works() bool { return o == Direct || o == Punch }

// CanPunch says how node a (us) can reach node b directly, by RFC 4787
// and RFC 5128 reasoning over their published behaviours (the package
// doc's table). Works() is symmetric: a pair can connect or cannot
// whichever side asks, and Relay and Unknown answers are the same both
// ways. Direct is directional: CanPunch(a, b) == Direct says b admits
// a; CanPunch(b, a) is then Direct or Punch.
//
// With a class NATUnknown the answer is the one every possible value of
// the unknown classes agrees on: Direct if all give Direct, Punch if all
// give Direct or Punch, Relay if all give Relay, and otherwise Unknown.
func CanPunch(a, b Behavior) PunchOutcome {
	as, bs := completions(a), completions(b)
	direct, works, relay := true, true, true
	for _, x := range as {
		for _, y := range bs {
			o := canPunchKnown(x, y)
			direct = direct && o == Direct
			works = works && o.Works()
			relay = relay && o == Relay
		}
	}
	switch {
	case direct:
		return Direct
	case works:
		return Punch
	case relay:
		return Relay
	}
	return Unknown
}

// completions lists the fully known behaviours b may stand for: b itself,
// or one per value of each unknown class (at most 9). An out-of-range
// class counts as unknown.
func completions(b Behavior) []Behavior {
	if b.Public {
		return []Behavior{{Public: true}}
	}
	all := []registry.NATClass{registry.NATEndpointIndependent, registry.NATAddressDependent, registry.NATAddressAndPortDependent}
	ms, fs := all, all
	if known(b.Mapping) {
		ms = []registry.NATClass{b.Mapping}
	}
	if known(b.Filtering) {
		fs = []registry.NATClass{b.Filtering}
	}
	out := make([]Behavior, 0, len(ms)*len(fs))
	for _, m := range ms {
		for _, f := range fs {
			out = append(out, Behavior{Mapping: m, Filtering: f})
		}
	}
	return out
}

func known(c registry.NATClass) bool {
	return c >= registry.NATEndpointIndependent && c <= registry.NATAddressAndPortDependent
}

// canPunchKnown is the table for fully known behaviours.
func canPunchKnown(a, b Behavior) PunchOutcome {
	admits := func(x Behavior) bool { return x.Public || x.Filtering == registry.NATEndpointIndependent }
	eim := func(x Behavior) bool { return x.Mapping == registry.NATEndpointIndependent }
	switch {
	case admits(b):
		// b's published address takes anyone; b answers through the
		// entry our packet created, to the mapping that sent it.
		return Direct
	case admits(a):
		// b dials us (connection reversal).
		return Punch
	case eim(a) && eim(b):
		// Both send from their published mappings, each opening the
		// permission the other's packet needs.
		return Punch
	case eim(a) && !eim(b):
		// b's packet comes from a new port of b's IP: only address-
		// dependent filtering on our published mapping takes it.
		if a.Filtering == registry.NATAddressDependent {
			return Punch
		}
		return Relay
	case !eim(a) && eim(b):
		if b.Filtering == registry.NATAddressDependent {
			return Punch
		}
		return Relay
	}
	// Both endpoint-dependent: each sends from a mapping the other cannot
	// know, to a published mapping that admits nobody new.
	return Relay
}
