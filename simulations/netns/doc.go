// Package netns is the fourth test tier: real Linux NAT in network
// namespaces, driven from Go tests (DESIGN.md, "How we know it works").
//
// New builds a Testbed for one test: an "internet" namespace that switches
// and routes two TEST-NET subnets, public hosts on it, and NAT routers, each
// with one public address and a private LAN of hosts behind it. Every
// namespace, link and process it makes is torn down by t.Cleanup, also when
// the test fails or panics. Every process it starts leads its own process
// group and carries SIGKILL as its parent-death signal, so it dies with the
// test process even when no cleanup runs (the panic of -timeout, a
// SIGKILL). Namespace names carry the test process's PID, so a later New
// reaps what a killed test binary left behind. New skips the test,
// naming the reason, when the machine cannot run it (not root, no `ip netns
// add`, a tool missing).
//
//	internet ns: bridge br0, 203.0.113.1/24 and 198.51.100.1/24, ip_forward=1
//	  ├── public host  203.0.113.10, .11, …            (AddPublicHost)
//	  └── NAT router   wan 198.51.100.10/32, .11, …    (AddNAT)
//	        lan bridge 10.K.0.1/24, ip_forward=1
//	          └── host 10.K.0.2, .3, …                 (Router.AddHost)
//
// A router's public address is a /32 routed through 198.51.100.1, so
// traffic between two routers crosses the internet namespace as a router
// hop, as between two homes on the internet; nothing sits one link from
// a router but its gateway.
//
// Nothing touches the host's own namespace: links are created inside the
// namespaces (`ip -n A link add … peer … netns B`), and no address or route is
// added outside them.
//
// # NAT recipes
//
// Behaviours use RFC 4787 words. Each recipe's rules are in nat.go, quoted in
// full; the cross-check test runs coturn's turnutils_natdiscovery (RFC 5780)
// behind each one against coturn's turnserver in the internet namespace and
// asserts it reports the behaviours below.
//
//	recipe                        mapping                  filtering                rules
//	Masquerade                    endpoint-independent     address+port-dependent   iptables MASQUERADE
//	MasqueradeRandomFully         address+port-dependent   address+port-dependent   iptables MASQUERADE --random-fully
//	AddressDependentFiltering     endpoint-independent     address-dependent        MASQUERADE + nft endpoint map + contacted-address set + DNAT
//	EndpointIndependentFiltering  endpoint-independent     endpoint-independent     MASQUERADE + nft endpoint map + DNAT
//	Router.Forward (any recipe)   —                        endpoint-independent     static iptables DNAT of one port
//
// MASQUERADE gives a new conntrack entry the first free public port of
// these (get_unique_tuple in net/netfilter/nf_nat_core.c): the port of the
// newest mapping the same source address and port already has
// (find_appropriate_src); the source's own port, unless a RebindPort range
// excludes it; a random port, found from a random start upwards (in
// 1024-65535 for source ports from 1024 up), so not the port after the
// source's. A public port is taken only towards the remote address and port
// an entry already uses it for: one public port carries several hosts'
// mappings while their remotes differ. Without a collision a source keeps
// one public port whatever it sends to: endpoint-independent mapping. A
// collision breaks that. Hosts a and b both send from port 5000, a to
// server s1 and b to server s2: both appear as :5000. When b then sends to
// s1, that tuple is a's, so b appears to s1 from a random port (62217 and
// 2128 in two runs) while it still appears to s2 as :5000; b's later
// mappings, to remotes new to it, take the random port, its newest
// (TestMasqueradePortCollision).
//
// The address- and endpoint-independent filtering recipes apply to UDP;
// TCP keeps MASQUERADE's address-and-port-dependent filtering.
//
// EndpointIndependentFiltering learns its inbound DNAT from outbound
// traffic rather than using a static DNAT: it then works for every host on
// the LAN, admits nothing to a port no host has sent from (as RFC 4787
// filtering presumes a mapping), and keeps working after RebindPort, where
// mapped ports no longer equal local ones. A static DNAT (Router.Forward) is
// a port forward: one host, one port, reachable before it sends anything.
//
// RFC 4787's address-dependent mapping has no recipe: Linux NAT allocates
// per conntrack tuple, which gives endpoint-independent mapping (port
// reuse) or address-and-port-dependent mapping (--random-fully), not a
// mapping shared by all ports of one remote address.
//
// # Rebinding
//
// Router.RebindPort moves every mapping to a new external port: it switches
// the SNAT port range between 10000-19999 and 20000-29999 and empties
// conntrack and the recipe's sets. Router.RebindAddr gives the router a new
// public address. Both hold the router's traffic in a drop rule while they
// change, so no packet sees half the change. conntrack -F alone is not a
// dependable rebinding under Masquerade: when the host's next packet goes
// out first it gets the same port back (TestRebind checks this); only when
// the peer's packet arrives first, and its conntrack entry takes the tuple,
// does the host's mapping move (the simultaneous-open race of DESIGN.md).
//
// # Using it
//
// Build the topology from the test goroutine that called New (setup methods
// call t.Fatal). Queries that may run in subtests return errors. NS.Start runs
// a process in a namespace and keeps its output for Proc.WaitFor; NS.Do,
// NS.Listen and NS.ListenPacket create sockets inside a namespace from the test
// process itself, so an in-process node or echo server can sit behind a NAT.
// Unix sockets are shared across namespaces (one filesystem), so a node's
// control API works from the test process. The test of the real binary
// builds cmd/mycelium offline (GOPROXY=off, -mod=readonly, at most 5 min)
// and skips, quoting the build's first line, when it cannot; MYCELIUM_BIN
// names a prebuilt binary to use instead.
//
// Kernel facts this package relies on: sch_netem is absent on the CI kernel
// (no delay here). A UDP conntrack entry, and so a MASQUERADE mapping, lives
// nf_conntrack_udp_timeout (30 s) after its last packet, and a reply alone
// does not change that: after one request and its answer the entry keeps
// 30 s and is not ASSURED. Only a packet, either way, more than 2 s after
// the entry began, once it has seen a reply, makes it ASSURED with
// nf_conntrack_udp_timeout_stream (120 s), which every packet from then on
// renews (nf_conntrack_proto_udp.c; TestUDPConntrackTimeouts).
//
// The package builds on every OS; off Linux, New skips.
package netns
