package mycelium

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mycelium-net/mycelium/broadcast"
	"github.com/mycelium-net/mycelium/internal/wire"
	"github.com/mycelium-net/mycelium/membership"
	"github.com/mycelium-net/mycelium/nat"
	"github.com/mycelium-net/mycelium/registry"
)

// The overlay driver runs the membership (HyParView) and broadcast
// (Plumtree) state machines over the node's QUIC connections. One
// goroutine, run, owns both machines; everything else talks to it through
// o.in. A membership "link" to a peer is this node's outbound overlay
// stream to it (a stream to the reserved service wire.OverlayService over
// the peer connection); the peer's stream to us carries its messages the
// other way. Messages are overlay frames (internal/wire).

const (
	overlayInputQueue  = 1024 // inputs waiting for the driver goroutine
	overlaySendQueue   = 256  // frames waiting for one peer's writer
	overlayLinkTimeout = 10 * time.Second
)

// overlay is the node's driver of the protocol machines.
type overlay struct {
	n   *Node
	in  chan func() // closures run on the driver goroutine
	mem *membership.Machine
	bc  *broadcast.Machine
	reg *registry.Machine
	rng *rand.Rand // the driver's own choices (rejoin targets)
	// onionPub is the node's X25519 circuit key, published in its record.
	onionPub    []byte
	prober      *nat.Prober      // reflexive address discovery
	nat         natState         // what the last discovery round found
	natGen      int              // bumped to cancel the armed discovery round
	natConfirms int              // quick re-checks of an endpoint-dependent verdict so far
	local       []netip.AddrPort // local addresses at the last check (natdriver.go)
	homes       []NodeID         // home relays we hold links to (circuits.go)
	homing      bool             // a home relay search is under way

	// Owned by the driver goroutine.
	links          map[NodeID]*overlayLink
	timers         map[*time.Timer]struct{}
	republishArmed bool // a re-publication of our record is scheduled
	// publishedLoadNow is the RelayLoad in the record we published last,
	// read without the driver by circuitLoadChanged.
	publishedLoadNow atomic.Uint32
	alone            int // lonely checks in a row that found the active view empty
	split            int // lonely checks in a row that found our part of the overlay cut off
	splitWait        int // checks to skip before the next split check
	splitBackoff     int // splitWait after the next rejoin: doubles, up to maxSplitBackoff

	snap atomic.Pointer[overlaySnapshot]

	subMu   sync.Mutex
	subs    map[string][]*Subscription
	watches []*RegistryWatch

	dropped atomic.Uint64 // frames or deliveries dropped for a full queue
}

// overlayLink is this node's side of a membership link to one peer.
type overlayLink struct {
	peer    NodeID
	queue   chan []byte   // frames for the writer
	done    chan struct{} // closed when the writer has ended
	closing bool          // our own Disconnect: do not report its end
	up      bool          // the writer's stream is open (HandleConnected sent)
	ended   bool          // queue closed
}

type overlaySnapshot struct {
	active  []NodeID
	passive int
	mem     membership.Stats
	bc      broadcast.Stats
	known   int
	reg     registry.Stats
	nat     natState
}

func newOverlay(n *Node) (*overlay, error) {
	self := membership.Peer{ID: n.id}
	seed := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	mem, err := membership.New(self, n.cfg.Membership, seed)
	if err != nil {
		return nil, fmt.Errorf("mycelium: membership: %w", err)
	}
	bc, err := broadcast.New(n.id, n.cfg.Broadcast, seed)
	if err != nil {
		return nil, fmt.Errorf("mycelium: broadcast: %w", err)
	}
	reg, err := newRegistry(n, seed)
	if err != nil {
		return nil, fmt.Errorf("mycelium: registry: %w", err)
	}
	prober, err := nat.NewProber(nat.DefaultProberConfig(), seed)
	if err != nil {
		return nil, fmt.Errorf("mycelium: nat: %w", err)
	}
	o := &overlay{
		n: n, in: make(chan func(), overlayInputQueue), mem: mem, bc: bc, reg: reg,
		rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		onionPub: n.cfg.Key.OnionKey().PublicKey().Bytes(),
		prober:   prober,
		links:    map[NodeID]*overlayLink{}, timers: map[*time.Timer]struct{}{},
		subs: map[string][]*Subscription{},
	}
	o.snap.Store(&overlaySnapshot{})
	return o, nil
}

