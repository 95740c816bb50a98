package mycelium

import (
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/mycelium-net/mycelium/broadcast"
	"github.com/mycelium-net/mycelium/internal/wire"
	"github.com/mycelium-net/mycelium/membership"
	"github.com/mycelium-net/mycelium/registry"
)

// The registry: every node publishes a record signed with its key (its
// addresses, role and services), spread over the broadcast tree on the
// reserved topic registryTopic and repaired by anti-entropy with each new
// neighbour (overlay frames of wire.LayerRegistry). The machine lives on
// the overlay driver's goroutine, like membership and broadcast.

// registryTopic is the broadcast topic that carries node records. Topics
// starting with reservedTopicPrefix are not for users.
const (
	registryTopic       = "mycelium.registry"
	reservedTopicPrefix = "mycelium."
)

// registryRepublishDelay spaces the re-publications of our record that
// changes of the active view cause (the record lists our neighbours).
const registryRepublishDelay = time.Minute

// leaveTimeout bounds how long Close waits for the tombstone of a graceful
// leave to be written to the neighbours.
const leaveTimeout = time.Second

// ErrReservedTopic is returned by Broadcast and Subscribe for a topic that
// starts with "mycelium.": those carry the node's own traffic.
var ErrReservedTopic = errors.New("mycelium: topics starting with \"mycelium.\" are reserved")

// Record is what the registry holds about one node, as that node signed it.
type Record = registry.Record

func checkUserTopic(topic string) error {
	if strings.HasPrefix(topic, reservedTopicPrefix) {
		return ErrReservedTopic
	}
	return broadcast.ValidateTopic(topic)
}

func newRegistry(n *Node, rng *rand.Rand) (*registry.Machine, error) {
	return registry.New(ed25519.PrivateKey(n.cfg.Key.Private()), n.cfg.Registry, rng)
}

// applyReg performs registry outputs in order.
func (o *overlay) applyReg(outs []registry.Output) {
	for _, out := range outs {
		switch out := out.(type) {
		case registry.Publish:
			_, bouts, err := o.bc.Broadcast(time.Now(), registryTopic, out.Payload)
			if err != nil {
				o.dropped.Add(1)
				continue
			}
			o.applyBC(bouts)
		case registry.Send:
			o.send(out.To, wire.LayerRegistry, out.Msg)
		case registry.SetTimer:
			o.setTimer(out.At, func() { o.applyReg(o.reg.HandleTimer(time.Now(), out.Timer)) })
		case registry.Changed:
			o.recordChanged(out)
		}
	}
}

// recordChanged makes a node's published addresses dialable, so that
// Dial works with its ID alone.
func (o *overlay) recordChanged(c registry.Changed) {
	o.notifyWatches(c)
	if c.Removed || c.ID == o.n.id {
		return
	}
	r, ok := o.reg.Lookup(time.Now(), c.ID)
	if !ok {
		return
	}
	for _, a := range slices.Concat(r.Listen, r.Reflexive) {
		o.n.peers.addAddr(c.ID, net.UDPAddrFromAddrPort(a), false)
	}
}

// updateLocal signs and publishes our record as the node now is.
func (o *overlay) updateLocal() {
	var svcs []registry.Service
	for _, s := range o.n.services() {
		if registry.ValidServiceName(s) == nil && len(svcs) < registry.MaxServices {
			svcs = append(svcs, registry.Service{Name: s})
		}
	}
	var nbrs []NodeID
	for _, p := range o.mem.Active() {
		if len(nbrs) < registry.MaxNeighbors {
			nbrs = append(nbrs, p.ID)
		}
	}
	r := registry.Record{
		// Behind a NAT (as far as discovery knows) we take no inbound
		// connections; until a round has had an answer we say we do.
		Inbound:    o.nat.public || o.nat.observers == 0,
		Mapping:    o.nat.mapping,
		Filtering:  o.nat.filtering,
		Reflexive:  o.nat.reflexive[:min(len(o.nat.reflexive), registry.MaxAddrs)],
		Listen:     o.mem.Self().Addrs,
		Relay:      o.n.cfg.Relay,
		Services:   svcs,
		Neighbors:  nbrs,
		HomeRelays: slices.Clone(o.homes),
	}
	if o.n.cfg.Relay {
		// Capacity and load are circuits: what path selection weighs. A
		// draining relay says it is full, so paths leave it out.
		relays, draining := o.n.circ.table.Load()
		r.RelayCapacity = uint32(o.n.cfg.RelayResources.MaxCircuits)
		r.RelayLoad = uint32(relays)
		if draining {
			r.RelayLoad = r.RelayCapacity
		}
		o.publishedLoadNow.Store(r.RelayLoad)
	}
	copy(r.OnionKey[:], o.onionPub)
	outs, err := o.reg.SetLocal(time.Now(), r)
	if err != nil {
		o.n.log.Warn("registry: cannot publish our record", "err", err)
		return
	}
	o.applyReg(outs)
}

