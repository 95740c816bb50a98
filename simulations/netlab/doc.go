// Package netlab is an in-memory UDP internet with NAT routers that
// behave as RFC 4787 ("NAT Behavioral Requirements for Unicast UDP")
// describes, for running real node code and real quic-go under
// testing/synctest: virtual time, no root, no sockets.
//
// A Network is the public internet. Hosts sit on it directly, or on the
// private side of a NAT router; routers sit on it, or behind other
// routers (carrier-grade NAT). A host binds sockets with ListenPacket; a
// *Conn is a net.PacketConn that passes the same conformance suite
// (TestPacketConn) as a *net.UDPConn on 127.0.0.1, so it can be handed to
// quic-go or to the node's Config.PacketConn. Datagrams are opaque.
//
// A host behind a NAT reaching a public server, in about ten lines:
//
//	lab, _ := netlab.New(netlab.DefaultConfig())
//	defer lab.Close()
//	server, _ := lab.AddHost(netip.MustParseAddr("203.0.113.10"))
//	cfg := netlab.DefaultNATConfig() // Linux MASQUERADE
//	cfg.Addr = netip.MustParseAddr("198.51.100.1")
//	home, _ := lab.AddNAT(cfg)
//	laptop, _ := home.AddHost(netip.MustParseAddr("192.168.1.10"))
//	sc, _ := server.ListenPacket(3478)
//	lc, _ := laptop.ListenPacket(0)
//	lc.WriteTo([]byte("hello"), sc.LocalAddr())
//	buf := make([]byte, 1500)
//	n, from, _ := sc.ReadFrom(buf) // from is 198.51.100.1 and the mapped port
//
// For a "symmetric" NAT instead, set cfg.Mapping =
// netlab.AddressAndPortDependent and cfg.Ports = netlab.PortRandom before
// AddNAT.
//
// # NAT vocabulary
//
// Mapping says when an outbound datagram reuses a public port; filtering
// says who may send in through it. Each takes one of three Behavior
// values, chosen independently (RFC 4787 §4.1 and §5):
//
//	Behavior                 as mapping, a port serves    as filtering, it lets in
//	EndpointIndependent      every destination            anyone
//	AddressDependent         one destination address      addresses the host sent to
//	AddressAndPortDependent  one destination address+port the exact endpoints the host sent to
//
// The old names, and what real routers do, in these words:
//
//	"full cone"             EndpointIndependent mapping and filtering
//	"restricted cone"       EndpointIndependent mapping, AddressDependent filtering
//	"port-restricted cone"  EndpointIndependent mapping, AddressAndPortDependent filtering
//	"symmetric"             AddressAndPortDependent mapping (and filtering)
//	Linux MASQUERADE        EndpointIndependent mapping (ports preserved), AddressAndPortDependent filtering
//	  --random-fully        AddressAndPortDependent mapping, random ports
//	  + nftables dynamic set keyed by source address: AddressDependent filtering
//
// DefaultNATConfig is Linux MASQUERADE. The rest of RFC 4787 that netlab
// models: port allocation (PortPreserving, falling back to a random port
// as Linux does, PortSequential, PortRandom), timeouts, refresh on
// outbound datagrams always and on inbound ones if
// NATConfig.InboundRefresh is set (REQ-6), and hairpinning (REQ-9) if
// NATConfig.Hairpinning is set. Timeouts follow Linux conntrack: a
// mapping holds a permission per remote endpoint it has sent to, each
// with its own timer, and lives while one of them does; a permission
// gets NATConfig.UnrepliedTimeout (30 s) until its flow is assured (a
// reply seen, and traffic more than 2 s after the flow began) and
// NATConfig.Timeout (120 s) after. So one STUN request and its reply keep
// a mapping for 30 s, and a peer the host sent to once cannot get in
// after 30 s even while the host keeps the mapping alive talking to
// others. NAT.Flush forgets every mapping (conntrack -F); NAT.Rebind also
// forces every host onto a new public port; NAT.SetAddr moves the router
// to a new public address.
//
// Where netlab deviates from Linux: a public port serves one mapping at a
// time, where Linux shares it between mappings towards different
// remotes; inbound datagrams refresh nothing unless InboundRefresh is
// set; there is no ICMP, no fragmentation (datagrams over a link's MTU
// are dropped) and no port parity or contiguity (REQ-4). An unsolicited
// inbound datagram leaves no state, so Linux conntrack's simultaneous-open
// collision (an early punch packet pushing the host's own mapping onto
// another port; see DESIGN.md) does not happen here: the netns tier shows
// it.
//
// # Links, time and randomness
//
// Every host and router reaches its network over a Link with latency,
// jitter, loss and an MTU. Datagrams in flight wait on one time.Timer per
// Network, so under testing/synctest they move in virtual time, and the
// network starts no goroutine that outlives Close. synctest.Wait does not
// move time on, so after it a datagram on a link with latency is still in
// flight: to let traffic settle, time.Sleep in the bubble past the path's
// latency. A blocked ReadFrom is durably blocked.
//
// Config.Seed decides loss, jitter and random ports, through a random
// stream per flow (per link, source and destination), per NAT router and
// internal endpoint, and per host: with the same seed, the same sends on
// a flow meet the same fates however goroutines sending other flows
// interleave. Real nodes under synctest are still not byte-for-byte
// reproducible, since quic-go and TLS use crypto/rand; Config.Seed says
// what is and is not reproducible.
//
// Each socket's receive queue is bounded (Config.ReadBuffer); what
// overflows it is dropped. Every drop is counted by reason in Stats, and
// Config.Trace sees each send, NAT translation, drop and delivery.
package netlab
