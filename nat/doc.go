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
//
// # Hole punching
//
// CanPunch decides from two published Behaviors whether a node should try
// a direct path to a peer, and how. The method is RFC 5128's UDP hole
// punching (section 3.3), coordinated over a circuit: each side sends
// from its one socket to the other's published reflexive address, and
// then to whatever address the other's packets arrive from (the path
// layer learns endpoints from authenticated packets). The published
// address is the mapping the NAT gave toward the observers; under
// endpoint-dependent mapping (ADM or APDM, "EDM") packets to the peer
// leave from another port, which the peer cannot know. Rows are us (a),
// columns the peer (b), in the row order (0 public … 9 apdm-apdf);
// D Direct, P Punch, R Relay:
//
//	a \ b     0  1  2  3  4  5  6  7  8  9
//	public    D  D  P  P  D  P  P  D  P  P
//	eim-eif   D  D  P  P  D  P  P  D  P  P
//	eim-adf   D  D  P  P  D  P  P  D  P  P
//	eim-apdf  D  D  P  P  D  R  R  D  R  R
//	adm-eif   D  D  P  P  D  P  P  D  P  P
//	adm-adf   D  D  P  R  D  R  R  D  R  R
//	adm-apdf  D  D  P  R  D  R  R  D  R  R
//	apdm-eif  D  D  P  P  D  P  P  D  P  P
//	apdm-adf  D  D  P  R  D  R  R  D  R  R
//	apdm-apdf D  D  P  R  D  R  R  D  R  R
//
// Why:
//
//   - b public, or b's filtering endpoint-independent (any mapping): b's
//     published address admits anyone, so a just dials: Direct. b answers
//     through the entry a's packet made, from that address, which a's NAT
//     admits because a sent exactly there. Seen from b, the pair needs a
//     to dial: Punch by connection reversal (RFC 5128 section 3.2).
//   - EIM on both sides: each sends from its published mapping to the
//     other's, opening the very permission the other's packet needs:
//     Punch, whatever the filtering.
//   - EDM on one side only: its packet leaves from a new port P' of its
//     IP, and its published mapping admits nobody but the observers
//     (filtering belongs to the mapping, RFC 4787 section 5), so the EIM
//     side's packets are dropped. The EIM side admits the packet from P'
//     only with address-dependent filtering (it has sent to that IP), and
//     answers P' from the address P' was opened toward: Punch. With
//     address-and-port-dependent filtering: Relay.
//   - EDM on both sides, neither filtering endpoint-independent: each
//     sends from a port the other cannot know to a mapping that admits
//     only observers: Relay.
//
// So an EDM side's filtering matters only when endpoint-independent, and
// ADM and APDM rows are alike. Guessing P' (port prediction, RFC 5128
// section 3.4) would turn some R into P; it is out of scope, and
// DESIGN.md says to go to the circuit until such a strategy has measured
// success.
//
// Assumptions: the two NATs are different boxes (no hairpinning), each
// with one public IP; new mappings get ports nobody can guess (port
// preservation does not matter: the published port is already the
// mapping's); mappings are kept alive; in each round every packet leaves
// its NAT before the peer's arrives there (the node's punch schedule
// makes that so with openers, small-TTL packets that open each NAT before
// either side dials: see the root package's punch.go); and an admitted
// inbound packet makes a session whose answers leave by the mapping it
// came in on, unless the host already has a mapping toward that
// destination, as conntrack does. That last one carries the cells with
// an EDM+EIF side; were answers to take a fresh endpoint-dependent
// mapping too, those would differ. The network lab models it as
// netlab.NATConfig.InboundSessions, which its punch matrix turns on.
//
// Where CanPunch(a, b) is Direct, a dials and b only answers: a
// simultaneous open can fail there (a eim-apdf, b adm-eif: b's own
// punch makes an address-dependent mapping toward a's IP, its answers
// take it, and a's filter drops them). So where CanPunch(a, b) is Punch
// and CanPunch(b, a) is Direct, b sends nothing and waits for a's dial
// (connection reversal); the node does so.
//
// With a class unknown, CanPunch answers what every possible value
// agrees on, else Unknown (try once, cheaply). punch_test.go checks
// every cell against this table and against a packet-level model of two
// RFC 4787 NATs built apart from it.
package nat