// viewChanged schedules one re-publication of our record, at most every
// registryRepublishDelay, after the active view changed.
func (o *overlay) viewChanged() {
	if o.republishArmed {
		return
	}
	o.republishArmed = true
	o.setTimer(time.Now().Add(registryRepublishDelay), func() {
		o.republishArmed = false
		o.updateLocal()
	})
}

// servicesChanged re-publishes our record after a Listen or a listener's
// Close. It does not wait.
func (n *Node) servicesChanged() {
	if n.overlay == nil {
		return
	}
	n.spawn(func() { n.overlay.post(n.overlay.updateLocal) })
}

// leave publishes our tombstone and closes every overlay link after the
// frames already queued, waits (at most leaveTimeout) for the writers to
// hand them to QUIC, then lingers two round trips of the slowest peer
// (within the same bound) so the packets are delivered and acknowledged
// before Close sends CONNECTION_CLOSE, which makes a peer drop stream
// data it has not read yet.
func (o *overlay) leave() {
	deadline := time.Now().Add(leaveTimeout)
	done, ok := query(o, func() []chan struct{} {
		o.applyReg(o.reg.Leave(time.Now()))
		var done []chan struct{}
		for _, l := range o.links {
			l.closing = true
			o.closeLink(l)
			done = append(done, l.done)
		}
		return done
	})
	if !ok {
		return
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for _, d := range done {
		select {
		case <-d:
		case <-t.C:
			return
		}
	}
	var rtt time.Duration
	for _, p := range o.n.peers.snapshot() {
		rtt = max(rtt, p.pc.qc.ConnectionStats().SmoothedRTT)
	}
	linger := min(2*rtt+10*time.Millisecond, time.Until(deadline))
	if linger <= 0 {
		return
	}
	t.Reset(linger)
	select {
	case <-t.C:
	case <-o.n.ctx.Done():
	}
}

// query runs f on the driver goroutine and returns its result; false if
// the node closed first. f's result comes back by channel only, so a
// closure that runs after the caller gave up touches nothing it shares.
func query[T any](o *overlay, f func() T) (T, bool) {
	ch := make(chan T, 1)
	var zero T
	if !o.post(func() { ch <- f() }) {
		return zero, false
	}
	select {
	case v := <-ch:
		return v, true
	case <-o.n.ctx.Done():
		return zero, false
	}
}

// Lookup returns the registry's record of the node id: where it can be
// reached, its role and its services. ok is false when the registry holds
// no live record of it (never heard of, expired, or left).
func (n *Node) Lookup(id NodeID) (Record, bool) {
	type res struct {
		r  Record
		ok bool
	}
	v, _ := query(n.overlay, func() res {
		r, ok := n.overlay.reg.Lookup(time.Now(), id)
		return res{r, ok}
	})
	return v.r, v.ok
}

// LookupService returns the nodes whose records offer service, sorted.
func (n *Node) LookupService(service string) []NodeID {
	ids, _ := query(n.overlay, func() []NodeID { return n.overlay.reg.Services(time.Now(), service) })
	return ids
}

// Relays returns the relay-capable nodes the registry knows, least loaded
// and freshest first.
func (n *Node) Relays() []Record {
	rs, _ := query(n.overlay, func() []Record { return n.overlay.reg.Relays(time.Now()) })
	return rs
}

// Records returns every live record the registry holds, this node's own
// included, sorted by ID.
func (n *Node) Records() []Record {
	rs, _ := query(n.overlay, func() []Record { return n.overlay.reg.Records(time.Now()) })
	return rs
}

// RegistryChange is one change of the registry: a record was added or
// replaced (Removed false), or it expired, was withdrawn by a graceful
// leave or was evicted (Removed true).
type RegistryChange struct {
	ID      NodeID
	Removed bool
}

// registryWatchBuffer is how many changes a watcher may fall behind before
// further ones are dropped (counted in Stats as overlay_dropped). A watcher
// that re-reads the registry on each change still sees the final state:
// with a full buffer, a change is waiting for it.
const registryWatchBuffer = 256

// RegistryWatch receives the registry's changes from the moment it is
// made.
type RegistryWatch struct {
	// C delivers the changes. It is closed by Close and when the node
	// closes.
	C <-chan RegistryChange

	c      chan RegistryChange
	o      *overlay
	closed bool // guarded by o.subMu
}

// WatchRegistry returns a watch on the registry's changes.
func (n *Node) WatchRegistry() *RegistryWatch {
	o := n.overlay
	w := &RegistryWatch{c: make(chan RegistryChange, registryWatchBuffer), o: o}
	w.C = w.c
	o.subMu.Lock()
	defer o.subMu.Unlock()
	if n.ctx.Err() != nil {
		w.closed = true
		close(w.c)
		return w
	}
	o.watches = append(o.watches, w)
	return w
}

// Close stops the watch and closes C. It is idempotent.
func (w *RegistryWatch) Close() {
	w.o.subMu.Lock()
	defer w.o.subMu.Unlock()
	w.o.watches = slices.DeleteFunc(w.o.watches, func(x *RegistryWatch) bool { return x == w })
	w.closeLocked()
}

func (w *RegistryWatch) closeLocked() {
	if !w.closed {
		w.closed = true
		close(w.c)
	}
}

func (o *overlay) notifyWatches(c registry.Changed) {
	o.subMu.Lock()
	defer o.subMu.Unlock()
	for _, w := range o.watches {
		select {
		case w.c <- RegistryChange{ID: c.ID, Removed: c.Removed}:
		default:
			o.dropped.Add(1)
		}
	}
}

// lonelyChecks is how many checks in a row (one per shuffle interval) must
// find the active view empty before the node rejoins through a node from
// its registry.
const lonelyChecks = 2

// armLonelyCheck schedules the next lonely check.
func (o *overlay) armLonelyCheck() {
	o.setTimer(time.Now().Add(o.n.cfg.Membership.ShuffleInterval), o.lonelyCheck)
}

// lonelyCheck rejoins the overlay through a random node of the registry
// when the active view has stayed empty. HyParView alone rejoins only
// through its last contact, which may be gone for good (a bootstrap peer
// that left): then the node would stay alone although its registry names
// live nodes.
func (o *overlay) lonelyCheck() {
	defer o.armLonelyCheck()
	o.checkHomes()
	if len(o.mem.Active()) > 0 {
		o.alone = 0
		o.splitCheck()
		return
	}
	if o.alone++; o.alone < lonelyChecks {
		return
	}
	o.alone = 0
	var cands []membership.Peer
	for _, r := range o.reg.Records(time.Now()) {
		addrs := slices.Concat(r.Listen, r.Reflexive)
		if r.ID != o.n.id && len(addrs) > 0 && r.Inbound {
			cands = append(cands, membership.Peer{ID: r.ID, Addrs: addrs[:min(len(addrs), membership.MaxAddrs)]})
		}
	}
	if len(cands) == 0 {
		return
	}
	p := cands[o.rng.IntN(len(cands))]
	o.n.log.Info("alone in the overlay: rejoining through a node of the registry", "peer", p.ID.Short())
	o.n.stats.registryRejoins.Add(1)
	o.apply(o.mem.Join(time.Now(), p))
}

// splitChecks is how many lonely checks in a row must find our part of
// the overlay cut off before the node joins through a node outside it;
// maxSplitBackoff bounds the checks skipped after such a join (the wait
// doubles from 1 after each, and a healthy check resets it).
// splitMinMapped is the smallest mapped overlay the check acts in (a
// guess: in a handful of nodes passive views hold everyone, and
// HyParView's own repairs suffice).
const (
	splitChecks     = 2
	maxSplitBackoff = 8
	splitMinMapped  = 12
)

// splitCheck rejoins the overlay through an inbound-capable node of the
// largest other component of the active-view graph when the records show
// one at least as large as ours (registry.ComponentOf, Component.Split).
//
// HyParView's own repairs keep a node's active view filled but cannot
// see a small part of the overlay whose members hold only each other:
// with most nodes behind NATs, such islands of 2 to 5 nodes formed in the
// 200-node netlab and stayed, and broadcasts never reached them, so their
// records of everyone else went stale. A JOIN is the one request a full
// node must take (it evicts a random neighbour), and its FORWARD_JOIN
// walks add more links into the rest of the overlay.
func (o *overlay) splitCheck() {
	if o.splitWait > 0 {
		o.splitWait--
		return
	}
	var active []NodeID
	for _, p := range o.mem.Active() {
		active = append(active, p.ID)
	}
	now := time.Now()
	recs := o.reg.Records(now)
	c := registry.ComponentOf(recs, o.n.id, active)
	if !c.Split(splitMinMapped) || len(c.Outside) == 0 {
		o.split = 0
		o.splitBackoff = 0
		return
	}
	if o.split++; o.split < splitChecks {
		return
	}
	o.split = 0
	o.splitBackoff = min(max(1, 2*o.splitBackoff), maxSplitBackoff)
	o.splitWait = o.splitBackoff
	byID := make(map[NodeID]registry.Record, len(recs))
	for _, r := range recs {
		byID[r.ID] = r
	}
	var cands []membership.Peer
	for _, id := range c.Outside {
		r := byID[id]
		if addrs := slices.Concat(r.Listen, r.Reflexive); len(addrs) > 0 {
			cands = append(cands, membership.Peer{ID: id, Addrs: addrs[:min(len(addrs), membership.MaxAddrs)]})
		}
	}
	if len(cands) == 0 {
		return
	}
	p := cands[o.rng.IntN(len(cands))]
	o.n.log.Info("our part of the overlay looks cut off: rejoining through a node outside it",
		"component", c.Size, "largest_other", c.Largest, "mapped", c.Mapped, "peer", p.ID.Short())
	o.n.stats.partitionRejoins.Add(1)
	o.apply(o.mem.Join(now, p))
}
