// Package membership is HyParView as a sans-IO state machine: the overlay
// membership layer of DESIGN.md, under broadcast/ (Plumtree).
//
// It follows J. Leitão, J. Pereira, L. Rodrigues, "HyParView: a membership
// protocol for reliable gossip-based broadcast", DSN 2007 (and the longer
// report DI-FCUL TR-07-13). Each node keeps a small symmetric active view
// (ActiveSize, 5), the peers it holds a link to and gossips with, and a
// larger passive view (PassiveSize, 30) of peers held in reserve. The
// active view is kept by reaction (a link failure is replaced from the
// passive view at once); the passive view by a periodic SHUFFLE.
//
// A Machine has no goroutines, sockets, clock or global randomness. Time
// comes in as `now`, randomness from the *rand.Rand given to New, and the
// machine answers every input with a slice of Outputs. The real node's
// driver and the discrete-event simulator run the same Machine. Where
// output order could depend on a map it does not: views are slices, and
// maps are only looked up (or scanned for a yes/no answer). The same
// inputs and seed give the same outputs.
//
// # Protocol
//
//	JOIN          n → contact c. c adds n to its active view (dropping a
//	              random member with DISCONNECT if full), answers
//	              NEIGHBOR_ACCEPT, and sends FORWARD_JOIN(n, ARWL) to each
//	              other active peer. n adds c when the accept arrives.
//	FORWARD_JOIN  p, from s: if TTL = 0 or p's active view has one member,
//	              the walk ends: p sends n a high-priority NEIGHBOR. Else,
//	              at TTL = PRWL, n goes into p's passive view, and the walk
//	              goes on with TTL-1 to a random active peer other than s.
//	NEIGHBOR      high priority (the asker's active view is empty, or a
//	              walk ended) is always accepted, dropping a random member
//	              if full; low priority only into a free slot. The answer
//	              is NEIGHBOR_ACCEPT or NEIGHBOR_REJECT. The asker adds the
//	              peer to its active view only when the accept arrives.
//	DISCONNECT    the sender dropped the receiver from its active view; the
//	              receiver drops the sender and keeps it as passive.
//	SHUFFLE       every ShuffleInterval, to a random active peer: origin,
//	              ShuffleActive active and ShufflePassive passive peers, as
//	              a walk of ShuffleTTL hops. Where it ends, the node sends
//	              the origin a SHUFFLE_REPLY of as many passive peers and
//	              both sides add what they got to their passive views,
//	              evicting first the peers they sent (never one they just
//	              added).
//
// A failed active peer (HandleDisconnected, or a failed Connect) is
// removed, and repair asks random passive peers with NEIGHBOR, one per
// free slot. A peer whose Connect fails or that does not answer in
// NeighborTimeout is removed from the passive view; one that rejects, or
// whose link closes mid-request, is not asked again before the next
// shuffle tick.
//
// # Our side of a request
//
//	          start                HandleConnected        NEIGHBOR_ACCEPT
//	(none) ─────────► connecting ─────────────────► sent ────────────────► active
//	                    │ Connect                    │ NEIGHBOR / JOIN        (NeighborUp)
//	                    │                            │
//	                    │ ConnectFailed, timeout     │ REJECT, Disconnected: Disconnect,
//	                    ▼                            │   not again until the next tick
//	             passive peer dropped ◄──────────────┘ timeout: Disconnect, passive peer
//	             and another one asked                   dropped, another one asked
//
// A JOIN is the same with the contact, except that it is never dropped:
// it is sent again after JoinTimeout, then 2, 4 and at most MaxJoinBackoff
// JoinTimeouts, until the contact accepts, even if walks have given the
// node other neighbours (they might be outside the overlay too).
//
// # Driver contract
//
// The driver performs the outputs of one call in slice order, and hands
// the machine each peer's events in the order they happened (a message
// that arrived before its link closed comes before HandleDisconnected).
//
//   - Connect{Peer}: ensure a link to Peer, reusing one that is up
//     (inbound or outbound: one link per peer pair). Later, answer with
//     exactly one HandleConnected(Peer.ID) or HandleConnectFailed(Peer.ID).
//     The machine emits Connect before it sends JOIN or NEIGHBOR (it waits
//     for HandleConnected, then emits the Send), before a SHUFFLE_REPLY to
//     an origin that is not linked (likewise), and when it accepts a JOIN
//     or NEIGHBOR, to own the link the request came on (usually answered
//     at once, the link being up).
//   - Send{To, Msg}: deliver Msg, whole, to To. The machine sends only to
//     active peers, over a link it asked for that is up, or in reply over
//     the link a request came on. With no link, the driver may deliver over
//     a short-lived connection to To.Addrs or drop the message: every
//     exchange survives loss by a timeout or by the link's failure.
//   - Disconnect{Peer}: close the link once the Sends before it in the same
//     slice are out (a graceful close: a DISCONNECT message must arrive
//     before its link's end). Do not report HandleDisconnected for it.
//     The other end learns from its own transport: HandleDisconnected.
//     A Connect after a Disconnect opens a new link.
//   - SetTimer{At, Timer}: call HandleTimer(At, Timer) at At. Never
//     cancelled; stale timers are ignored by the machine.
//   - NeighborUp / NeighborDown: pass to the layer above (Plumtree). Sends
//     to a new neighbour emitted after NeighborUp follow the accept.
//   - HandleDisconnected(peer): report every link to peer that ends other
//     than by our own Disconnect: failure, idle timeout, or the peer
//     closing it. The transport is HyParView's failure detector. Report
//     the end of the current link only: a driver that has replaced a link
//     (closed by us, then opened again) does not report the old one's end
//     after the new one is up.
//   - HandleConnected / HandleConnectFailed may name a peer the machine no
//     longer wants; it closes such a link itself.
//
// The machine closes what it opens: a link for a rejected or failed
// request, or for a SHUFFLE_REPLY, is closed by the side that opened it.
// An active link is closed by the side that drops the other (DISCONNECT,
// then Disconnect); the receiver of DISCONNECT leaves the link alone, so
// it cannot close a new link the sender has opened meanwhile. Closing a
// link is how a node tells a peer it is not a neighbour, so an active
// view that is one-sided for a moment (a lost message, a race) becomes
// symmetric again.
//
// One race remains, and costs only a retry: with one link per peer pair,
// a node that closes its one-shot SHUFFLE_REPLY link may close the link
// over which the same peer is sending it a NEIGHBOR. The asker sees
// HandleDisconnected and asks another peer; a late reply to it is sent
// without a link (and an accept nobody waits for is undone with
// DISCONNECT).
//
// # Wire format
//
// One message per Send.Msg, at most MaxMessageSize (4 KiB) bytes; the
// first byte is the type.
//
//	JOIN             +------+------------+
//	                 | 0x01 | peer       |   the joiner
//	                 +------+------------+
//	FORWARD_JOIN     +------+-----+------------+
//	                 | 0x02 | TTL | peer       |   the new node; TTL ≤ MaxTTL
//	                 +------+-----+------------+
//	NEIGHBOR         +------+----------+------------+
//	                 | 0x03 | priority | peer       |   the requester; 0 low, 1 high
//	                 +------+----------+------------+
//	NEIGHBOR_ACCEPT  | 0x04 |
//	NEIGHBOR_REJECT  | 0x05 |
//	DISCONNECT       | 0x06 |
//	SHUFFLE          +------+-----+------------+---+-----------------+
//	                 | 0x07 | TTL | origin     | n | n peers         |   n ≤ MaxShufflePeers
//	                 +------+-----+------------+---+-----------------+
//	SHUFFLE_REPLY    +------+---+-----------------+
//	                 | 0x08 | n | n peers         |
//	                 +------+---+-----------------+
//
//	peer             +-------------------+-------+---+--------------+
//	                 | node ID (32)      | flags | k | k addresses  |   k ≤ MaxAddrs (4)
//	                 +-------------------+-------+---+--------------+
//	                 flags: bit 0 NoInbound; other bits zero
//	address          +--------+--------------------+-------------+
//	                 | 4 or 6 | IPv4 (4) / IPv6 (16) | port (2, BE) |
//	                 +--------+--------------------+-------------+
//
// Every field is checked: unknown types, flags, families and priorities,
// TTLs above MaxTTL, zero IDs, counts above their limits, truncation and
// trailing bytes are all errors, so each message has one encoding. The
// largest message, a SHUFFLE of MaxShufflePeers peers with four IPv6
// addresses each, is 3,633 bytes.
//
// # Deviations from the paper
//
//  1. A requester adds a peer to its active view only when the peer's
//     NEIGHBOR_ACCEPT arrives (DESIGN.md), and a refusal is an explicit
//     NEIGHBOR_REJECT. The paper adds the peer when the TCP connection is
//     up.
//  2. A JOIN is answered with NEIGHBOR_ACCEPT; the joiner adds its contact
//     only then, and sends JOIN again, with backoff, until the contact
//     accepts. The paper's JOIN has no answer.
//  3. Where a FORWARD_JOIN walk ends, the paper's node adds the new node at
//     once; ours sends it a high-priority NEIGHBOR and adds it on accept.
//     High priority keeps the paper's "even if a member must be dropped" on
//     both sides.
//  4. Repair asks several passive peers at once, one per free slot of the
//     active view (the paper asks one at a time); at most one of these is
//     high priority. A peer that rejects is not asked again before the next
//     shuffle tick. A request unanswered after NeighborTimeout counts as a
//     failure.
//  5. The active view is also refilled, with low priority, when a neighbour
//     sends DISCONNECT and at every shuffle tick, not only on failure: a node
//     whose neighbours dropped it does not sit below ActiveSize.
//  6. A SHUFFLE carries its origin in its own field, not in the peer list;
//     the answering node leaves the origin out of its reply; a node takes
//     only one SHUFFLE_REPLY per SHUFFLE it sent.
//  7. The shuffle period is jittered, uniform in [I/2, 3I/2).
//  8. Links are explicit (Connect, Disconnect), where the paper leans on
//     TCP: a request travels over a fresh link that is closed if the
//     request fails; the accepter confirms the link it accepted with
//     Connect; an accept nobody asked for is answered with DISCONNECT.
//  9. Repair tries peers that accept inbound links (Peer.NoInbound false)
//     before those that do not.
//  10. A node that has lost both views sends JOIN to its last contact again,
//     at a shuffle tick.
//  11. A shuffle integration never evicts a peer it has just added; a
//     failed peer, as in the paper, is not kept as passive, but a peer
//     whose link merely closed during our request is.
//  12. Two escalations the paper does not have (Config.StarveTicks): a node
//     whose active view stays at most half full for StarveTicks shuffle
//     ticks sends its next NEIGHBOR with high priority; a node whose
//     passive view stays short of full for as long, while its contact is
//     not a neighbour, asks the contact for a sample (a SHUFFLE with TTL
//     zero) and, if it knows none of the peers named, sends one of them a
//     high-priority NEIGHBOR. Both back off to MaxStarveBackoff times
//     StarveTicks. They join back the small islands that fast joins can
//     leave, which the paper's protocol never repairs. A partition into
//     two large components is still not merged: nothing tells a node of
//     one that the other exists.
//  13. Resources are bounded: MaxPendingRequests (a walk that ends here
//     beyond it leaves the new node passive), MaxOneShotLinks,
//     MaxQueuedPerLink, and the size limits of the wire format.
package membership
