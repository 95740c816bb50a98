// Package relay is the bookkeeping of the relay role: which circuits a
// node carries, under what limits, and how packets on them are counted
// and rate limited. It is sans-IO: the node reads setup streams and
// datagrams, calls circuit.Peel and the wire codecs, and asks a Table
// what to do; time comes in as now.
//
// # What a relay does
//
// A previous hop opens a stream to the service wire.CircuitService and
// sends CREATE with a circuit ID of its choosing and a setup onion. The
// relay peels the onion (circuit.Peel). If it names a next hop, the
// node calls Table.Open, which admits the circuit or names the reason
// to refuse it, and allocates the circuit's ID on the link to the next
// hop; the node sends the peeled onion on in a CREATE of its own and
// passes the next hop's CREATED or REFUSED back. From then on datagrams
// flow: a forward one arrives from Prev with PrevCID, is looked up with
// FromPrev, passes AllowForward, gets Keys.Forward and leaves to Next
// relabelled with NextCID; a backward one the reverse, with FromNext,
// AllowBackward and Keys.Backward.
//
// Circuits that end here (OpenTerminal) or start here (OpenInitiator)
// are kept in the same Table, because they share its limits and, above
// all, the circuit IDs of each link: a datagram from a peer is found by
// (peer, ID) whatever our role on the circuit, so the IDs we choose
// toward a peer must not collide across roles. Ends are not rate
// limited and not subject to the allow-list.
//
// Circuit IDs toward a next hop are random (nonzero, unique per next
// hop), so the next hop learns nothing from them about how many
// circuits we carry.
//
// # Limits
//
// Resources bounds the table; the defaults and why:
//
//   - MaxCircuits 4096: at the estimated 1856 bytes each (below) about
//     7.3 MiB, small for any machine that relays; the number itself is
//     a guess at what one relay should carry.
//   - MaxCircuitsPerPeer 64: one previous hop, which may be the
//     initiator itself or a relay carrying many initiators, cannot take
//     more than 1/64 of the table; a guess.
//   - BytesPerSecond 4 MiB/s per circuit and direction: enough for
//     interactive use and modest transfers through someone else's
//     node, and 4096 circuits cannot all run at it; a guess.
//   - Burst 256 KiB: about 180 full datagrams, so a QUIC sender's
//     initial window and short bursts pass unshaped; a guess.
//   - IdleTimeout 2 min: four times QUIC's default 30 s idle timeout,
//     so an end-to-end connection that keeps itself alive (the node's
//     send a ping after 15 s) never looks idle, while an abandoned
//     circuit goes within minutes.
//   - MaxMemory 64 MiB: the bound that matters when MaxCircuits is
//     raised; with the defaults it is never reached.
//   - Allow empty: relay for anyone; a private relay lists its users.
//   - DrainTimeout 30 s: long enough for ends to notice and build new
//     circuits elsewhere, short enough for a restart; a guess.
//
// Memory is an estimate, charged per circuit and refused with
// ReasonMemory when the sum would pass MaxMemory: for a relayed circuit
// its struct, its entries in the table's three maps at their worst
// load, and its RelayKeys, 2880 bytes; for an end its struct, two map
// entries and the end's crypto state (up to a five-hop Initiator),
// 10816 bytes. BenchmarkTableMemoryPerCircuit measures about 2660 bytes
// per idle relayed circuit including keys (2112 of them keys: four
// AES-256 key schedules) at 10,000 circuits, and TestCostCoversMeasured checks that the estimate covers
// the measurements. The table's share of a forwarded datagram (lookup
// and rate limit) is about 70 ns (BenchmarkLookupAndAllow).
//
// # Refusals
//
// Open checks, in this order, and answers with the first that applies
// (wire reason constants): ReasonDraining, ReasonNotAllowed,
// ReasonMemory, ReasonCapacity, ReasonPeerLimit, then
// ReasonDuplicateID when the previous hop reuses an ID it has open. A
// call no peeled onion could produce (zero IDs, nil keys) gets
// ReasonBadOnion. Stats counts refusals by reason.
//
// Circuits leave the table by Close (the node's decision, or a DESTROY
// received), by Sweep (ReasonIdle after IdleTimeout without a packet
// either way; ReasonDraining after the drain deadline) and by PeerGone
// (ReasonNoRoute when the link to a previous or next hop is lost). The
// node sends DESTROY with the circuit's Reason to the hops still
// reachable.
//
// # Draining
//
// Drain stops the table taking circuits of any kind (ReasonDraining)
// while those it holds keep flowing for DrainTimeout, so their ends can
// move elsewhere; after that Sweep returns them all for teardown.
//
// The node (mycelium.Node) drives a table this way: Sweep every 5 s,
// PeerGone when its last direct link to a peer closes, Close when a hop's
// setup stream ends, and Drain from Node.Drain (which `mycelium relay`
// and `mycelium node` call on SIGTERM). Every circuit the table removes
// is torn down with a DESTROY carrying its reason, hop by hop, and its
// ends close the connection inside it with "circuit closed: REASON".
// Until the connection can move to another path (the migration work),
// "move elsewhere" means the ends redial; the draining relay publishes
// itself as full, so new paths leave it out.
//
// # Concurrency
//
// A Table is safe for concurrent use. FromPrev and FromNext take a read
// lock; AllowForward and AllowBackward take only their circuit's lock
// for that direction, so the two directions of one circuit and
// different circuits do not contend. Open, Close, Sweep, PeerGone and
// Drain take the write lock.
package relay
