// Package nat is the node's view of NATs: a STUN codec and server, a
// prober that discovers the node's reflexive addresses, and pure
// functions that classify NAT behaviour in RFC 4787 terms (DESIGN.md,
// "Overlay, registry, NAT").
//
// Everything here is sans-IO: no goroutines, sockets, clock or global
// randomness. Time comes in as `now`, randomness (transaction IDs) from a
// *rand.Rand, and the Prober returns Outputs (Send, SetTimer, Done) that
// the driver performs in order. Output order never depends on map order.
//
// # STUN on the one socket
//
// A node has one UDP socket, shared by QUIC, STUN and hole punching, so
// that the mapping STUN measures is the one QUIC uses. STUN messages
// (RFC 8489) have the top two bits of their first byte clear, while every
// QUIC packet has the 0x40 fixed bit set; IsSTUN checks that, the magic
// cookie and the length field, so the driver can split the two cheaply
// (quic-go's Transport.ReadNonQUICPacket yields the non-QUIC ones). Only
// the Binding method is spoken: requests with no attributes, success
// responses with XOR-MAPPED-ADDRESS (MAPPED-ADDRESS is accepted from old
// servers). No authentication, no CHANGE-REQUEST (RFC 5780), no TCP.
// github.com/pion/stun/v3 encodes messages and decodes address
// attributes and FINGERPRINT; this package first bounds and walks the
// message itself (MaxSTUNSize, MaxAttributes, exact address lengths).
//
// # The server
//
// Every public node answers Binding requests (Server). The answer goes
// to the request's source address, which an attacker can spoof, so the
// server is built not to be a useful reflector:
//
//   - Amplification: the answer carries only XOR-MAPPED-ADDRESS (32
//     bytes for IPv4, 44 for IPv6) and is never longer than the request
//     plus MaxAmplification (32) bytes; a request too short for that is
//     not answered. With the 20-byte minimum request, the worst ratio is
//     44/20.
//   - Rate: each source (an IPv4 address, or an IPv6 /64) has a token
//     bucket (ServerConfig.RatePerSource, Burst). At most MaxSources
//     buckets are held; a full table drops its least recently used bucket
//     only if that one has refilled (which loses nothing: a full bucket
//     and no bucket behave the same), and otherwise refuses new sources.
//     Under a flood of spoofed sources, then, the server answers less
//     rather than forgetting who it just answered.
//   - Anything else (responses, indications, other methods, bad framing,
//     unknown comprehension-required attributes) gets no answer, not even
//     an error response, and is counted in ServerStats.
//
// # Classification
//
// Mapping (RFC 4787 section 4.1) is read from the reflexive addresses
// several observers report for the same local socket (ClassifyMapping):
// the same address from observers at different IPs means
// endpoint-independent mapping; different addresses for two ports of one
// observer IP mean address-and-port-dependent; equal per IP but
// different across IPs means address-dependent. Telling the last two
// apart needs an observer IP with two ports; without one the answer is
// NATUnknown. Public tells whether there is a NAT at all (every reflexive
// address equals the bound address).
//
// Filtering (section 5) is read from unsolicited probes observers send to
// our reflexive address (ClassifyFiltering): from an IP we never sent to,
// and from an unused port of an IP we did send to. Arranging those probes
// is the caller's business (it needs the observer's cooperation over the
// overlay). A lost probe reads as filtering, so probes should be
// repeated.
//
// Limits: a round sees the NAT as it is during that round; NATs that
// change their behaviour under load (port exhaustion), that have several
// public IPs, or that race as described in DESIGN.md (the conntrack race
// in simultaneous open) may read differently from round to round. Results
// assume the observers are themselves not behind the same NAT and answer
// from the address asked; responses from any other address are ignored.
//
// # Prober
//
// A Prober round sends one Binding request per observer, resends to the
// silent ones every ProberConfig.Timeout (same transaction ID) up to Tries
// in all, then gives up on them:
//
//	Start ──Send×n, SetTimer──▶ waiting ──all answered──▶ Done
//	                            │   ▲
//	              timer, try<Tries  │ resend to silent, SetTimer
//	                            └───┘
//	                            timer, try=Tries ──▶ give up silent ──▶ Done
//
// A new Start abandons the round under way.
package nat