// advertise sets the addresses the node tells others, once the socket is
// bound: its local address when that is a specific IP. (Reflexive addresses
// come with the NAT layer.)
func (o *overlay) advertise(addr net.Addr) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return
	}
	ap := ua.AddrPort()
	if !ap.Addr().IsValid() || ap.Addr().IsUnspecified() {
		return
	}
	self := o.mem.Self()
	self.Addrs = []netip.AddrPort{netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
	o.mem.SetSelf(self)
}

// post hands f to the driver goroutine; it gives up when the node closes.
func (o *overlay) post(f func()) bool {
	select {
	case o.in <- f:
		return true
	case <-o.n.ctx.Done():
		return false
	}
}

// run is the driver goroutine.
func (o *overlay) run(bootstrap []Peer) {
	defer o.n.wg.Done()
	defer o.stop()
	o.applyReg(o.reg.Start(time.Now()))
	o.updateLocal()
	o.armLonelyCheck()
	o.armNATRound(natFirstRound)
	o.armLocalWatch()
	if len(bootstrap) > 0 {
		p := bootstrap[0]
		o.apply(o.mem.Join(time.Now(), o.peerOf(p)))
	}
	o.publish()
	for {
		select {
		case f := <-o.in:
			f()
			o.publish()
		case <-o.n.ctx.Done():
			return
		}
	}
}

func (o *overlay) peerOf(p Peer) membership.Peer {
	mp := membership.Peer{ID: p.ID}
	if ua, ok := p.Addr.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		mp.Addrs = []netip.AddrPort{netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
	}
	return mp
}

// stop ends the timers and the links' writers when the node closes.
func (o *overlay) stop() {
	for t := range o.timers {
		t.Stop()
	}
	for _, l := range o.links {
		o.closeLink(l)
	}
	o.subMu.Lock()
	for _, ss := range o.subs {
		for _, s := range ss {
			s.closeLocked()
		}
	}
	o.subs = map[string][]*Subscription{}
	for _, w := range o.watches {
		w.closeLocked()
	}
	o.watches = nil
	o.subMu.Unlock()
}

func (o *overlay) publish() {
	active := o.mem.Active()
	ids := make([]NodeID, len(active))
	for i, p := range active {
		ids[i] = p.ID
	}
	rs := o.reg.Stats()
	o.snap.Store(&overlaySnapshot{active: ids, passive: len(o.mem.Passive()), mem: o.mem.Stats(), bc: o.bc.Stats(),
		known: rs.Held - rs.Tombstones, reg: rs, nat: o.nat})
}

// apply performs membership outputs in order.
func (o *overlay) apply(outs []membership.Output) {
	now := time.Now()
	for _, out := range outs {
		switch out := out.(type) {
		case membership.Send:
			o.send(out.To.ID, wire.LayerMembership, out.Msg)
		case membership.Connect:
			o.connect(out.Peer)
		case membership.Disconnect:
			if l := o.links[out.Peer]; l != nil {
				l.closing = true
				o.closeLink(l)
			}
		case membership.SetTimer:
			o.setTimer(out.At, func() { o.apply(o.mem.HandleTimer(time.Now(), out.Timer)) })
		case membership.NeighborUp:
			o.applyBC(o.bc.HandleNeighborUp(now, out.Peer.ID))
			o.applyReg(o.reg.HandleNeighborUp(now, out.Peer.ID))
			o.viewChanged()
		case membership.NeighborDown:
			o.applyBC(o.bc.HandleNeighborDown(now, out.Peer))
			o.applyReg(o.reg.HandleNeighborDown(now, out.Peer))
			o.viewChanged()
		}
	}
}

// applyBC performs broadcast outputs in order.
func (o *overlay) applyBC(outs []broadcast.Output) {
	for _, out := range outs {
		switch out := out.(type) {
		case broadcast.Send:
			o.send(out.To, wire.LayerBroadcast, out.Msg)
		case broadcast.SetTimer:
			o.setTimer(out.At, func() { o.applyBC(o.bc.HandleTimer(time.Now(), out.Timer)) })
		case broadcast.Deliver:
			if out.Topic == registryTopic {
				o.applyReg(o.reg.HandleBroadcast(time.Now(), out.Payload))
				continue
			}
			o.deliver(out)
		}
	}
}

