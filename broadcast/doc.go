// Package broadcast is Plumtree, the epidemic broadcast tree of Leitão,
// Pereira and Rodrigues, "Epidemic Broadcast Trees", SRDS 2007 (also
// DI-FCUL TR-07-14), as a sans-IO state machine.
//
// A Machine spreads messages over the overlay that the membership layer
// (HyParView) maintains. Each neighbour is an eager or a lazy push peer.
// Payloads go eagerly, at once, to eager peers; lazy peers get only the
// message ID, batched in IHAVE messages. The eager links form a spanning
// tree: a second copy of a message prunes the link it came by (PRUNE, the
// link turns lazy on both ends), and a message announced by IHAVE but not
// received within a timeout is fetched from its announcer with GRAFT,
// which turns that link eager again, repairing the tree.
//
// # Driving a Machine
//
// The Machine does no I/O, keeps no clock, starts no goroutine and reads
// no global randomness. A driver (the node, or the simulator) owns it and
// calls, from one goroutine, with non-decreasing times:
//
//   - HandleNeighborUp / HandleNeighborDown when the membership layer's
//     active view gains or loses a peer, on each end of the link;
//   - HandleMessage for every broadcast-protocol message from a neighbour;
//   - HandleTimer with the Timer of each SetTimer output, at or after its
//     At (late is fine; early is not; a timer may be dropped only together
//     with the Machine);
//   - Broadcast to originate a message.
//
// Each returns outputs to carry out in order: Send (best effort; loss is
// repaired by the protocol), SetTimer, and Deliver (hand the payload to
// the topic's subscribers). Outputs whose order could depend on map
// iteration are sorted by node ID, so the same inputs give the same
// outputs, byte for byte.
//
// # Transitions
//
//	Broadcast(topic, payload)     Deliver(hops 0); GOSSIP(round 1) to eager;
//	                              queue IHAVE(id, 1) for lazy
//	GOSSIP(id, r) from p, new     Deliver(hops r); p -> eager; GOSSIP(r+1) to
//	                              eager\{p}; queue IHAVE(id, r+1) for lazy\{p};
//	                              forget id's announcements (stops its timer);
//	                              optimise against them (below)
//	GOSSIP(id) from p, seen       duplicate: p -> lazy; PRUNE to p
//	IHAVE(id, r) from p, unknown  remember (p, r); first one: timer(timeout1)
//	IHAVE(id, r) from p, seen     optimise: if hops(id) - r >= threshold and
//	                              the parent is eager: GRAFT(no id) to p,
//	                              p -> eager; PRUNE to parent, parent -> lazy
//	timer(id), still missing      GRAFT(id, r) to the first remaining
//	                              announcer, it -> eager; timer(timeout2);
//	                              no announcer left: give up
//	GRAFT(id?) from p             p -> eager; GOSSIP(id) to p if cached
//	PRUNE from p                  p -> lazy
//	NeighborUp(p)                 p -> eager
//	NeighborDown(p)               p leaves both sets; its announcements and
//	                              queued IHAVEs are dropped
//	flush timer                   queued IHAVEs go out, MaxIHaveBatch IDs each
//
// # Wire format
//
// A message is a type byte and fixed fields; integers are big endian. A
// message never exceeds MaxMessageSize, and a decoder refuses trailing
// bytes, so every message has exactly one encoding.
//
//	GOSSIP (type 1): 48 bytes + topic + payload
//	 0      1       3                  35          43    44          44+T         48+T
//	+------+-------+------------------+-----------+-----+-----------+------------+-------------+
//	| 0x01 | round | origin (32)      | seq (8)   |  T  | topic (T) | length (4) | payload     |
//	+------+-------+------------------+-----------+-----+-----------+------------+-------------+
//	round >= 1: hops at the receiver; origin: a node ID (not zero);
//	T = 1..MaxTopicLen; length <= MaxPayload and equal to the bytes left.
//
//	IHAVE (type 2): 3 + 18*N bytes, N = 1..MaxIHaveBatch
//	+------+--------+------------------------------+----------+---
//	| 0x02 | N (2)  | message ID (16)              | round (2)| ... N times
//	+------+--------+------------------------------+----------+---
//	round >= 1: the receiver's hops if it got the message from the sender.
//
//	GRAFT (type 3): 2 bytes (link only) or 20 bytes (with a message)
//	+------+------+                 +------+------+-----------------+-----------+
//	| 0x03 | 0x00 |                 | 0x03 | 0x01 | message ID (16) | round (2) |
//	+------+------+                 +------+------+-----------------+-----------+
//
//	PRUNE (type 4): 1 byte
//	+------+
//	| 0x04 |
//	+------+
//
// The GOSSIP carries no message ID: receivers compute it (see MessageID),
// so no peer can pass off another payload under an existing ID.
//
// # Topics
//
// Every GOSSIP names a topic (1..MaxTopicLen bytes of printable ASCII).
// All topics share one tree, and every node relays every topic, subscribed
// or not; Deliver hands each message up with its topic and the driver
// routes it. One tree keeps the protocol state independent of the number
// of topics and lets every topic's traffic keep the shared tree warm. The
// cost: a node cannot opt out of relaying a topic, and per-topic trees
// (as iroh-gossip keeps, one swarm per topic) would need per-topic
// membership. mycelium has few topics, all of interest to every node
// (records, relay adverts), so one tree is the better trade.
//
// # Measures
//
// The paper (§4) measures, per broadcast message:
//
//   - RMR, relative message redundancy: m/(n−1) − 1, where m is the
//     number of payload messages (GOSSIPs) sent for that message and n the
//     number of nodes that deliver it. Control messages (IHAVE, GRAFT,
//     PRUNE) are not counted. 0 means each node got the payload exactly
//     once, along a tree; flooding gives about the mean degree minus one.
//   - LDH, last delivery hop: the hop count of the last delivery, the
//     largest Deliver.Hops over the receivers; the depth of the tree the
//     message took.
//
// Stats().GossipOut counts every payload send, and every Send's Msg parses
// with ParseMessage (a Gossip's ID method names its message), so a driver
// or simulator can attribute m to messages; Deliver.Hops gives LDH.
//
// # Deviations from the paper
//
//   - Message IDs are a truncated SHA-256 of origin, sequence number,
//     topic and payload, recomputed by each receiver (the paper hashes the
//     message and sender and ships the ID). GOSSIP carries the origin and
//     sequence number instead of the ID.
//   - Rounds count hops at the receiver: the origin sends round 1 and a
//     node at round r forwards r+1 (the paper starts at 0). IHAVE carries
//     the round the receiver would be at. A GRAFT's answer carries the
//     answerer's own round plus one, not the round echoed in the GRAFT.
//   - Bounded state. receivedMsgs is an LRU of at most CacheSize IDs, each
//     kept for CacheTTL (checked on access, swept by a timer); payloads are
//     kept within CacheBytes, oldest dropped first. A GRAFT for a message
//     no longer held goes unanswered, and the requester's timeout2 moves
//     it to the next announcer. A copy arriving after its ID was forgotten
//     is delivered again. Awaited IDs (the "missing" set) are bounded by
//     MaxMissing and announcers per ID by 16.
//   - The optimisation (§3.8) is applied in both orders: when the GOSSIP
//     arrives while closer announcements are pending (the paper's
//     Algorithm 2), and when an IHAVE for an already received message
//     arrives with a round at least OptimizationThreshold below the one
//     it came by. It acts only while the parent link is still eager. Its
//     GRAFT names no message (the paper's GRAFT(null)).
//   - IHAVE batching: announcements for a peer wait up to LazyPushDelay
//     and go out at once when MaxIHaveBatch are queued (the paper leaves
//     the lazy queue's policy open).
//   - Messages from a peer that is not a neighbour: IHAVE, GRAFT and PRUNE
//     are dropped and counted; GOSSIP is delivered and forwarded but
//     changes no set and is never pruned (the paper assumes membership
//     events are seen at both ends at once).
//   - NeighborUp for a known lazy peer makes it eager again.
//   - Catch-up: a new neighbour gets one IHAVE announcing the messages
//     received within CatchUpWindow (at most CatchUpMax). The paper has a
//     message in flight lost when the link it was on is replaced: the old
//     neighbour pushed it over a link now gone, and the new one announces
//     only what it receives later. Found by a 30-node test on the real
//     stack, where a node changed neighbours while a broadcast passed and
//     never delivered it.
package broadcast
