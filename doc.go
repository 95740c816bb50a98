// Package mycelium reaches any node by its public key.
//
// A Node owns one UDP socket. On it, one QUIC transport both listens and
// dials; peers authenticate each other with TLS 1.3 against their Ed25519
// node keys, so a connection to a node ID is a connection to whoever holds
// that key and nobody else. Between two nodes there is one QUIC connection;
// when both dial at once, the connection dialed by the lower node ID is kept
// and the other drains.
//
// Streams are for named services. Listen("echo") returns a net.Listener and
// Dial(ctx, id, "echo") a net.Conn, so http.Serve, gRPC and io.Copy work over
// them unchanged. Each stream opens with a small header naming its service;
// the accepting node answers with one status byte before any payload flows,
// so a dialer learns of an unknown service at once (see internal/wire).
//
// Besides net.Conn, a stream has CloseWrite (half-close: the peer reads EOF,
// reading goes on), CloseRead, and Reset (end both directions with an error
// the peer sees as ErrStreamReset). Test for them with interface
// assertions, as with *net.TCPConn.
//
// Later layers add membership (HyParView), broadcast (Plumtree), a registry
// of signed node records, NAT traversal and multi-hop circuits. See DESIGN.md
// in the repository for the map.
package mycelium
