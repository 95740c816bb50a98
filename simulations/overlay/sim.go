package overlay

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"time"

	"github.com/mycelium-net/mycelium/broadcast"
	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/membership"
	"github.com/mycelium-net/mycelium/nat"
	"github.com/mycelium-net/mycelium/registry"
	"github.com/mycelium-net/mycelium/simulations/des"
)

// topic is the broadcast topic of every simulated message.
const topic = "sim"

// Options are what a caller of Run may add to a Scenario.
type Options struct {
	// Progress, if not nil, is called about once per simulated second with
	// the virtual time and the time the run ends at.
	Progress func(now, end time.Duration)
	// Membership, Broadcast and Registry configure the machines; nil
	// means their packages' DefaultConfig.
	Membership *membership.Config
	Broadcast  *broadcast.Config
	Registry   *registry.Config
	// Trace, if not nil, receives the engine's text trace (slow).
	Trace io.Writer
}

// Sim is a running simulation: an engine, its nodes, and what is measured.
type Sim struct {
	sc     Scenario
	eng    *des.Engine
	memCfg membership.Config
	bcCfg  broadcast.Config
	rng    *rand.Rand // the scenario's choices: contacts, victims, senders
	reg    *regSim    // the registry phase, or nil
	circ   *circSim   // the circuit phase, or nil

	natMix   []NATShare     // the NAT mix, or nil
	natClass []uint8        // each node's class, an index into natMix
	natBeh   []nat.Behavior // the behaviour of each class of natMix

	ids   []identity.NodeID
	peers []membership.Peer
	byID  map[identity.NodeID]int32
	nodes []*Node
	lives []uint32        // how many times each node was started
	born  []time.Duration // when each node's current life began
	joinT []time.Duration // when each node first joins

	sender int // the fixed sender, or -1
	bcasts []*bcast

	failAt      time.Duration
	disrupted   bool          // a failure or partition is waiting to heal
	connectedAt time.Duration // first time the overlay was one component after failAt, or -1
	watching    bool

	heapBase float64 // live heap before the simulation was built

	unknownOutputs int
	unknownPeers   int
	buildErr       error
}

// New builds a simulation of sc. It does not run it.
func New(sc Scenario, opt Options) (*Sim, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	base := heapAlloc()
	cfg := des.DefaultConfig()
	cfg.Trace = opt.Trace
	cfg.Seed = sc.Seed
	cfg.Latency = des.Latency{Base: sc.Latency.D(), Spread: sc.LatencySpread.D(), Jitter: sc.Jitter.D()}
	if cfg.Latency == (des.Latency{}) {
		cfg.Latency.Base = 1 // a zero Latency means the default; this means none
	}
	cfg.Loss = sc.Loss
	cfg.ConnectTimeout = sc.ConnectTimeout.D()
	cfg.DetectDelay = sc.Detect.D()
	eng, err := des.New(cfg)
	if err != nil {
		return nil, err
	}
	s := &Sim{
		sc:          sc,
		eng:         eng,
		memCfg:      membership.DefaultConfig(),
		bcCfg:       broadcast.DefaultConfig(),
		rng:         des.NewRand(sc.Seed, 0x7363656e), // "scen"
		byID:        make(map[identity.NodeID]int32, sc.Nodes),
		sender:      -1,
		connectedAt: -1,
		heapBase:    base,
	}
	if opt.Membership != nil {
		s.memCfg = *opt.Membership
	}
	if opt.Broadcast != nil {
		s.bcCfg = *opt.Broadcast
	}
	s.ids = make([]identity.NodeID, sc.Nodes)
	s.peers = make([]membership.Peer, sc.Nodes)
	s.nodes = make([]*Node, sc.Nodes)
	s.lives = make([]uint32, sc.Nodes)
	s.born = make([]time.Duration, sc.Nodes)
	s.joinT = make([]time.Duration, sc.Nodes)
	if sc.RegistryUpdates > 0 {
		regCfg := registry.DefaultConfig()
		if opt.Registry != nil {
			regCfg = *opt.Registry
		}
		if s.reg, err = newRegSim(s, regCfg); err != nil {
			return nil, err
		}
	}
	idRand := des.NewRand(sc.Seed, 0x6964) // "id"
	for i := range s.ids {
		for s.reg == nil {
			var b [identity.IDLen]byte
			for k := 0; k < len(b); k += 8 {
				binary.LittleEndian.PutUint64(b[k:], idRand.Uint64())
			}
			id, err := identity.IDFromPublicKey(b[:])
			if _, dup := s.byID[id]; err != nil || dup {
				continue
			}
			s.ids[i] = id
			s.byID[id] = int32(i)
			break
		}
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4242)
		s.peers[i] = membership.Peer{ID: s.ids[i], Addrs: []netip.AddrPort{addr}}
	}
	if s.natMix, _ = ParseNATMix(sc.NATMix); s.natMix != nil {
		s.natClass = drawNAT(sc.Seed, sc.Nodes, s.natMix)
		for _, m := range s.natMix {
			b, _ := natBehavior(m.Class)
			s.natBeh = append(s.natBeh, b)
		}
	}
	if sc.CircuitDials > 0 {
		s.circ = newCircSim(s)
	}
	for i := range s.nodes {
		n, err := s.newNode(i)
		if err != nil {
			return nil, err
		}
		s.nodes[i] = n
		if got := eng.AddNode(n); got != i {
			return nil, fmt.Errorf("overlay: engine gave node %d index %d", i, got)
		}
		n.start()
	}
	s.schedule()
	return s, nil
}

