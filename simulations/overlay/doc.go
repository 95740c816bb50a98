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
// The publications come after the last broadcast's drain, one every
// RegistryInterval, each by a random live node that has not published,
// with a record of realistic shape (two listen addresses, one reflexive,
// two services, its active view as neighbours, an onion key: 370 bytes).
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
// # Measurement
//
// Each broadcast's payload starts with its number. A GOSSIP (payload)
// message sent for it counts towards its m; a Deliver towards its n, its
// LDH (the largest Hops) and its delivery-time curve. Reliability counts
// deliveries by nodes that were alive when it was sent, over those nodes.
// Connectivity is union-find over the live nodes' active views taken as
// undirected edges.
package overlay