func (o *overlay) setTimer(at time.Time, fire func()) {
	var t *time.Timer
	t = time.AfterFunc(time.Until(at), func() {
		o.post(func() {
			delete(o.timers, t)
			fire()
		})
	})
	o.timers[t] = struct{}{}
}

// send queues one frame on the link to peer; without a link, or with its
// queue full, the frame is dropped (the protocols repair loss).
func (o *overlay) send(peer NodeID, layer byte, msg []byte) {
	l := o.links[peer]
	if l == nil || l.closing {
		o.dropped.Add(1)
		return
	}
	frame, err := wire.AppendOverlayFrame(nil, layer, msg)
	if err != nil {
		o.dropped.Add(1)
		return
	}
	select {
	case l.queue <- frame:
	default:
		o.dropped.Add(1)
	}
}

// connect opens (or reuses) the link to p and answers the machine with
// HandleConnected or HandleConnectFailed.
func (o *overlay) connect(p membership.Peer) {
	if l := o.links[p.ID]; l != nil && !l.closing {
		if l.up {
			o.apply(o.mem.HandleConnected(time.Now(), p.ID))
		}
		return // the writer is opening it; it answers when done
	}
	for _, a := range p.Addrs {
		o.n.peers.addAddr(p.ID, net.UDPAddrFromAddrPort(a), false)
	}
	l := &overlayLink{peer: p.ID, queue: make(chan []byte, overlaySendQueue), done: make(chan struct{})}
	o.links[p.ID] = l
	if !o.n.spawn(func() { o.write(l) }) {
		close(l.done)
		delete(o.links, p.ID)
	}
}

// write is a link's writer: it opens the stream, reports the outcome,
// then writes queued frames until the queue is closed.
func (o *overlay) write(l *overlayLink) {
	defer close(l.done)
	ctx, cancel := context.WithTimeout(o.n.ctx, overlayLinkTimeout)
	c, err := o.n.dialInternal(ctx, l.peer, wire.OverlayService)
	cancel()
	if err != nil {
		o.post(func() {
			current := o.links[l.peer] == l
			o.closeLink(l)
			if current && !l.closing {
				o.apply(o.mem.HandleConnectFailed(time.Now(), l.peer))
			}
		})
		for range l.queue { // drain until closeLink
		}
		return
	}
	defer c.Close()
	o.post(func() {
		if o.links[l.peer] == l && !l.closing {
			l.up = true
			o.apply(o.mem.HandleConnected(time.Now(), l.peer))
		}
	})
	// The stream's context ends when its connection closes (a drained
	// duplicate, an idle timeout): notice that at once, not at the next
	// write, or the link would look up while every frame is lost.
	var gone <-chan struct{}
	if sc, ok := c.(*streamConn); ok {
		gone = sc.s.Context().Done()
	}
	for {
		select {
		case frame, ok := <-l.queue:
			if !ok {
				c.(interface{ CloseWrite() error }).CloseWrite()
				return
			}
			if _, err := c.Write(frame); err != nil {
				o.post(func() { o.linkFailed(l) })
				for range l.queue {
				}
				return
			}
		case <-gone:
			o.post(func() { o.linkFailed(l) })
			for range l.queue {
			}
			return
		}
	}
}

// closeLink stops a link's writer after the frames already queued.
func (o *overlay) closeLink(l *overlayLink) {
	if o.links[l.peer] == l {
		delete(o.links, l.peer)
	}
	if !l.ended {
		l.ended = true
		close(l.queue)
	}
}

// linkFailed reports a link that ended other than by our Disconnect.
func (o *overlay) linkFailed(l *overlayLink) {
	if o.links[l.peer] != l || l.closing {
		return
	}
	o.closeLink(l)
	o.apply(o.mem.HandleDisconnected(time.Now(), l.peer))
}

