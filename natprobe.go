package mycelium

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mycelium-net/mycelium/internal/wire"
	"github.com/mycelium-net/mycelium/nat"
	"github.com/mycelium-net/mycelium/registry"
)

// NAT filtering probes (see internal/wire/natprobe.go). After a discovery
// round finds the node behind a NAT, it asks a public node it holds a
// connection to for one unsolicited STUN packet to its reflexive address
// from an IP it has never sent to, and one from an unused port of an IP it
// has sent to; which of them arrive classifies the filtering
// (nat.ClassifyFiltering).

const (
	probeTries      = 2 // requests per mode
	probeWait       = 1500 * time.Millisecond
	probeRecent     = 3 * time.Minute // how long an address we sent to counts as contacted
	maxProbeServes  = 8               // probe requests this node handles at once
	maxRecentDialed = 256
)

// natProbes holds what the probes need across goroutines.
type natProbes struct {
	mu      sync.Mutex
	pending map[nat.TxID]*pendingProbe
	dialed  map[netip.AddrPort]time.Time
	senders map[netip.AddrPort]time.Time // who sent us probes, when
	serving chan struct{}
}

// probedBy notes that a sent us (or was told to send us) a probe.
func (p *natProbes) probedBy(a netip.AddrPort, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, t := range p.senders {
		if now.Sub(t) > probeRecent {
			delete(p.senders, k)
		}
	}
	if len(p.senders) < maxRecentDialed {
		p.senders[netip.AddrPortFrom(a.Addr().Unmap(), a.Port())] = now
	}
}

// sentUs reports whether a sent us a probe within probeRecent. Such an
// address makes a poor STUN observer for a while: its unasked packet can
// have left a Linux conntrack entry in our NAT that takes our port
// towards it, so our own packets to it leave from another port and the
// mapping looks endpoint-dependent when it is not.
func (p *natProbes) sentUs(a netip.AddrPort, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.senders[a]
	return ok && now.Sub(t) <= probeRecent
}

// pendingProbe is a probe we wait for: done is closed when it arrives,
// from the address in from.
type pendingProbe struct {
	done chan struct{}
	from netip.AddrPort
}

func newNATProbes() *natProbes {
	return &natProbes{
		pending: map[nat.TxID]*pendingProbe{},
		dialed:  map[netip.AddrPort]time.Time{},
		senders: map[netip.AddrPort]time.Time{},
		serving: make(chan struct{}, maxProbeServes),
	}
}

// contacted reports whether we sent to a within probeRecent.
func (p *natProbes) contacted(a netip.AddrPort, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.dialed[a]
	return ok && now.Sub(t) <= probeRecent
}

// contactedIP reports whether we sent to any address of ip within
// probeRecent.
func (p *natProbes) contactedIP(ip netip.Addr, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, t := range p.dialed {
		if a.Addr() == ip && now.Sub(t) <= probeRecent {
			return true
		}
	}
	return false
}

// sentTo notes that this node sent packets to a.
func (p *natProbes) sentTo(a netip.AddrPort, now time.Time) {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.dialed) >= maxRecentDialed {
		for k, t := range p.dialed {
			if now.Sub(t) > probeRecent {
				delete(p.dialed, k)
			}
		}
		if len(p.dialed) >= maxRecentDialed {
			return // the exclusion list is capped anyway
		}
	}
	p.dialed[a] = now
}

// recent lists the addresses sent to within probeRecent.
func (p *natProbes) recent(now time.Time) []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []netip.AddrPort
	for a, t := range p.dialed {
		if now.Sub(t) <= probeRecent {
			out = append(out, a)
		}
	}
	return out
}

// arrived reports whether a STUN request from `from` is one of our probes,
// and marks it.
func (p *natProbes) arrived(b []byte, from netip.AddrPort) bool {
	if len(b) < 20 || b[0] != 0x00 || b[1] != 0x01 { // Binding request
		return false
	}
	var tx nat.TxID
	copy(tx[:], b[8:20])
	p.mu.Lock()
	defer p.mu.Unlock()
	pp, ok := p.pending[tx]
	if ok {
		pp.from = from
		close(pp.done)
		delete(p.pending, tx)
	}
	return ok
}

