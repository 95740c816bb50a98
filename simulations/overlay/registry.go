package overlay

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/mycelium-net/mycelium/broadcast"
	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/registry"
	"github.com/mycelium-net/mycelium/simulations/des"
)

// registryTopic is the broadcast topic of node records: the node's own
// registryTopic (registry.go at the module root), which
// TestRegistryTopicIsTheNodes holds equal. Its length is in every GOSSIP.
const registryTopic = "mycelium.registry"

// regSim is the registry phase of a run: the nodes' keys, the
// publications, and what is measured of them.
type regSim struct {
	s    *Sim
	cfg  registry.Config
	keys []ed25519.PrivateKey // node i's key; its public key is ids[i]
	rng  *rand.Rand           // publishers and onion keys

	start      time.Duration // the first publication: the phase starts
	updates    []*regUpdate
	byID       map[identity.NodeID]*regUpdate // publisher -> its update
	publishers map[int]bool

	// msgIDs are the broadcast message IDs of every record published, to
	// attribute IHAVE and GRAFT bytes.
	msgIDs       map[broadcast.MessageID]struct{}
	publications int // Publish outputs carried (updates, refreshes, bumps)

	bytes       RegistryBytes // sent from start on
	neighborUps uint64        // NeighborUp outputs from start on
	// recordsPerHeld sums each RECORDS message's bytes over the records
	// published by then: RECORDS bytes per record in circulation.
	recordsPerHeld float64
}

// regUpdate is what is measured of one publication.
type regUpdate struct {
	k, node int
	id      identity.NodeID
	seq     uint64
	at      time.Duration
	size    int      // encoded record bytes
	live    int      // other nodes alive (and joined) when it was published
	got     []uint64 // bitset: nodes that took it
	hits    []regHit // in time order
}

// regHit is one node taking an update, after delay.
type regHit struct {
	node  int32
	delay time.Duration
}

// keyStream is the random stream of node keys ("key").
const keyStream = 0x6b6579

// simKeys derives n Ed25519 keys from the seed: the same seed gives the
// same keys, and so the same node IDs and signatures.
func simKeys(seed uint64, n int) []ed25519.PrivateKey {
	rng := des.NewRand(seed, keyStream)
	keys := make([]ed25519.PrivateKey, n)
	var b [ed25519.SeedSize]byte
	for i := range keys {
		for k := 0; k < len(b); k += 8 {
			binary.LittleEndian.PutUint64(b[k:], rng.Uint64())
		}
		keys[i] = ed25519.NewKeyFromSeed(b[:])
	}
	return keys
}

