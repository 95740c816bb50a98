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
// Nodes that bootstrap join a HyParView overlay (membership/) and can
// Broadcast and Subscribe over Plumtree (broadcast/). Each node publishes a
// record signed with its key (registry/): its addresses, NAT class, role
// and services, so Lookup, LookupService and Dial by node ID alone work,
// and WatchRegistry follows changes. Every node answers STUN on its socket
// and classifies its own NAT from other nodes' answers (nat/); Dial to a
// node behind a NAT coordinates a hole punch through a node both hold
// connections to, where nat.CanPunch says one can work. Where no direct
// path opens, Dial builds a one-hop circuit (circuit/, relay/) through a
// public neighbour or home relay of the target and runs the end-to-end
// QUIC connection inside it; every node relays circuits for others within
// Config.RelayResources.
package mycelium