func (p *natProbes) expect(tx nat.TxID) *pendingProbe {
	pp := &pendingProbe{done: make(chan struct{})}
	p.mu.Lock()
	p.pending[tx] = pp
	p.mu.Unlock()
	return pp
}

func (p *natProbes) forget(tx nat.TxID) {
	p.mu.Lock()
	delete(p.pending, tx)
	p.mu.Unlock()
}

func udpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// filterRound runs the probes and reports the class to the driver. It
// blocks on the network: run it on its own goroutine.
func (n *Node) filterRound() {
	now := time.Now()
	exclude := n.probes.recent(now)
	for _, p := range n.peers.snapshot() {
		if ap, ok := udpAddrPort(p.pc.qc.RemoteAddr()); ok {
			exclude = append(exclude, ap)
		}
	}
	forwarder := n.probeForwarder(exclude)
	if forwarder == nil {
		n.log.Debug("nat filtering: no public node to probe through", "excluded", len(exclude))
		return
	}
	if ap, ok := udpAddrPort(forwarder.qc.RemoteAddr()); ok {
		exclude = append(exclude, ap)
	}
	target, _ := udpAddrPort(forwarder.qc.LocalAddr())
	// Where the forwarder sees us is what our reflexive address is toward
	// it; the forwarder probes that address, whatever we say here, as
	// long as the IP matches.
	if refl := n.overlay.snap.Load().nat.reflexive; len(refl) > 0 {
		target = refl[0]
	}
	exclude = probeExclusions(exclude, forwarder)
	var probes []nat.FilterProbe
	for _, mode := range []byte{wire.ProbeOtherIP, wire.ProbeOtherPort} {
		for range probeTries {
			sent, got := n.probeOnce(forwarder, mode, target, exclude)
			if !sent {
				continue
			}
			probes = append(probes, nat.FilterProbe{OtherIP: mode == wire.ProbeOtherIP, Received: got})
			if got {
				break
			}
		}
	}
	class := nat.ClassifyFiltering(probes)
	n.log.Debug("nat filtering probed", "via", forwarder.peer.Short(), "probes", fmt.Sprint(probes), "filtering", class.String())
	n.overlay.post(func() { n.overlay.filteringFound(class) })
}

// probeExclusions fits what we have sent to into a REQUEST's
// wire.MaxProbeExclude addresses without losing any: F needs every port
// we used on its own IP (for the new-port probe), but of any other IP
// only the IP (for the new-IP probe), so one address stands for each.
// Cut to the limit by address instead, a long list lost IPs we had
// contacted, and a probe from one of them read as endpoint-independent
// filtering.
func probeExclusions(sent []netip.AddrPort, forwarder *peerConn) []netip.AddrPort {
	fIP := netip.Addr{}
	if ap, ok := udpAddrPort(forwarder.qc.RemoteAddr()); ok {
		fIP = ap.Addr()
	}
	slices.SortFunc(sent, func(a, b netip.AddrPort) int { return a.Compare(b) })
	sent = slices.Compact(sent)
	var own, others []netip.AddrPort
	seen := map[netip.Addr]bool{}
	for _, a := range sent {
		switch {
		case a.Addr() == fIP:
			own = append(own, a)
		case !seen[a.Addr()]:
			seen[a.Addr()] = true
			others = append(others, a)
		}
	}
	out := append(own, others...)
	return out[:min(len(out), wire.MaxProbeExclude)]
}

