package mycelium

import (
	"time"

	"github.com/mycelium-net/mycelium/broadcast"
	"github.com/mycelium-net/mycelium/membership"
	"github.com/mycelium-net/mycelium/migration"
	"github.com/mycelium-net/mycelium/registry"
)

// Stats is a snapshot of a node's state and counters.
type Stats struct {
	ID       NodeID      `json:"id"`
	Role     string      `json:"role"`     // "node" or "relay"
	Listen   []string    `json:"listen"`   // socket addresses
	Peers    []PeerStats `json:"peers"`    // connected peers, sorted by ID
	Services []string    `json:"services"` // services with a listener, sorted
	Active   []NodeID    `json:"active"`   // the membership active view, sorted
	Passive  int         `json:"passive"`  // the size of the membership passive view
	NAT      NATStats    `json:"nat"`      // this node's NAT: mapping, filtering, reflexive addresses
	Known    int         `json:"known"`    // node records the registry holds, this node's own included (tombstones of nodes that left are not counted)
	Counters Counters    `json:"counters"`
	// Membership and Broadcast are the protocol machines' own counters.
	Membership membership.Stats `json:"membership"`
	Broadcast  broadcast.Stats  `json:"broadcast"`
	Registry   registry.Stats   `json:"registry"`
}

// PeerStats describes the connection to one peer.
type PeerStats struct {
	ID NodeID `json:"id"`
	// Path is how the connection's packets travel now: "direct", or
	// "circuit" through relays. A connection that began in a circuit
	// and moved to a direct path (see Migrations) is "direct".
	Path string   `json:"path"`
	Hops int      `json:"hops"` // relays on the circuit; 0 when direct
	Via  []NodeID `json:"via"`  // the circuit's relays, first hop first; empty when direct
	// Migrations counts the moves between paths (circuit to direct and
	// back, one direct path to another) of this peer's connections, the
	// active one and those still draining, since they opened.
	Migrations uint64 `json:"migrations"`
	// PathLoss is the share of keep-alives the current path lost lately
	// (smoothed, 0..1), for a connection with a path layer (one that
	// began in a circuit); 0 for others.
	PathLoss  float64       `json:"path_loss"`
	Addr      string        `json:"addr"` // the peer's address on the path
	RTT       time.Duration `json:"-"`
	RTTMillis float64       `json:"rtt_ms"`
	Outbound  bool          `json:"outbound"` // this node dialed the connection
	Streams   int           `json:"streams"`  // streams open on it
	Since     time.Time     `json:"since"`
	BytesSent uint64        `json:"bytes_sent"`
	BytesRecv uint64        `json:"bytes_received"`
}

