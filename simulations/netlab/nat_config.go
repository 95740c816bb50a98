package netlab

import (
	"fmt"
	"net/netip"
	"time"
)

// Behavior is one of RFC 4787's three classes of NAT behaviour. The same
// three classes describe mapping (RFC 4787 §4.1: when does an outbound
// datagram reuse an existing mapping?) and filtering (§5: which inbound
// datagrams may use a mapping?).
type Behavior int

// The RFC 4787 behaviours. The zero Behavior is invalid, so a NATConfig
// must say what it wants; DefaultNATConfig says Linux MASQUERADE.
const (
	// EndpointIndependent: as mapping, one public port per internal
	// endpoint whatever the destination (REQ-1 recommends it); as
	// filtering, anyone may send to the mapping.
	EndpointIndependent Behavior = iota + 1
	// AddressDependent: as mapping, one public port per internal endpoint
	// and destination address; as filtering, only addresses the internal
	// endpoint has sent to may send back, from any port.
	AddressDependent
	// AddressAndPortDependent: as mapping, one public port per internal
	// endpoint and destination address and port (a "symmetric" NAT); as
	// filtering, only the exact addresses and ports it has sent to.
	AddressAndPortDependent
)

func (b Behavior) String() string {
	switch b {
	case EndpointIndependent:
		return "endpoint-independent"
	case AddressDependent:
		return "address-dependent"
	case AddressAndPortDependent:
		return "address-and-port-dependent"
	}
	return fmt.Sprintf("Behavior(%d)", int(b))
}

// PortAllocation is how a NAT router picks the public port of a new
// mapping (RFC 4787 §4.2.1).
type PortAllocation int

// The port allocation policies. The zero PortAllocation is invalid.
const (
	// PortPreserving uses the internal port when it is free, else a
	// random one: the first free port from a random place in
	// PortMin..PortMax, as Linux MASQUERADE does by default
	// (nf_nat_l4proto_unique_tuple picks a random offset for source NAT).
	// Linux needs only the whole tuple to be unique, so it also keeps the
	// internal port when the port is taken by a mapping towards other
	// destinations; netlab does not share ports (see NAT), and falls back
	// to a random port then too.
	PortPreserving PortAllocation = iota + 1
	// PortSequential uses the next free port after the last one given,
	// starting at PortMin.
	PortSequential
	// PortRandom draws the port at random (Linux MASQUERADE
	// --random-fully), from a stream of the router's own for each
	// internal endpoint (see Config.Seed).
	PortRandom
)

func (p PortAllocation) String() string {
	switch p {
	case PortPreserving:
		return "preserving"
	case PortSequential:
		return "sequential"
	case PortRandom:
		return "random"
	}
	return fmt.Sprintf("PortAllocation(%d)", int(p))
}