// probeForwarder picks the public node to ask: one that has another public
// node on its own IP that we have not sent to (the sender of the new-port
// probe), preferring one we hold a connection to, else dialling it.
func (n *Node) probeForwarder(exclude []netip.AddrPort) *peerConn {
	recs := n.Records()
	byIP := map[netip.Addr][]netip.AddrPort{}
	for _, r := range recs {
		if r.Inbound && r.ID != n.id {
			for _, a := range r.Listen {
				byIP[a.Addr()] = append(byIP[a.Addr()], a)
			}
		}
	}
	fits := func(r registry.Record) bool {
		for _, a := range r.Listen {
			for _, sib := range byIP[a.Addr()] {
				if sib != a && !slices.Contains(exclude, sib) {
					return true
				}
			}
		}
		return false
	}
	var dialable []NodeID
	for _, r := range recs {
		if r.ID == n.id || !r.Inbound || !fits(r) {
			continue
		}
		if pc := n.peers.active(r.ID); pc != nil {
			return pc
		}
		dialable = append(dialable, r.ID)
	}
	for _, id := range dialable[:min(len(dialable), 2)] {
		ctx, cancel := context.WithTimeout(n.ctx, punchStepTimeout)
		pc, err := n.conn(ctx, id)
		cancel()
		if err == nil {
			return pc
		}
	}
	return nil
}

// probeOnce asks forwarder for one probe and waits for it.
func (n *Node) probeOnce(forwarder *peerConn, mode byte, target netip.AddrPort, exclude []netip.AddrPort) (sent, received bool) {
	var tx nat.TxID
	for i := range tx {
		tx[i] = byte(rand.Uint32())
	}
	ctx, cancel := context.WithTimeout(n.ctx, punchStepTimeout)
	defer cancel()
	c, err := n.openStream(ctx, forwarder, wire.NATProbeService)
	if err != nil {
		return false, false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(punchStepTimeout))
	arrived := n.probes.expect(tx)
	defer n.probes.forget(tx)
	b, err := wire.AppendProbe(nil, wire.ProbeMsg{Type: wire.ProbeRequest, Mode: mode, Tx: tx, Target: target, Exclude: exclude})
	if err != nil {
		return false, false
	}
	if _, err := c.Write(b); err != nil {
		return false, false
	}
	r, err := wire.ReadProbe(c)
	if err != nil || r.Type != wire.ProbeReply || r.Status != wire.ProbeSent {
		return false, false
	}
	if r.Sender.IsValid() {
		n.probes.probedBy(r.Sender, time.Now())
	}
	t := time.NewTimer(probeWait)
	defer t.Stop()
	select {
	case <-arrived.done:
		// A probe from an address we have sent to meanwhile (a membership
		// dial, say) proves nothing about filtering: drop the try. For
		// the new-IP probe, any address of its IP counts (an
		// address-dependent filter opens to the whole IP), as do the
		// links we hold now (a home relay dialled meanwhile).
		now := time.Now()
		if n.probes.contacted(arrived.from, now) {
			return false, false
		}
		if mode == wire.ProbeOtherIP {
			if n.probes.contactedIP(arrived.from.Addr(), now) {
				return false, false
			}
			for _, p := range n.peers.snapshot() {
				if ap, ok := udpAddrPort(p.pc.qc.RemoteAddr()); ok && ap.Addr() == arrived.from.Addr() {
					return false, false
				}
			}
		}
		return true, true
	case <-t.C:
		return true, false
	case <-n.ctx.Done():
		return false, false
	}
}

// filteringFound takes the probes' verdict on the driver goroutine.
func (o *overlay) filteringFound(class registry.NATClass) {
	if o.nat.public || class == o.nat.filtering {
		return
	}
	if class == registry.NATUnknown {
		// A round that could not tell (every public IP it knows already
		// contacted, say) says nothing against the class found before.
		o.n.log.Debug("nat filtering: probes inconclusive, keeping the class found before", "filtering", o.nat.filtering.String())
		return
	}
	o.nat.filtering = class
	ns := o.nat.stats()
	o.n.log.Info("nat classified", "mapping", ns.Mapping, "filtering", ns.Filtering, "public", ns.Public,
		"reflexive", joinAddrs(ns.Reflexive), "observers", ns.Observers)
	o.updateLocal()
}