// serveInbound reads a peer's overlay stream and feeds its frames to the
// machines. When it ends, the peer has closed its side of the link (its
// Disconnect) or the connection died: either way our side of the link ends.
func (o *overlay) serveInbound(c net.Conn) {
	peer := c.RemoteAddr().(Addr).ID
	buf := make([]byte, wire.MaxOverlayMessage)
	defer c.Close()
	for {
		layer, msg, err := wire.ReadOverlayFrame(c, buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				o.post(func() {
					if l := o.links[peer]; l != nil {
						o.linkFailed(l)
					}
				})
			}
			return
		}
		msg = slices.Clone(msg)
		if !o.post(func() {
			now := time.Now()
			switch layer {
			case wire.LayerMembership:
				o.apply(o.mem.HandleMessage(now, peer, msg))
			case wire.LayerBroadcast:
				o.applyBC(o.bc.HandleMessage(now, peer, msg))
			case wire.LayerRegistry:
				o.applyReg(o.reg.HandleMessage(now, peer, msg))
			}
		}) {
			return
		}
	}
}

// peerGone tells the driver that every connection to peer has closed.
func (o *overlay) peerGone(peer NodeID) {
	o.post(func() {
		if l := o.links[peer]; l != nil {
			o.linkFailed(l)
		}
	})
}

// Message is one broadcast message delivered to a subscriber.
type Message struct {
	Topic   string
	Payload []byte // shared: do not modify
	Origin  NodeID // the broadcaster, as the message claims (not authenticated)
	ID      string // the message ID, hex
	Hops    int    // overlay links crossed; 0 at the origin
}

// subscriptionBuffer is how many messages a subscriber may fall behind
// before further ones are dropped (and counted in Stats).
const subscriptionBuffer = 256

// Subscription receives the messages broadcast on one topic, each once.
type Subscription struct {
	// C delivers the messages. It is closed by Close and when the node
	// closes.
	C <-chan Message

	c      chan Message
	o      *overlay
	topic  string
	closed bool // guarded by o.subMu
}

// Close stops the subscription and closes C. It is idempotent.
func (s *Subscription) Close() {
	s.o.subMu.Lock()
	defer s.o.subMu.Unlock()
	s.o.subs[s.topic] = slices.DeleteFunc(s.o.subs[s.topic], func(x *Subscription) bool { return x == s })
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	if !s.closed {
		s.closed = true
		close(s.c)
	}
}

func (o *overlay) deliver(d broadcast.Deliver) {
	m := Message{Topic: d.Topic, Payload: d.Payload, Origin: d.Origin, ID: d.ID.String(), Hops: d.Hops}
	o.subMu.Lock()
	defer o.subMu.Unlock()
	for _, s := range o.subs[d.Topic] {
		select {
		case s.c <- m:
		default:
			o.dropped.Add(1)
		}
	}
}

// Subscribe returns a subscription to topic (1 to 64 bytes of printable
// ASCII without spaces, not starting with "mycelium.": ErrReservedTopic).
// Messages broadcast before it are not replayed.
func (n *Node) Subscribe(topic string) (*Subscription, error) {
	if err := checkUserTopic(topic); err != nil {
		return nil, err
	}
	o := n.overlay
	s := &Subscription{c: make(chan Message, subscriptionBuffer), o: o, topic: topic}
	s.C = s.c
	o.subMu.Lock()
	defer o.subMu.Unlock()
	if n.ctx.Err() != nil {
		return nil, net.ErrClosed
	}
	o.subs[topic] = append(o.subs[topic], s)
	return s, nil
}

// Broadcast sends payload (at most broadcast.MaxPayload bytes) to every node
// of the overlay subscribed to topic, this one included. Topics starting
// with "mycelium." are refused (ErrReservedTopic). Delivery is best
// effort over a self-repairing tree (Plumtree): it returns once the message
// is handed to the overlay, not when it has arrived.
func (n *Node) Broadcast(ctx context.Context, topic string, payload []byte) error {
	if _, err := n.transport(); err != nil {
		return err
	}
	if err := checkUserTopic(topic); err != nil {
		return err
	}
	o := n.overlay
	payload = slices.Clone(payload)
	errc := make(chan error, 1)
	if !o.post(func() {
		_, outs, err := o.bc.Broadcast(time.Now(), topic, payload)
		errc <- err
		o.applyBC(outs)
	}) {
		return net.ErrClosed
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return net.ErrClosed
	}
}