// NATConfig configures a NAT router. Start from DefaultNATConfig, which
// behaves as Linux MASQUERADE, and set Addr; AddNAT calls Validate.
type NATConfig struct {
	// Addr is the router's public address on the network it is added to.
	// Required.
	Addr netip.Addr

	// Mapping is the RFC 4787 mapping behaviour. Default
	// EndpointIndependent (MASQUERADE with port preservation).
	Mapping Behavior
	// Filtering is the RFC 4787 filtering behaviour. Default
	// AddressAndPortDependent (conntrack lets only replies in).
	Filtering Behavior
	// Ports is the port allocation policy. Default PortPreserving
	// (Linux's default).
	Ports PortAllocation
	// PortMin and PortMax bound the public ports a mapping may get
	// (PortPreserving may keep an internal port outside them). Default
	// 1024 and 65535 (above the well-known ports, as Linux MASQUERADE
	// keeps source ports of 1024 and up in that range).
	PortMin, PortMax uint16

	// Timeouts. A mapping keeps, for each remote endpoint its internal
	// endpoint has sent to, a permission with a timer of its own, as Linux
	// keeps one conntrack entry per flow; filtering lets in only what a
	// live permission allows, and the mapping lives as long as one of its
	// permissions does. A refreshing datagram sets a permission's timer
	// to Timeout once the flow is assured, to UnrepliedTimeout before.
	// A flow is assured, as Linux's IPS_ASSURED, when a datagram refreshes
	// it after a reply has been seen and more than 2 s after its first
	// datagram: one request and its reply (a STUN binding) leave the flow
	// unassured, and its permission expires UnrepliedTimeout after.

	// Timeout is how long an assured flow's permission lives after the
	// last datagram that refreshed it. Default 120 s (Linux
	// nf_conntrack_udp_timeout_stream; RFC 4787 REQ-5 asks for at least
	// 2 min).
	Timeout time.Duration
	// UnrepliedTimeout is the same for a flow not yet assured; 0 means
	// Timeout. Default 30 s (Linux nf_conntrack_udp_timeout).
	UnrepliedTimeout time.Duration
	// InboundRefresh makes inbound datagrams refresh their flow's
	// permission too. Outbound datagrams always do (RFC 4787 REQ-6:
	// outbound refresh MUST be true; inbound refresh MAY). Default false,
	// the stricter choice: code that keeps its mappings alive here keeps
	// them alive anywhere. Linux conntrack refreshes on both directions;
	// set true to match it. Either way an inbound datagram marks its flow
	// replied, and one from an endpoint without a permission of its own
	// (let in by EndpointIndependent or AddressDependent filtering) opens
	// or refreshes nothing.
	InboundRefresh bool

	// InboundSessions makes a datagram let in by EndpointIndependent or
	// AddressDependent filtering, from an endpoint the host has no
	// mapping toward, open a session: the host's answers to that
	// endpoint leave by the mapping the datagram came in on, and the
	// endpoint gets a permission there. It matters only under
	// endpoint-dependent mapping, where the answers would otherwise take
	// a new mapping. This is what a Linux router does when its DNAT lets
	// the datagram in (the conntrack entry carries both directions), and
	// what the hole-punching theory (nat.CanPunch) assumes. Default false:
	// RFC 4787 leaves it open, and the stricter model shows code that
	// relies on it.
	InboundSessions bool

	// Hairpinning lets a host behind the router reach another one behind
	// it through the router's public address; the datagram arrives with
	// the sender's public mapping as its source and passes the router's
	// filtering like any inbound datagram (RFC 4787 §6, REQ-9). Default
	// false: Linux MASQUERADE does not hairpin without extra rules.
	Hairpinning bool
}

// DefaultNATConfig returns a NATConfig that behaves as Linux MASQUERADE
// (but for InboundRefresh), with every default but Addr filled in.
func DefaultNATConfig() NATConfig {
	return NATConfig{
		Mapping:          EndpointIndependent,
		Filtering:        AddressAndPortDependent,
		Ports:            PortPreserving,
		PortMin:          1024,
		PortMax:          65535,
		Timeout:          120 * time.Second,
		UnrepliedTimeout: 30 * time.Second,
	}
}

// Validate reports the first problem with c.
func (c *NATConfig) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: NAT: "+format, append([]any{ErrBadConfig}, a...)...)
	}
	switch {
	case !c.Addr.IsValid():
		return bad("Addr is required")
	case c.Mapping < EndpointIndependent || c.Mapping > AddressAndPortDependent:
		return bad("Mapping %v is not an RFC 4787 behaviour", c.Mapping)
	case c.Filtering < EndpointIndependent || c.Filtering > AddressAndPortDependent:
		return bad("Filtering %v is not an RFC 4787 behaviour", c.Filtering)
	case c.Ports < PortPreserving || c.Ports > PortRandom:
		return bad("Ports %v is not a port allocation policy", c.Ports)
	case c.PortMin == 0 || c.PortMin > c.PortMax:
		return bad("PortMin (%d) must be positive and at most PortMax (%d)", c.PortMin, c.PortMax)
	case c.Timeout <= 0:
		return bad("Timeout must be positive, got %v", c.Timeout)
	case c.UnrepliedTimeout < 0:
		return bad("UnrepliedTimeout must not be negative, got %v", c.UnrepliedTimeout)
	}
	return nil
}