// Counters are totals since the node started.
type Counters struct {
	ConnsIn        uint64 `json:"conns_in"`        // inbound connections accepted
	ConnsOut       uint64 `json:"conns_out"`       // outbound connections established
	ConnsRefused   uint64 `json:"conns_refused"`   // inbound connections refused (MaxPeers)
	DuplicateConns uint64 `json:"duplicate_conns"` // connections that lost a duplicate race and were set to drain
	DialsFailed    uint64 `json:"dials_failed"`    // outbound connection attempts that failed
	StreamsIn      uint64 `json:"streams_in"`      // inbound streams accepted (the node's own overlay streams not counted)
	StreamsOut     uint64 `json:"streams_out"`     // outbound streams accepted by the peer
	StreamsRefused uint64 `json:"streams_refused"` // inbound streams refused
	BadHeaders     uint64 `json:"bad_headers"`     // inbound streams with a malformed header
	NonQUICPackets uint64 `json:"non_quic_packets"`
	OverlayDropped uint64 `json:"overlay_dropped"` // overlay frames or deliveries dropped for a full queue
	// RegistryRejoins counts joins through a node of the registry after
	// the active view stayed empty (the last contact may be gone).
	RegistryRejoins uint64 `json:"registry_rejoins"`
	// PartitionRejoins counts joins through a node outside our part of
	// the overlay, after the records showed that part cut off (see
	// registry.ComponentOf).
	PartitionRejoins uint64 `json:"partition_rejoins"`
	// SilentConns counts connections closed because a stream open got
	// no packet at all back within Config.StreamHeaderTimeout: a dead
	// path that QUIC's idle timeout had not caught yet. The dial that
	// found it goes on over a new connection.
	SilentConns uint64 `json:"silent_conns"`
	// Migrations counts moves of connections between paths (the path
	// layer's switches after a connection's first path).
	Migrations uint64 `json:"migrations"`
	// Migrations by cause: to a punched direct path from a circuit; to
	// a circuit when the direct path died (fallback); away from a dead
	// path otherwise (to another of its kind, or to the first path after
	// a loss); to a clearly better path (degraded); after our address
	// changed (a NAT rebinding, a local address change).
	MigrationsUpgrade  uint64 `json:"migrations_upgrade"`
	MigrationsFallback uint64 `json:"migrations_fallback"`
	MigrationsPathDead uint64 `json:"migrations_path_dead"`
	MigrationsDegraded uint64 `json:"migrations_degraded"`
	MigrationsAddress  uint64 `json:"migrations_address"`
	// MigrationStalls counts the forced moves (fallback, path dead,
	// address), and MigrationStallMicros sums their path outage: from
	// the last keep-alive the old path answered (when it went out) to
	// the move. MigrationStallMaxMicros is the longest. A stream stalls
	// about that plus a round trip on the new path.
	MigrationStalls         uint64 `json:"migration_stalls"`
	MigrationStallMicros    uint64 `json:"migration_stall_us"`
	MigrationStallMaxMicros uint64 `json:"migration_stall_max_us"`
	// PathDropped counts path-layer packets dropped: malformed, for no
	// session of ours, failing their tag, past the PING rate, or a full
	// queue.
	PathDropped uint64 `json:"path_dropped"`
	// Hole punching: coordinated tries, those that gave a direct
	// connection, dials that gave up after every try, dials not tried
	// because the two NATs cannot be punched; punches this node
	// coordinated for others, and answered as the target.
	PunchAttempts uint64 `json:"punch_attempts"`
	PunchDirect   uint64 `json:"punch_direct"`
	PunchFailed   uint64 `json:"punch_failed"`
	PunchSkipped  uint64 `json:"punch_skipped"`
	PunchRelayed  uint64 `json:"punch_relayed"`
	PunchAnswered uint64 `json:"punch_answered"`
	// PunchDialMicros sums, over the punches that gave a direct
	// connection, the time from the first packet of the simultaneous dial
	// to the open QUIC connection.
	PunchDialMicros uint64 `json:"punch_dial_us"`
	// Opener packets sent before simultaneous dials, and the peers'
	// openers that reached this node (each says PunchTTL was too large
	// for that path: the opener crossed both NATs).
	PunchOpenersSent uint64 `json:"punch_openers_sent"`
	PunchOpenersSeen uint64 `json:"punch_openers_seen"`
	// Circuits: built by this node (as initiator), relayed, refused here,
	// and circuit datagrams dropped (malformed, unknown circuit).
	CircuitsBuilt   uint64 `json:"circuits_built"`
	CircuitsRelayed uint64 `json:"circuits_relayed"`
	CircuitsRefused uint64 `json:"circuits_refused"`
	CircuitDropped  uint64 `json:"circuit_datagrams_dropped"`
	// NATLocalChanges counts changes of the node's local addresses, each
	// of which started NAT discovery afresh.
	NATLocalChanges uint64 `json:"nat_local_changes"`
	// NATReflexiveChanges counts discovery rounds that found a new
	// reflexive address where one was known (a NAT rebinding, seen by
	// STUN); each nudges the links and has the path layers probe their
	// direct paths again.
	NATReflexiveChanges uint64 `json:"nat_reflexive_changes"`
	// NAT filtering probes this node arranged for others, and sent.
	ProbesForwarded uint64 `json:"nat_probes_forwarded"`
	ProbesSent      uint64 `json:"nat_probes_sent"`
}