// serveNATProbe answers a probe request from a node we hold a connection
// to: it finds a connected node that fits and tells it to send.
func (n *Node) serveNATProbe(c net.Conn, from NodeID) {
	defer c.Close()
	replySender := func(status byte, sender netip.AddrPort) {
		if b, err := wire.AppendProbe(nil, wire.ProbeMsg{Type: wire.ProbeReply, Status: status, Sender: sender}); err == nil {
			c.Write(b)
		}
	}
	reply := func(status byte) { replySender(status, netip.AddrPort{}) }
	select {
	case n.probes.serving <- struct{}{}:
		defer func() { <-n.probes.serving }()
	default:
		reply(wire.ProbeRefused)
		return
	}
	c.SetDeadline(time.Now().Add(punchStepTimeout))
	m, err := wire.ReadProbe(c)
	if err != nil || m.Type != wire.ProbeRequest {
		return
	}
	// Probes go only to the address the asker's own packets come from, so
	// nobody can aim them at a third party.
	pc := n.peers.active(from)
	src, ok := netip.AddrPort{}, false
	if pc != nil {
		src, ok = udpAddrPort(pc.qc.RemoteAddr())
	}
	if !ok || src.Addr() != m.Target.Addr() {
		reply(wire.ProbeRefused)
		return
	}
	// The probe goes to the mapping the asker's NAT uses toward us (src),
	// which an endpoint-dependent NAT keeps for our address only. A new
	// port of a used address is then a new port of ours: another node on
	// our IP. A new address is one the asker has not sent to.
	ours, _ := udpAddrPort(pc.qc.LocalAddr())
	ips := map[netip.Addr]bool{}
	for _, a := range m.Exclude {
		ips[a.Addr()] = true
	}
	var cands []NodeID
	for _, r := range n.Records() {
		if r.ID == n.id || r.ID == from || !r.Inbound {
			continue
		}
		for _, a := range r.Listen {
			fits := !ips[a.Addr()]
			if m.Mode == wire.ProbeOtherPort {
				fits = a.Addr() == ours.Addr() && a != ours && !slices.Contains(m.Exclude, a)
			}
			if fits {
				cands = append(cands, r.ID)
				break
			}
		}
	}
	if len(cands) == 0 {
		reply(wire.ProbeNoCandidate)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, punchStepTimeout)
	defer cancel()
	d := cands[rand.IntN(len(cands))]
	dc, err := n.dialInternal(ctx, d, wire.NATProbeSendService)
	if err != nil {
		reply(wire.ProbeNoCandidate)
		return
	}
	var sender netip.AddrPort
	if dpc := n.peers.active(d); dpc != nil {
		sender, _ = udpAddrPort(dpc.qc.RemoteAddr())
	}
	defer dc.Close()
	b, err := wire.AppendProbe(nil, wire.ProbeMsg{Type: wire.ProbeSend, Tx: m.Tx, Target: src})
	if err != nil {
		return
	}
	if _, err := dc.Write(b); err != nil {
		reply(wire.ProbeNoCandidate)
		return
	}
	n.stats.probesForwarded.Add(1)
	replySender(wire.ProbeSent, sender)
}

// serveNATProbeSend sends one probe on a connected node's behalf.
func (n *Node) serveNATProbeSend(c net.Conn) {
	defer c.Close()
	select {
	case n.probes.serving <- struct{}{}:
		defer func() { <-n.probes.serving }()
	default:
		return
	}
	c.SetDeadline(time.Now().Add(punchStepTimeout))
	m, err := wire.ReadProbe(c)
	if err != nil || m.Type != wire.ProbeSend {
		return
	}
	tr, err := n.transport()
	if err != nil {
		return
	}
	tr.WriteTo(nat.AppendBindingRequest(nil, nat.TxID(m.Tx)), net.UDPAddrFromAddrPort(m.Target))
	n.stats.probesSent.Add(1)
}
