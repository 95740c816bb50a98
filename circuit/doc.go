// Package circuit is the cryptographic core of multi-hop circuits: when
// two nodes cannot connect directly, the initiator builds a circuit
// through relay nodes to the target, and the end-to-end QUIC connection
// runs inside it. The package builds and peels the one-round-trip setup
// onion and applies the per-hop layers to data packets, with replay
// protection. It is sans-IO: no sockets, goroutines or clock; time comes
// in as now and randomness from an io.Reader. The relay's link header
// (circuit IDs) belongs to the caller.
//
// # Choosing a path
//
// A relay forwards only over links it already holds, so a path is a walk
// in the graph the signed records describe: each record lists its
// node's active-view neighbours and home relays, and a link counts both
// ways. NewGraph indexes the records as Candidates and Graph.Select
// walks back from the target: the last relay holds a link to it, each
// relay one to the next, and the first is linked to the initiator or
// takes inbound connections. It takes the fewest relays asked
// (DefaultRelays, 1, and why, is on the constant) and more, up to
// MaxRelays, only when the target is reachable no other way, as through
// a NAT-bound neighbour of it behind a public node. It prefers a first
// relay the initiator already holds a link to, announced relays and low
// load; it leaves out relays at nine tenths of their announced capacity
// unless nothing else remains, and whatever the caller's Avoid says (the
// node avoids, for a minute, every relay of a path that failed, since it
// cannot tell which hop did). A dial tries PathAttempts paths. HomeOrder
// is the order in which a NAT-bound node tries its home relays. The
// node and the simulator (simulations/overlay) both call these.
//
// # Path and keys
//
// A path is 1 to MaxHops Hops: relays, then the target (the terminal).
// The initiator is not in it. Every node has a static X25519 onion key,
// published in its signed record. For each hop i the initiator draws a
// fresh ephemeral key e_i (E_i its public key) and computes s_i =
// X25519(e_i, H_i). Both sides expand HKDF-SHA256(secret s_i, salt
// E_i || H_i, info "mycelium circuit v1 <label>") into independent keys:
// rho_i (ChaCha20, the routing blocks), mu_i (HMAC-SHA256, the onion
// MAC), and the data keys of a relay or of the terminal. The hop's
// replay tag is SHA-256(s_i || "replay")[:16].
//
// # Setup onion
//
// Every onion on every link is OnionSize = 32 + 16 + MaxHops*BlockSize
// = 688 bytes: | E_i (32) | MAC_i (16) | beta_i (MaxHops*BlockSize) |.
// Decrypted, hop i's routing block (BlockSize = 128) is
// | type (1: relay, 2: terminal) | next hop ID (32) | E_{i+1} (32) |
// MAC_{i+1} (16) | created, Unix seconds (8, big-endian) | zero (39) |,
// with the next-hop fields zero in the terminal's block.
//
// Peel at hop i checks MAC_i = HMAC(mu_i, beta_i)[:16] in constant time
// (ErrBadOnion), computes gamma = (beta_i || 0^B) XOR ChaCha20(rho_i,
// zero nonce), takes its block from gamma[:B], checks that created is
// within SetupMaxAge of now either way (ErrExpired), records the replay
// tag (ErrReplay), and forwards | E_{i+1} | MAC_{i+1} | gamma[B:] |.
// The initiator builds the layers from the terminal outward, as in
// Sphinx (Danezis and Goldberg, 2009, section 3.2): the filler phi, with
// phi_0 empty and phi_{i+1} = (phi_i || 0^B) XOR ChaCha20(rho_i)[L-iB :
// L+B] (L = MaxHops*B), is what the earlier hops shift into the tail of
// the terminal's beta, so every MAC verifies. The blocks a short path
// does not use are random, so no hop, the terminal included, can tell
// its position or the path length from the onion: it sees one block
// meant for it and bytes it cannot tell from random.
//
// Setup takes one round trip whatever the path length: the onion goes
// out hop by hop, each relay keeping its RelayKeys for the circuit, and
// the terminal answers with Terminal.Created, a backward data packet
// with the reserved counter 0 and a fixed marker. Initiator.Confirm
// accepting it proves that every hop derived the keys the initiator did.
//
// # Data packets
//
// Every data packet is | nu (16) | body |, and its size never changes
// along the path. A relay's layer is, forward, body ^= AES-256-CTR(sf,
// counter block nu[:12] || 0^32) then nu = AES-256(pf, nu); backward
// the same with sb and pb. (The body stream is AES-CTR rather than
// ChaCha20 for speed: crypto/aes uses AES-NI, while x/crypto's plain
// ChaCha20 has no amd64 assembly.) nu is therefore rewritten by a keyed
// permutation at every hop and the body re-encrypted, so one packet's
// header and body differ on every link and bytes seen on two links do
// not match.
//
// The ends share ChaCha20-Poly1305 keys, one per direction, and the
// terminal has its own forward and backward AES-256 header permutations.
// A packet's counter lives in its counter block | counter (8,
// big-endian) | 8 zero bytes |: forward it is the nu the terminal gets
// after applying its own permutation, backward it is the input of the
// terminal's permutation, whose output goes to the last relay. The
// terminal's permutation is there so the last relay, like every other,
// sees random-looking headers; without it the zero bytes would tell the
// last relay that it is last. The AEAD nonce is the first 12 bytes of
// the counter block (the counter and four zero bytes); the additional
// data is empty. Data counters run from 1 in each direction; backward
// counter 0 is the setup confirmation.
//
// Initiator.Seal picks the next counter, seals the payload, inverts the
// terminal's and then each relay's forward permutation from the last
// relay to the first to get the nu each relay will see, and adds each
// relay's keystream for that nu, so that the relays, in order, leave the
// AEAD ciphertext for the terminal. Initiator.Open undoes the relays'
// backward permutations and keystreams from the first relay on, then
// the terminal's permutation. A packet whose counter block does not end
// in zeros (a missing, extra or wrong layer, or a changed header) is
// refused before the AEAD.
//
// Sizes: Overhead = 32 bytes per packet (nu 16 + tag 16), so a 1200-byte
// inner QUIC packet is 1232 bytes here, leaving room for the relay's
// own header in a ~1243-byte outer datagram. MaxPayload = 1400.
// Relays refuse packets outside [Overhead, Overhead+MaxPayload].
//
// # Replay protection
//
// Setup: each node's ReplayCache keeps the tag of every onion it has
// peeled for 2*SetupMaxAge, which covers the whole time the onion can
// pass the age check. It is bounded and, when full, refuses new onions
// (ErrReplayCacheFull) rather than forget a live tag. Only onions whose
// MAC verifies reach it.
//
// Data: each end keeps a sliding window of ReplayWindow = 2048 counters
// (RFC 6479, as in WireGuard). A packet is accepted once, in any order
// within the window, and only after it authenticates, so forged packets
// cannot move the window. Relays keep no per-packet state and so do not
// detect replays: a replayed packet is forwarded and dropped at the end.
//
// # Threat model
//
// One relay learns its previous and next hop, when and how many packets
// pass each way and their sizes, how long the circuit lives, and the
// onion's creation time to the second. It does not learn its position
// on the path, the path length, the payload, or who the initiator and
// target are, except that its neighbours may be them and it cannot tell
// whether they are. (Facts outside this package, such as path-selection
// rules or a neighbour's role in the overlay, may tell it more.) The
// terminal likewise learns its previous hop but not the path length;
// it does learn who the initiator is, inside, from QUIC/TLS: circuits
// are for reachability, not anonymity toward the target.
//
// Two colluding relays on one circuit cannot link it by bytes: headers
// and bodies differ on every link, and onions differ at every hop. They
// can link it trivially by timing and volume, by the shared creation
// time, or by replaying a packet and watching for the duplicate; the
// package does not pad, delay, batch or mix.
//
// An outside observer of some links sees constant-size onions, packet
// sizes and timing, and no bytes that match across links. Watching both
// ends it links them by timing.
//
// Tampering: relays have no integrity check on data. A changed bit,
// header or length anywhere makes the end's AEAD, or the counter-block
// check before it, fail, and the packet is dropped. So a tagging attack,
// marking a packet at one relay to recognise it later, shows up at the
// end only as a drop; a colluding downstream relay cannot see the mark,
// since it does not know the bytes the packet should have had. A relay
// that changes the onion it forwards is caught by the next hop's MAC
// and the setup fails.
//
// Not promised: this is not Tor. There is no anonymity against a global
// observer or against colluding relays doing timing analysis, no cover
// traffic and no padding of packet sizes. Relay layers have no forward
// secrecy beyond the lifetime of the hops' onion keys: whoever records
// an onion and later gets a hop's onion private key can remove that
// hop's layer, so nodes should rotate onion keys; the payload stays
// protected by the inner QUIC/TLS. The initiator and target
// authenticate each other inside, through QUIC/TLS, not here; the onion
// only ensures that each hop is whoever holds the onion key the
// initiator chose. A CTR nonce at a relay is 96 bits of a
// permuted header, so nonces may repeat after about 2^48 packets on
// one circuit; circuits should be rebuilt long before that (and must
// be when Seal returns ErrExhausted).
//
// # Use
//
// RelayKeys, Initiator, Terminal and ReplayCache are safe for concurrent
// use. Open and Forward/Backward work in place; Seal appends. Every
// error wraps one of the package's sentinel errors.
package circuit