// newRegSim derives the nodes' keys and makes their public keys the node
// IDs (the registry signs, so IDs must be real keys).
func newRegSim(s *Sim, cfg registry.Config) (*regSim, error) {
	r := &regSim{
		s:          s,
		cfg:        cfg,
		keys:       simKeys(s.sc.Seed, s.sc.Nodes),
		rng:        des.NewRand(s.sc.Seed, 0x72656770), // "regp"
		byID:       make(map[identity.NodeID]*regUpdate),
		publishers: make(map[int]bool),
		msgIDs:     make(map[broadcast.MessageID]struct{}),
	}
	for i, k := range r.keys {
		id, err := identity.IDFromPublicKey(k.Public().(ed25519.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("overlay: node key %d: %w", i, err)
		}
		if _, dup := s.byID[id]; dup {
			return nil, fmt.Errorf("overlay: node keys %d and %d are equal", s.byID[id], i)
		}
		s.ids[i] = id
		s.byID[id] = int32(i)
	}
	return r, nil
}

// sampleRecord is the record the simulator publishes for a node: what a
// node behind an endpoint-independent NAT would say, with two listen
// addresses (IPv4 and IPv6), one reflexive address, two services, its
// neighbours and an onion key.
func sampleRecord(i int, addr netip.AddrPort, neighbors []identity.NodeID, onion [32]byte) registry.Record {
	v6 := netip.AddrFrom16([16]byte{0xfd, 0x6d, 0x79, 0x63, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
	refl := netip.AddrFrom4([4]byte{198, 51, 100, byte(i%254 + 1)})
	return registry.Record{
		Mapping:   registry.NATEndpointIndependent,
		Filtering: registry.NATAddressAndPortDependent,
		Listen:    []netip.AddrPort{addr, netip.AddrPortFrom(v6, addr.Port())},
		Reflexive: []netip.AddrPort{netip.AddrPortFrom(refl, uint16(20000+i%40000))},
		OnionKey:  onion,
		Services:  []registry.Service{{Name: "http", Meta: []byte("/")}, {Name: "ssh"}},
		Neighbors: neighbors,
	}
}

// publish has a random live node that has not published yet sign and
// publish its record (update k), as the node's updateLocal does.
func (r *regSim) publish(k int) {
	s := r.s
	now := s.eng.Now()
	var cands []int
	for i := range s.nodes {
		if s.eng.Alive(i) && s.joinT[i] <= now && !r.publishers[i] {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		return
	}
	i := cands[r.rng.IntN(len(cands))]
	r.publishers[i] = true
	n := s.nodes[i]
	t := epoch.Add(now)
	var onion [32]byte
	for j := 0; j < len(onion); j += 8 {
		binary.LittleEndian.PutUint64(onion[j:], r.rng.Uint64())
	}
	var nbrs []identity.NodeID
	for _, p := range n.mem.Active() {
		if len(nbrs) < registry.MaxNeighbors {
			nbrs = append(nbrs, p.ID)
		}
	}
	out, err := n.reg.SetLocal(t, sampleRecord(i, s.peers[i].Addrs[0], nbrs, onion))
	if err != nil {
		s.buildErr = err
		return
	}
	own, _ := n.reg.Lookup(t, s.ids[i])
	u := &regUpdate{k: k, node: i, id: s.ids[i], seq: own.Seq, at: now, got: make([]uint64, (len(s.nodes)+63)/64)}
	for _, o := range out {
		if p, ok := o.(registry.Publish); ok {
			u.size = len(p.Payload)
		}
	}
	for j := range s.nodes {
		if j != i && s.eng.Alive(j) && s.joinT[j] <= now {
			u.live++
		}
	}
	r.updates = append(r.updates, u)
	r.byID[u.id] = u
	n.doRegistry(t, out)
}

// changed records a Changed output at node n: it took the update of
// c.ID once it holds that update's Seq or a later one.
func (r *regSim) changed(n *Node, c registry.Changed) {
	u := r.byID[c.ID]
	if c.Removed || u == nil || n.idx == u.node {
		return
	}
	s, i := r.s, n.idx
	w, bit := i/64, uint64(1)<<(i%64)
	if u.got[w]&bit != 0 || s.born[i] > u.at || s.joinT[i] > u.at {
		return // already counted, or not alive and joined at the publication
	}
	now := s.eng.Now()
	if rec, ok := n.reg.Lookup(epoch.Add(now), c.ID); !ok || rec.Seq < u.seq {
		return
	}
	u.got[w] |= bit
	u.hits = append(u.hits, regHit{node: int32(i), delay: now - u.at})
}

// published notes a record's broadcast message ID.
func (r *regSim) published(id broadcast.MessageID) {
	r.msgIDs[id] = struct{}{}
	r.publications++
}

func (r *regSim) neighborUp() {
	if r.s.eng.Now() >= r.start {
		r.neighborUps++
	}
}

// countBroadcastSend adds the registry's share of a broadcast message
// sent at now: a GOSSIP on the registry topic; the announcements of
// registry messages in an IHAVE (the whole IHAVE when all its
// announcements are); a GRAFT for a registry message; and, from the start
// of the phase, when no other broadcast is under way, every PRUNE and
// every GRAFT that names no message (tree repair the registry's GOSSIPs
// caused).
func (r *regSim) countBroadcastSend(now time.Duration, msg []byte) {
	if r.publications == 0 || len(msg) == 0 {
		return
	}
	switch broadcast.MsgType(msg[0]) {
	case broadcast.TypePrune:
		if now >= r.start {
			r.bytes.Prune += uint64(len(msg))
		}
		return
	case broadcast.TypeGossip, broadcast.TypeIHave, broadcast.TypeGraft:
	default:
		return
	}
	m, err := broadcast.ParseMessage(msg)
	if err != nil {
		return
	}
	switch m := m.(type) {
	case broadcast.Gossip:
		if m.Topic == registryTopic {
			r.bytes.Gossip += uint64(len(msg))
		}
	case broadcast.IHave:
		ours := 0
		for _, a := range m.Announcements {
			if _, ok := r.msgIDs[a.ID]; ok {
				ours++
			}
		}
		switch {
		case ours == len(m.Announcements):
			r.bytes.IHave += uint64(len(msg))
		case ours > 0:
			r.bytes.IHave += uint64(ours * ihaveEntryLen)
		}
	case broadcast.Graft:
		if !m.HasID {
			if now >= r.start {
				r.bytes.Graft += uint64(len(msg))
			}
		} else if _, ok := r.msgIDs[m.ID]; ok {
			r.bytes.Graft += uint64(len(msg))
		}
	}
}

// ihaveEntryLen is the bytes of one IHAVE announcement: message ID and
// round (broadcast's wire format).
const ihaveEntryLen = broadcast.MessageIDLen + 2

// countRegistrySend counts an anti-entropy message sent at now.
func (r *regSim) countRegistrySend(now time.Duration, msg []byte) {
	if now < r.start || len(msg) == 0 {
		return
	}
	switch registry.MsgType(msg[0]) {
	case registry.MsgDigest:
		r.bytes.Digest += uint64(len(msg))
	case registry.MsgRecords:
		r.bytes.Records += uint64(len(msg))
		if len(r.updates) > 0 {
			r.recordsPerHeld += float64(len(msg)) / float64(len(r.updates))
		}
	}
}