// newNode makes fresh machines for node i, each with its own random
// stream: one per node and life.
func (s *Sim) newNode(i int) (*Node, error) {
	life := uint64(s.lives[i])
	s.lives[i]++
	s.born[i] = s.eng.Now()
	stream := uint64(i)<<20 | life<<2
	mem, err := membership.New(s.peers[i], s.memCfg, des.NewRand(s.sc.Seed, stream|1))
	if err != nil {
		return nil, err
	}
	bc, err := broadcast.New(s.ids[i], s.bcCfg, des.NewRand(s.sc.Seed, stream|2))
	if err != nil {
		return nil, err
	}
	n := &Node{sim: s, idx: i, mem: mem, bc: bc}
	if s.reg != nil {
		if n.reg, err = registry.New(s.reg.keys[i], s.reg.cfg, des.NewRand(s.sc.Seed, stream|3)); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// index maps a node ID to its index.
func (s *Sim) index(id identity.NodeID) (int, bool) {
	i, ok := s.byID[id]
	if !ok {
		s.unknownPeers++
	}
	return int(i), ok
}

// Engine returns the simulation's engine.
func (s *Sim) Engine() *des.Engine { return s.eng }

// Node returns node i.
func (s *Sim) Node(i int) *Node { return s.nodes[i] }

// times of the timeline.
func (s *Sim) warmupStart() time.Duration { return s.sc.JoinSpan() + s.sc.Settle.D() }

func (s *Sim) failTime() time.Duration {
	if s.sc.FailAt > 0 {
		return s.sc.FailAt.D()
	}
	return s.warmupStart() + time.Duration(s.sc.WarmupBroadcasts)*s.sc.Interval.D()
}

func (s *Sim) lastBroadcast() time.Duration {
	return s.failTime() + time.Duration(max(s.sc.Broadcasts-1, 0))*s.sc.Interval.D()
}

// circuitStart is the time of the circuit phase: after the last
// broadcast's drain, when the overlay has settled after a failure.
func (s *Sim) circuitStart() time.Duration { return s.lastBroadcast() + s.sc.Drain.D() }

// registryStart is the time of the first record publication: after the
// last broadcast's drain, so that no other broadcast is under way, and
// after the circuit phase's, so that the overlay has healed from the
// relays' crash.
func (s *Sim) registryStart() time.Duration {
	if s.circ != nil {
		return s.circuitStart() + s.sc.Drain.D()
	}
	return s.circuitStart()
}

// End is the virtual time the run stops at.
func (s *Sim) End() time.Duration {
	end := s.registryStart()
	if s.sc.RegistryUpdates > 0 {
		end = s.registryStart() + time.Duration(s.sc.RegistryUpdates-1)*s.sc.RegistryInterval.D() + s.sc.Drain.D()
	}
	return max(end, s.sc.Duration.D())
}

// schedule puts the scenario's actions on the engine's clock.
func (s *Sim) schedule() {
	sc, e := s.sc, s.eng
	if sc.Sender == "fixed" {
		s.sender = 0
	}
	// Joins: node i through a random node that joined before it.
	for i := 1; i < sc.Nodes; i++ {
		at := time.Duration(int64(sc.JoinSpan()) * int64(i) / int64(sc.Nodes))
		s.joinT[i] = at
		e.At(at, func() {
			s.nodes[i].join(s.randomLive(i))
		})
	}
	// Warm-up broadcasts.
	k := 0
	for w := range sc.WarmupBroadcasts {
		at := s.warmupStart() + time.Duration(w)*sc.Interval.D()
		kk := k
		e.At(at, func() { s.originate(kk, false) })
		k++
	}
	// The failure, then the measured broadcasts.
	s.failAt = s.failTime()
	if sc.Fail > 0 {
		e.At(s.failAt, s.fail)
	}
	for b := range sc.Broadcasts {
		at := s.failAt + time.Duration(b)*sc.Interval.D()
		kk := k
		e.At(at, func() { s.originate(kk, true) })
		k++
	}
	if sc.Churn > 0 {
		period := time.Duration(float64(time.Minute) / (sc.Churn * float64(sc.Nodes)))
		for at := s.failAt; at < s.End(); at += max(period, time.Millisecond) {
			e.At(at, s.churn)
		}
	}
	if s.circ != nil {
		e.At(s.circuitStart(), s.circ.run)
	}
	if s.reg != nil {
		s.reg.start = s.registryStart()
		for k := range sc.RegistryUpdates {
			e.At(s.reg.start+time.Duration(k)*sc.RegistryInterval.D(), func() { s.reg.publish(k) })
		}
	}
	if sc.Partition > 0 {
		e.At(sc.PartitionAt.D(), s.partition)
		if sc.HealAt > 0 {
			e.At(sc.HealAt.D(), func() {
				s.eng.Heal()
				s.watch()
			})
		}
	}
}

// randomLive returns a random live node among those that joined before
// node i (or any live one but i, for i < 0), or 0.
func (s *Sim) randomLive(i int) int {
	n := i
	if n < 0 || n > len(s.nodes) {
		n = len(s.nodes)
	}
	for range 64 {
		c := s.rng.IntN(max(n, 1))
		if c != i && s.eng.Alive(c) {
			return c
		}
	}
	for c := range n {
		if c != i && s.eng.Alive(c) {
			return c
		}
	}
	return 0
}

// spared reports whether node i is kept out of the failure and the
// churn: the fixed sender, and the dedicated relays (which fail only by
// Scenario.RelayFail).
func (s *Sim) spared(i int) bool {
	return i == s.sender || s.circ != nil && s.circ.relay[i]
}

// fail crashes a Fail fraction of the nodes at once, never a spared one.
func (s *Sim) fail() {
	n := int(s.sc.Fail*float64(s.sc.Nodes) + 0.5)
	perm := s.rng.Perm(s.sc.Nodes)
	for _, i := range perm {
		if n == 0 {
			break
		}
		if s.spared(i) || !s.eng.Alive(i) {
			continue
		}
		s.eng.Crash(i)
		n--
	}
	s.disrupted = true
	s.connectedAt = -1
	s.watch()
}

// churn crashes one random live node (never a spared one) and restarts
// one random dead node, which joins again through a random live node.
func (s *Sim) churn() {
	var dead []int
	for i := range s.nodes {
		if !s.eng.Alive(i) {
			dead = append(dead, i)
		}
	}
	if v := s.randomLive(-1); !s.spared(v) {
		s.eng.Crash(v)
	}
	if len(dead) > 0 {
		i := dead[s.rng.IntN(len(dead))]
		n, err := s.newNode(i)
		if err != nil {
			s.buildErr = err
			return
		}
		s.nodes[i] = n
		s.eng.Restart(i, n)
		n.start()
		n.join(s.randomLive(i))
	}
}

// partition cuts a Partition fraction of the nodes (never the fixed
// sender) off from the rest.
func (s *Sim) partition() {
	cut := make([]bool, s.sc.Nodes)
	n := int(s.sc.Partition*float64(s.sc.Nodes) + 0.5)
	for _, i := range s.rng.Perm(s.sc.Nodes) {
		if n == 0 {
			break
		}
		if i != s.sender {
			cut[i] = true
			n--
		}
	}
	s.eng.Partition(func(i int) int {
		if cut[i] {
			return 1
		}
		return 0
	})
}

// watch measures connectivity now (after the actions queued for this
// instant) and then every CheckEvery until the live overlay is one
// component, and notes when it first is.
func (s *Sim) watch() {
	if s.watching {
		return
	}
	s.watching = true
	var check func()
	check = func() {
		if c := s.components(); c.Components == 1 {
			s.watching = false
			if s.connectedAt < 0 {
				s.connectedAt = s.eng.Now()
			}
			return
		}
		s.eng.At(s.eng.Now()+s.sc.CheckEvery.D(), check)
	}
	s.eng.At(s.eng.Now(), check)
}

// Run runs the simulation to its end, or until ctx is done, and returns
// its results.
func (s *Sim) Run(ctx context.Context, opt Options) (*Result, error) {
	start := time.Now()
	end := s.End()
	for s.eng.Now() < end {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.eng.Run(min(s.eng.Now()+time.Second, end))
		if s.buildErr != nil {
			return nil, s.buildErr
		}
		if opt.Progress != nil {
			opt.Progress(s.eng.Now(), end)
		}
	}
	wall := time.Since(start)
	return s.result(wall)
}

// Run builds and runs sc.
func Run(ctx context.Context, sc Scenario, opt Options) (*Result, error) {
	s, err := New(sc, opt)
	if err != nil {
		return nil, err
	}
	return s.Run(ctx, opt)
}

// heapAlloc is the live heap after a collection.
func heapAlloc() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc)
}