// Stats returns a snapshot of the node.
func (n *Node) Stats() Stats {
	st := Stats{
		ID:       n.id,
		Role:     "node",
		Listen:   []string{},
		Peers:    []PeerStats{},
		Services: n.services(),
		Counters: Counters{
			ConnsIn:             n.stats.connsIn.Load(),
			ConnsOut:            n.stats.connsOut.Load(),
			ConnsRefused:        n.stats.connsRefused.Load(),
			DuplicateConns:      n.stats.duplicateConns.Load(),
			DialsFailed:         n.stats.dialsFailed.Load(),
			StreamsIn:           n.stats.streamsIn.Load(),
			StreamsOut:          n.stats.streamsOut.Load(),
			StreamsRefused:      n.stats.streamsRefused.Load(),
			BadHeaders:          n.stats.badHeaders.Load(),
			NonQUICPackets:      n.stats.nonQUICPackets.Load(),
			RegistryRejoins:     n.stats.registryRejoins.Load(),
			PartitionRejoins:    n.stats.partitionRejoins.Load(),
			SilentConns:         n.stats.silentConns.Load(),
			Migrations:          n.stats.migrations.Load(),
			PathDropped:         n.stats.pathDropped.Load(),
			NATReflexiveChanges: n.stats.natReflexiveChanges.Load(),

			MigrationsUpgrade:       n.stats.migrationsByCause[migrationUpgrade].Load(),
			MigrationsFallback:      n.stats.migrationsByCause[migrationFallback].Load(),
			MigrationsPathDead:      n.stats.migrationsByCause[migrationPathDead].Load(),
			MigrationsDegraded:      n.stats.migrationsByCause[migrationDegraded].Load(),
			MigrationsAddress:       n.stats.migrationsByCause[migrationAddress].Load(),
			MigrationStalls:         n.stats.migrationStalls.Load(),
			MigrationStallMicros:    n.stats.migrationStallMicros.Load(),
			MigrationStallMaxMicros: n.stats.migrationStallMaxMicros.Load(),
			PunchAttempts:           n.stats.punchAttempts.Load(),
			PunchDirect:             n.stats.punchDirect.Load(),
			PunchFailed:             n.stats.punchFailed.Load(),
			PunchSkipped:            n.stats.punchSkipped.Load(),
			PunchRelayed:            n.stats.punchRelayed.Load(),
			PunchAnswered:           n.stats.punchAnswered.Load(),
			PunchDialMicros:         n.stats.punchDialMicros.Load(),
			PunchOpenersSent:        n.stats.punchOpenersSent.Load(),
			PunchOpenersSeen:        n.stats.punchOpenersSeen.Load(),
			CircuitsBuilt:           n.stats.circuitsBuilt.Load(),
			CircuitsRelayed:         n.stats.circuitsRelayed.Load(),
			CircuitsRefused:         n.stats.circuitsRefused.Load(),
			CircuitDropped:          n.stats.circuitDropped.Load(),
			NATLocalChanges:         n.stats.natLocalChanges.Load(),
			ProbesForwarded:         n.stats.probesForwarded.Load(),
			ProbesSent:              n.stats.probesSent.Load(),
		},
	}
	if n.cfg.Relay {
		st.Role = "relay"
	}
	snap := n.overlay.snap.Load()
	st.Active = append([]NodeID{}, snap.active...)
	st.Passive = snap.passive
	st.Known = snap.known
	st.NAT = snap.nat.stats()
	st.NAT.STUN = n.stun.stats()
	st.Registry = snap.reg
	st.Membership, st.Broadcast = snap.mem, snap.bc
	st.Counters.OverlayDropped = n.overlay.dropped.Load()
	if a := n.LocalAddr(); a != nil {
		st.Listen = append(st.Listen, a.String())
	}
	for _, p := range n.peers.snapshot() {
		cs := p.pc.qc.ConnectionStats()
		path, via := "direct", p.pc.via
		if via != nil {
			path = "circuit"
		}
		var migrations uint64
		var loss float64
		for _, s := range p.sessions {
			ps := s.stats()
			migrations += ps.migrations
			if s == p.pc.session {
				loss = ps.loss
				switch {
				case ps.kind == migration.Direct:
					path, via = "direct", nil
				case ps.via != nil:
					via = ps.via // a circuit built since, to carry the connection
				}
			}
		}
		st.Peers = append(st.Peers, PeerStats{
			ID:         p.id,
			Path:       path,
			Hops:       len(via),
			Via:        via,
			Migrations: migrations,
			PathLoss:   loss,
			Addr:       p.pc.qc.RemoteAddr().String(),
			RTT:        cs.SmoothedRTT,
			RTTMillis:  float64(cs.SmoothedRTT.Microseconds()) / 1000,
			Outbound:   p.pc.outbound,
			Streams:    p.streams,
			Since:      p.pc.since,
			BytesSent:  cs.BytesSent,
			BytesRecv:  cs.BytesReceived,
		})
	}
	return st
}
