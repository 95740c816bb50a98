// Package overlay runs the real HyParView (membership) and Plumtree
// (broadcast) machines on thousands of simulated nodes under the
// discrete-event engine of simulations/des, and measures what the papers
// measure: reliability, relative message redundancy (RMR = m/(n-1) - 1)
// and last delivery hop (LDH), plus the shape of the overlay and how long
// it takes to heal after mass failures. `mycelium sim` is its command line.
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
// Node IDs are random 32-byte strings from the seed (not real keys: the
// machines do not sign), each node has one made-up IPv4 address, and the
// node index is the position in an ID table.
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
