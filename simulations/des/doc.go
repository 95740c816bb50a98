// Package des is a discrete-event network simulator for sans-IO protocol
// machines: tier 2 of "How we know it works" in DESIGN.md.
//
// An Engine holds a virtual clock, a heap of pending events ordered by
// (time, sequence number), a seeded random source, and a model of the
// network between its nodes: per-link latency with seeded jitter, message
// loss, links that open and break, node crashes and restarts, and
// partitions and heals. Each node is a Handler: the protocol stack of one
// simulated node, usually a set of adapters around the real state machines
// (see simulations/overlay). The engine runs no goroutines and reads no
// wall clock, so the same seed gives the same run, event for event.
//
// # Nodes and links
//
// Nodes are dense indices 0..N-1 (AddNode hands them out); a driver keeps
// its own table from node IDs to indices. A link is a connection between
// two nodes, as a QUIC connection is in the real node:
//
//	Connect(a, b)      after one round trip: a gets HandleConnected(b), and the
//	                   link a–b is up at both ends. If b is dead or on the other
//	                   side of a partition: a gets HandleConnectFailed(b) after
//	                   Config.ConnectTimeout.
//	Disconnect(a, b)   the link is down at once at a; b gets
//	                   HandleDisconnected(a) after the messages a sent before it.
//	Crash(a)           every peer linked to a gets HandleDisconnected(a) after
//	                   Config.DetectDelay (the keep-alive failure detector).
//	Partition(...)     links that cross groups break; both ends get
//	                   HandleDisconnected after Config.DetectDelay.
//
// Send(a, b, layer, msg) carries msg over the link a–b when there is one:
// links are FIFO, one-way delay Latency.Base + a fixed per-pair spread in
// [0, Latency.Spread) + a fresh jitter in [0, Latency.Jitter). With no link
// the message pays a handshake round trip first and opens nothing: it is
// the short-lived connection a real driver would make. A message is lost
// with probability Config.Loss (a model of datagram carriage, or of a
// connection glitch a reliable stream does not hide), and dropped when its
// receiver is dead, has restarted, or sits across a partition when it
// would arrive.
//
// The layer is a small tag that Send carries to HandleMessage: one link
// carries the messages of every protocol machine on a node, and the layer
// says which machine a message is for.
//
// # Determinism and the trace
//
// Every event the engine dispatches, and every message it loses, is encoded
// canonically (little-endian fixed-width fields, then the message bytes)
// and fed to SHA-256; TraceHash returns the digest. With Config.Trace set,
// each event is also written there as one line of text. Two runs with the
// same seed, nodes and scenario give the same hash; a test checks this.
//
// Ties in time are broken by the order events were scheduled (a sequence
// number), never by map order or pointer values.
package des
