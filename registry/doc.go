// Package registry is the overlay's directory, as a sans-IO state
// machine: one signed record per node, holding its addresses (local and
// reflexive), its RFC 4787 NAT mapping and filtering classes, its relay
// capacity and load, its home relays, its X25519 onion key, its services
// and its overlay neighbours (DESIGN.md, "Overlay, registry, NAT").
//
// Each node signs its own record with its Ed25519 node key. Records
// spread by Plumtree (broadcast/): the machine emits Publish, the driver
// broadcasts it on the registry topic and hands records that arrive to
// HandleBroadcast. Gossip misses nodes that were away, so each new
// neighbour pair runs anti-entropy (DIGEST, RECORDS below). Records live
// for their Lifetime and are refreshed by their node (Config.Lifetime,
// Config.RefreshInterval); a node that stops refreshing disappears.
//
// A Machine has no goroutines, sockets, clock or global randomness: time
// comes in as `now`, randomness (refresh jitter) from the *rand.Rand
// given to New, and each input returns a slice of Outputs. Where output
// order could depend on a map it does not: records are visited in ID
// order. The same inputs and seed give the same outputs.
//
// # Merge
//
// Per node ID the highest Seq wins. A record with the Seq held is a
// duplicate if its bytes are the same, else a conflict, settled by
// keeping the record with the lexicographically larger signature, so
// every node keeps the same one. A lower Seq is stale (ErrStale). A
// record must verify (ErrForged), be live (ErrExpired) and not be issued
// more than MaxClockSkew ahead (ErrFarFuture). Every dropped record is
// counted in Stats, by reason; none is returned as an error.
//
// A tombstone (Leaving) replaces a node's record and hides the node from
// Lookup, Services, Relays and Records. An entry is remembered (as a
// sequence floor, not shown) until the later of its own expiry and that
// of every record it replaced, so neither a tombstone's short lifetime
// nor a shortened Lifetime lets an older record come back while it could
// still be live.
//
// Our own record: SetLocal signs with Seq = max(previous+1, now in Unix
// milliseconds), so a restarted node with no saved state outranks its
// old record. A record about our ID that this Machine did not sign, with
// a Seq at least ours, is not stored: our Seq is bumped above it and our
// record (or tombstone) signed again and published.
//
// Capacity (Config.MaxRecords): a record about a node not held, arriving
// when the store is full, evicts the held record that expires soonest
// (ties: lowest ID), never our own; if the newcomer expires no later,
// the newcomer is dropped instead. Both count as Evicted. Expired records
// not yet forgotten are the first to go. A flood of long-lived records
// from many valid keys can still push honest records out: the bound
// protects memory, not completeness.
//
// # Anti-entropy
//
// On HandleNeighborUp the machine sends the new neighbour its digest:
// (ID, Seq) for every record held, tombstones and remembered entries
// included, sorted by ID, in DIGEST messages of at most Config.DigestChunk
// entries. Chunk i covers [From_i, To_i]; the first starts at the zero
// ID, each next one just after the previous To, the last ends at the
// highest ID, so together they cover the ID space and each can be
// answered on its own. A node receiving a DIGEST pushes, in RECORDS
// messages, every live record it holds in the range that the digest
// lacks or lists with a lower Seq. Both neighbours do this, so both end
// up with the union, newest Seq per node; no request message is needed.
// Records in RECORDS go through the checks of broadcasts, after a token
// bucket per sender (Config.MaxRecordsPerPeerPerSecond, burst ten
// seconds' worth) that drops the excess unread (RateLimited). What a
// peer's DIGESTs make us push is bounded by a second bucket per peer at
// the same rate (PushLimited): a DIGEST of a few bytes can ask for every
// record we hold.
//
// # Record wire format
//
// All integers big-endian. A record is at most MaxRecordSize (4,096)
// bytes; the largest Sign can produce is 3,957.
//
//	+---------+-------+-------------+---------+----------------+----------------+
//	| version | flags | node ID (32)| seq (8) | issued (8)     | lifetime (4)   |
//	|   (1)   |  (1)  |             |         | Unix seconds   | seconds, 1..   |
//	+---------+-------+-------------+---------+----------------+----------------+
//	| mapping (1) | filtering (1) | relay capacity (4) | relay load (4) | onion key (32) |
//	+-------------+---------------+--------------------+----------------+----------------+
//	| n | n listen addresses    |  n ≤ MaxAddrs (8)
//	| n | n reflexive addresses |  n ≤ MaxAddrs (8)
//	| n | n home relay IDs (32) |  n ≤ MaxHomeRelays (4)
//	| n | n services            |  n ≤ MaxServices (16), sorted by name, unique
//	| n | n neighbour IDs (32)  |  n ≤ MaxNeighbors (8)
//	+---+-----------------------+
//	| Ed25519 signature (64) over "mycelium registry record v1\x00" ‖ everything above |
//	+-----------------------------------------------------------------------------------+
//
//	version   1
//	flags     bit 0 Leaving, bit 1 Inbound, bit 2 Relay; other bits zero
//	mapping,  NATClass, 0..3
//	filtering
//	address   | family (4 or 6) | IPv4 (4) / IPv6 (16) | port (2) |
//	service   | name length (1) | name (1..64) | meta length (1) | meta (0..128) |
//
// Parse refuses every encoding Sign would not produce: unknown version,
// flags, families or NAT classes, counts over their bounds, zero or
// small-order IDs, a repeated home relay or neighbour, invalid or
// unsorted service names, a lifetime outside 1 s..MaxLifetime, a
// tombstone with any field after Leaving set, truncation and trailing
// bytes. So each record has one encoding, and equal records are equal
// bytes.
//
// # Anti-entropy wire format
//
// One message per Send.Msg, at most MaxMessageSize (64 KiB less one byte); the first
// byte is the type.
//
//	DIGEST   +------+-----------+---------+-------+---------------------+
//	         | 0x01 | From (32) | To (32) | n (2) | n × (ID (32), seq (8)) |
//	         +------+-----------+---------+-------+---------------------+
//	         From ≤ To; n ≤ MaxDigestEntries (1,024); entry IDs non-zero,
//	         strictly increasing, inside [From, To]. Full: 41,027 bytes.
//	RECORDS  +------+-------+------------------------------------+
//	         | 0x02 | n (2) | n × (length (2), signed record)    |
//	         +------+-------+------------------------------------+
//	         n ≥ 1; each length 1..MaxRecordSize; whole message ≤ MaxMessageSize.
//	         The records themselves are checked by Parse, one by one.
//
// # Driver contract
//
//   - Publish{Payload}: broadcast on the registry topic.
//   - Send{To, Msg}: deliver to the neighbour To; best-effort.
//   - SetTimer{At, Timer}: call HandleTimer(At, Timer) then. Never
//     cancelled; stale timers are ignored.
//   - Changed{ID, Removed}: pass on to whatever caches records.
//   - Call HandleNeighborUp and HandleNeighborDown as the overlay's
//     active view changes (membership's NeighborUp/NeighborDown).
//
// # The overlay from the records
//
// Records name their neighbours, so the records a node holds draw the
// overlay's active-view graph. ComponentOf finds the node's component in
// it, trusting the newer end where the two ends of a link disagree; the
// node's driver rejoins through the largest other component when
// Component.Split says its own part is cut off (a part that broadcasts no
// longer reach keeps the stale records of the rest).
package registry
