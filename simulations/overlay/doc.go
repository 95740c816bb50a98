// Package overlay runs the real HyParView (membership) and Plumtree
// (broadcast) machines, and optionally the registry, on thousands of
// simulated nodes under the discrete-event engine of simulations/des, and
// measures what the papers measure: reliability, relative message
// redundancy (RMR = m/(n-1) - 1) and last delivery hop (LDH), plus the
// shape of the overlay and how long it takes to heal after mass failures,
// and how fast and at what cost node records spread. `mycelium sim` is its
// command line.
//
// # The driver contract, as simulated
//
// Each simulated Node holds one membership.Machine and one
// broadcast.Machine and carries out their outputs in slice order, as the
// real driver does: Send, Connect, Disconnect and SetTimer go to the
// engine; membership's NeighborUp and NeighborDown go to broadcast's
// HandleNeighborUp and HandleNeighborDown; Deliver is measured. One engine
// link between two nodes carries both machines' messages, tagged by layer
// (1 membership, 2 broadcast). A link that breaks (a crash, a partition,
// the other end's Disconnect) reaches membership as HandleDisconnected,
// and broadcast hears of it through membership's NeighborDown. The
// machines see virtual time as 2026-01-01T00:00:00Z plus the engine clock.
//
// Node IDs are random 32-byte strings from the seed (not real keys:
// membership and broadcast do not sign), each node has one made-up IPv4
// address, and the node index is the position in an ID table.
//
// # The registry
//
// With Scenario.RegistryUpdates, each node also holds a registry.Machine,
// wired as the node's driver (applyReg in the module root) wires it:
// Start when the node starts; Publish is broadcast on the topic
// "mycelium.registry", and broadcast's Deliver on that topic goes to
// HandleBroadcast instead of being measured; Send goes over the link as
// layer 3 to HandleMessage; membership's NeighborUp and NeighborDown go to
// broadcast, then to the registry; SetTimer goes to the engine. The
// registry signs, so each node gets a real Ed25519 key derived from the
// seed, and its public key is its node ID (which changes the overlay the
// seed gives: other IDs).
//
// Two deviations keep 10,000 nodes in memory. A real node publishes its
// record when it starts, and again a minute after its active view
// changes; here only the RegistryUpdates publishers call SetLocal, once
// each, so every machine holds at most that many records, where a real
// one holds one per node. The memory of a full registry is measured apart:
// one real Machine filled with a signed record of every node
// (MeasureRegistryMemory).
//
// The publications come after the last broadcast's drain (and the circuit
// phase's), one every RegistryInterval, each by a random live node that
// has not published, with a record of realistic shape (two listen
// addresses, one reflexive, two services, its active view as neighbours,
// an onion key: 370 bytes).
// An update reaches a node when its machine emits Changed for the
// publisher and holds the new Seq; the nodes counted are those alive and
// joined at the publication that stay up to the end of the run. Bytes: every GOSSIP on the registry topic,
// IHAVE announcements and GRAFTs of registry message IDs, PRUNEs and
// GRAFT(null)s sent during the phase (no other broadcast is under way
// then); over the publications, that is C, the cost of one publication
// network-wide. If every node republishes once per period R, each node
// sends (and receives) C/R bytes a second. Anti-entropy is the other
// term: NeighborUps per node per second in the phase times a full digest
// at Nodes records, plus the RECORDS bytes measured, each message scaled
// from the records in circulation when it was sent to Nodes records
// (RegistryResult says which figures are measured and which derived).
//
// # Circuit dials
//
// With Scenario.CircuitDials the run adds a circuit phase after the last
// broadcast's drain, when the overlay has settled after any failure (the
// registry phase, if any, then starts one Drain later, and the run drains
// for Drain after the phase, so that the overlay notices the crashed
// relays). It makes the decisions a Dial makes with the node's own
// functions: nat.CanPunch for direct or not, circuit.HomeOrder for home
// relays, circuit.NewGraph and Graph.Select for paths and
// circuit.PathAttempts for retries. At one instant:
//
//  1. The records of every live node that has joined are taken, as the
//     node's candidateOf reads them. ID; an onion key (the ID with one bit
//     set: selection only tells a zero key from others); Inbound if the
//     node's NAT class is public (every node, without a NAT mix); Relay for
//     the Scenario.Relays dedicated relays, drawn among the public nodes
//     when the run is built, which announce the node's default capacity
//     (relay.DefaultResources().MaxCircuits, 4,096 circuits) and as load
//     the circuits placed on them so far in the phase; and as links the
//     node's active view (at most registry.MaxNeighbors of it) and, behind
//     a NAT, its two home relays: the first two that circuit.HomeOrder
//     gives over the records.
//  2. A RelayFail fraction of the dedicated relays crash. The records, and
//     the dialers' active views, still name them: a registry keeps a
//     record until it expires, and a node notices a dead peer after
//     Detect.
//  3. The dials follow, each from a random live node to another. A dial
//     is direct where nat.CanPunch says a path opens (a public target
//     included) and the two can reach each other. Otherwise Select is
//     asked for up to PathAttempts paths, with MinRelays CircuitRelays,
//     Linked the dialer's active view and home relays, and Avoid the
//     relays of the dialer's failed paths, in this dial and its earlier
//     ones (the node avoids them for a minute, longer than the phase). A
//     path holds if, in the live state, the dialer holds a link to the
//     first relay or that relay takes inbound connections, and each relay
//     holds a link to the next hop. A link held is an engine link, or a
//     home relay link whose ends are alive and on one side of any
//     partition; a dead node holds none. A relay of a path that holds
//     carries one more circuit, which stays for the phase.
//
// What the phase leaves out:
//
//   - No message is sent. A path is judged from the link state at the
//     instant of the dial: no setup round trip, loss, timeout, rate limit
//     or relay.Table refusal.
//   - The overlay ignores NAT: any two nodes may be neighbours, pairs that
//     nat.CanPunch rules out included, and a real node could not hold
//     those links. Paths may run over them; CircuitResult.UnpunchableLinks
//     counts the circuits that did. Whether a dial goes direct is
//     CanPunch's answer alone: an overlay link between the two ends counts
//     for nothing.
//   - Home relay links are assumed, not engine links: a NAT-bound node
//     holds its two from the moment the records are taken, even one that
//     churn restarted an instant before (a real one picks them at its
//     first lonely check, within a shuffle interval). Such a link breaks
//     only when an end dies or a partition cuts it.
//   - The records are as fresh as the dials, but for the crashed relays:
//     the records of nodes dead before the phase are not kept, and no
//     record lists an active view older than the phase. A real registry
//     also holds links up to a minute old (a node republishes a minute
//     after its active view changes) and the records of dead nodes until
//     they expire. Churn acts only through the overlay's shape.
//   - Every dialer sees each relay's load as of the dial before; a real
//     dialer sees the load the relay last published.
//   - Dedicated relays are never crashed by Fail or Churn, only by
//     RelayFail.
//   - A first relay the dialer believes linked, no longer linked, and
//     taking no inbound connection, fails the attempt; a real node would
//     try to punch to it.
//
// # Measurement
//
// Each broadcast's payload starts with its number. A GOSSIP (payload)
// message sent for it counts towards its m; a Deliver towards its n, its
// LDH (the largest Hops) and its delivery-time curve. Reliability counts
// deliveries by nodes that were alive when it was sent, over those nodes.
// Connectivity is union-find over the live nodes' active views taken as
// undirected edges.
package overlay
