package mycelium

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mycelium-net/mycelium/internal/wire"
	"github.com/mycelium-net/mycelium/membership"
	"github.com/mycelium-net/mycelium/nat"
	"github.com/mycelium-net/mycelium/registry"
)

// The NAT layer on the node: every node answers STUN Binding requests on
// its QUIC socket (nat.Server, rate-limited, never amplifying), and asks
// the nodes its registry knows for its own reflexive address (nat.Prober).
// From the answers of several observers it tells whether it is behind a
// NAT and classifies the mapping; the result goes into its record and into
// Stats.NAT. (Filtering probes and hole punching come next.)

const (
	// natFirstRound is when the first discovery round runs after Start;
	// natWait how soon it looks again while the registry names fewer than
	// two observers; natRetry how soon a round that could not classify
	// runs again.
	natFirstRound = 2 * time.Second
	natWait       = 3 * time.Second
	natRetry      = 30 * time.Second
	// natInterval spaces the rounds once the class is known.
	natInterval = 5 * time.Minute
	// natLocalCheck is how often the node looks at its local addresses
	// (checkLocal). A host that moved waits for this to nudge its links
	// and ask its path layers for new paths, so it adds to the stall of
	// every connection; one interface dump a second is cheap. (It was
	// 5 s: the kernel test bed's host moves stalled up to 5 s longer.)
	natLocalCheck = time.Second
	// natMaxObservers bounds the observers of one round: a pair of ports
	// on one IP and two more IPs tell every mapping class apart, with one
	// answer to spare. Nodes never sent to stay for the filtering probes,
	// which need senders this node has not contacted.
	natMaxObservers = 4
)

// NATStats is what the node knows of its own NAT, in RFC 4787 terms.
type NATStats struct {
	// Mapping and Filtering are "endpoint-independent",
	// "address-dependent", "address-and-port-dependent" or "unknown". A
	// node whose observers all see its own bound address is not behind a
	// NAT: both are endpoint-independent.
	Mapping   string `json:"mapping"`
	Filtering string `json:"filtering"`
	// Reflexive are the addresses observers saw this node's packets come
	// from, sorted.
	Reflexive []string `json:"reflexive"`
	// Public says every observer saw the node's bound address.
	Public bool `json:"public"`
	// Observers is how many observers answered the last round.
	Observers int `json:"observers"`
	// STUN counts the Binding requests this node answered for others.
	STUN nat.ServerStats `json:"stun"`
}

// natState is the driver's view of the NAT, published in snapshots.
type natState struct {
	mapping, filtering registry.NATClass
	reflexive          []netip.AddrPort
	public             bool
	observers          int
}

// stunServer guards the STUN responder, which the transport's reader
// goroutine calls.
type stunServer struct {
	mu  sync.Mutex
	srv *nat.Server
}

func newSTUNServer() *stunServer {
	srv, err := nat.NewServer(nat.DefaultServerConfig())
	if err != nil {
		panic("mycelium: default STUN server config: " + err.Error()) // a bug
	}
	return &stunServer{srv: srv}
}

func (s *stunServer) handle(b []byte, from netip.AddrPort) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.Handle(time.Now(), b, from)
}

func (s *stunServer) stats() nat.ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.Stats()
}

// handleNonQUIC takes the socket's non-QUIC packets: STUN requests are
// answered at once; anything else that looks like STUN goes to the
// driver's prober (dropped, and counted, if the driver is busy).
func (n *Node) handleNonQUIC(b []byte, from net.Addr) {
	if wire.IsPathPacket(b) {
		n.handlePath(b, from, nil)
		return
	}
	n.stats.nonQUICPackets.Add(1)
	if wire.IsPunchOpener(b) {
		n.stats.punchOpenersSeen.Add(1)
		return
	}
	ua, ok := from.(*net.UDPAddr)
	if !ok || len(b) > nat.MaxSTUNSize || !nat.IsSTUN(b) {
		return
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if n.probes.arrived(b, ap) {
		return // one of our filtering probes: counted there, not answered
	}
	if resp := n.stun.handle(b, ap); resp != nil {
		if tr, err := n.transport(); err == nil {
			tr.WriteTo(resp, from)
		}
		return
	}
	pkt := slices.Clone(b)
	o := n.overlay
	if !o.tryPost(func() {
		if ok, outs := o.prober.HandleResponse(time.Now(), pkt, ap); ok {
			o.applyNAT(outs)
		}
	}) {
		o.dropped.Add(1)
	}
}

// tryPost hands f to the driver goroutine if its queue has room.
func (o *overlay) tryPost(f func()) bool {
	select {
	case o.in <- f:
		return true
	default:
		return false
	}
}

// applyNAT performs prober outputs.
func (o *overlay) applyNAT(outs []nat.Output) {
	for _, out := range outs {
		switch out := out.(type) {
		case nat.Send:
			o.n.probes.sentTo(out.To, time.Now())
			if tr, err := o.n.transport(); err == nil {
				tr.WriteTo(out.Msg, net.UDPAddrFromAddrPort(out.To))
			}
		case nat.SetTimer:
			o.setTimer(out.At, func() { o.applyNAT(o.prober.HandleTimer(time.Now(), out.Timer)) })
		case nat.Done:
			o.natDone(out)
		}
	}
}

// armNATRound schedules the next discovery round.
func (o *overlay) armNATRound(after time.Duration) {
	gen := o.natGen
	o.setTimer(time.Now().Add(after), func() {
		if gen == o.natGen {
			o.natRound()
		}
	})
}

// armLocalWatch checks the node's local addresses every natLocalCheck.
func (o *overlay) armLocalWatch() {
	o.local = o.localAddrs()
	o.setTimer(time.Now().Add(natLocalCheck), func() {
		o.checkLocal()
		o.armLocalWatch()
	})
}

// checkLocal starts discovery afresh when the node's local addresses
// changed (a socket bound to a wildcard address on a host that moved to
// another network, say): the NAT in front may be another, so the old
// classes are dropped and a round runs at once.
func (o *overlay) checkLocal() {
	now := o.localAddrs()
	if slices.Equal(now, o.local) {
		return
	}
	o.n.stats.natLocalChanges.Add(1)
	o.n.log.Info("local address changed; discovering the NAT again", "was", joinAddrPorts(o.local), "now", joinAddrPorts(now))
	o.nat.mapping, o.nat.filtering = registry.NATUnknown, registry.NATUnknown
	o.natGen++
	o.natRound()
	// Links move to the new address when their peers hear from it.
	// Direct paths may have died with the old address, or moved: the
	// path layers probe them again.
	o.n.nudgeLinks()
	o.n.sessionsLocalChanged()
}

func joinAddrPorts(a []netip.AddrPort) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return strings.Join(s, ",")
}

// natRound starts a discovery round against the observers the registry
// offers, or waits for more.
func (o *overlay) natRound() {
	obs := o.natObservers()
	if len(obs) < 1 {
		o.armNATRound(natWait)
		return
	}
	// One observer tells whether we are behind a NAT and our reflexive
	// address; the mapping class needs two or more (natDone looks again
	// as the registry names more).
	o.applyNAT(o.prober.Start(time.Now(), obs))
}

// natObservers picks up to natMaxObservers addresses of other nodes that
// accept inbound connections: as many distinct IPs as possible, and up to
// two ports per IP, so that the mapping can be told apart by address and
// by port. Nodes that recently sent us filtering probes are left out
// (natProbes.sentUs).
func (o *overlay) natObservers() []netip.AddrPort {
	byIP := map[netip.Addr][]netip.AddrPort{}
	now := time.Now()
	// Never our own addresses: a NAT-bound node's first record says it
	// takes inbound connections and lists its private address, which
	// can be ours too (every home LAN is 192.168.1.x). A request sent
	// there comes back to us, reports our own address as mapped, and
	// makes us believe we are public (seen in the 200-node netlab: one
	// node classified itself public, and held that for natInterval).
	own := o.localAddrs()
	for _, r := range o.reg.Records(now) {
		if r.ID == o.n.id || !r.Inbound {
			continue
		}
		for _, a := range r.Listen {
			if a.Addr().IsValid() && !a.Addr().IsUnspecified() && !slices.Contains(own, a) && !slices.Contains(byIP[a.Addr()], a) && !o.n.probes.sentUs(a, now) {
				byIP[a.Addr()] = append(byIP[a.Addr()], a)
			}
		}
	}
	ips := make([]netip.Addr, 0, len(byIP))
	for ip := range byIP {
		ips = append(ips, ip)
		slices.SortFunc(byIP[ip], func(a, b netip.AddrPort) int { return a.Compare(b) })
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	o.rng.Shuffle(len(ips), func(i, j int) { ips[i], ips[j] = ips[j], ips[i] })
	// One address with two ports first, if any: without such a pair an
	// address-dependent mapping cannot be told from an
	// address-and-port-dependent one.
	if k := slices.IndexFunc(ips, func(ip netip.Addr) bool { return len(byIP[ip]) >= 2 }); k > 0 {
		ips[0], ips[k] = ips[k], ips[0]
	}
	var out []netip.AddrPort
	if len(ips) > 0 && len(byIP[ips[0]]) >= 2 {
		out = append(out, byIP[ips[0]][1])
	}
	for round := range 2 {
		for _, ip := range ips {
			if len(out) < natMaxObservers && round < len(byIP[ip]) && !slices.Contains(out, byIP[ip][round]) {
				out = append(out, byIP[ip][round])
			}
		}
	}
	return out
}

// natDone takes a round's result: public or not, the mapping class, the
// reflexive addresses; publishes them in our record when they changed.
func (o *overlay) natDone(d nat.Done) {
	st := natState{mapping: d.Mapping, filtering: o.nat.filtering, reflexive: d.Reflexive, observers: len(d.Observations)}
	if len(d.Observations) >= 1 && o.mappedIsLocal(d.Observations) {
		st.public = true
		st.mapping, st.filtering = registry.NATEndpointIndependent, registry.NATEndpointIndependent
	}
	changed := st.public != o.nat.public || st.mapping != o.nat.mapping || !slices.Equal(st.reflexive, o.nat.reflexive)
	// A new reflexive address with the same local one: the NAT rebound
	// (or we moved and checkLocal has not looked yet). Links move when
	// their peers hear from the new mapping; the path layers probe
	// their direct paths again.
	rebound := len(o.nat.reflexive) > 0 && len(st.reflexive) > 0 && !slices.Equal(st.reflexive, o.nat.reflexive)
	o.nat = st
	if rebound {
		o.n.stats.natReflexiveChanges.Add(1)
		o.n.nudgeLinks()
		o.n.sessionsReflexiveChanged()
	}
	if changed {
		ns := st.stats()
		o.n.log.Info("nat classified", "mapping", ns.Mapping, "filtering", ns.Filtering, "public", ns.Public,
			"reflexive", joinAddrs(ns.Reflexive), "observers", ns.Observers)
		o.updateLocal()
		o.advertiseNAT()
	}
	if !st.public && len(st.reflexive) > 0 && (changed || st.filtering == registry.NATUnknown) {
		o.n.spawn(o.n.filterRound) // blocks on the network
	}
	next := natInterval
	if st.mapping == registry.NATUnknown || (!st.public && st.filtering == registry.NATUnknown) {
		next = natRetry // the filtering probes just started may fail too
	}
	if st.mapping == registry.NATUnknown && !st.public && len(o.natObservers()) > st.observers {
		next = natWait // more observers are known now (the registry is still filling)
	}
	// An endpoint-dependent verdict is checked twice more, soon, against
	// other observers: on Linux one observer's stray packet can remap our
	// port toward it alone (a conntrack collision) and fake one.
	if st.mapping == registry.NATAddressDependent || st.mapping == registry.NATAddressAndPortDependent {
		if o.natConfirms < 2 {
			o.natConfirms++
			next = natWait
		}
	} else {
		o.natConfirms = 0
	}
	o.armNATRound(next)
	o.checkHomes()
}

// mappedIsLocal reports whether every observer saw one of our own
// addresses: the bound one, or with a wildcard bind, an interface address
// with the bound port.
func (o *overlay) mappedIsLocal(obs []nat.Observation) bool {
	local := o.localAddrs()
	for _, ob := range obs {
		if !slices.Contains(local, ob.Mapped) {
			return false
		}
	}
	return true
}

func (o *overlay) localAddrs() []netip.AddrPort {
	tr, err := o.n.transport()
	if err != nil {
		return nil
	}
	ua, ok := tr.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !ap.Addr().IsUnspecified() {
		return []netip.AddrPort{ap}
	}
	var out []netip.AddrPort
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				out = append(out, netip.AddrPortFrom(ip.Unmap(), ap.Port()))
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return out
}

func joinAddrs(a []string) string { return strings.Join(a, ",") }

func (s natState) stats() NATStats {
	ns := NATStats{Mapping: s.mapping.String(), Filtering: s.filtering.String(), Reflexive: []string{}, Public: s.public, Observers: s.observers}
	for _, a := range s.reflexive {
		ns.Reflexive = append(ns.Reflexive, a.String())
	}
	return ns
}

// advertiseNAT tells the overlay how to reach us: behind a NAT, at our
// reflexive addresses and not by inbound connection (membership repairs
// then ask nodes that accept them first); public, at the bound address.
func (o *overlay) advertiseNAT() {
	self := o.mem.Self()
	if o.nat.public {
		self.NoInbound = false
		o.mem.SetSelf(self)
		return
	}
	self.NoInbound = true
	if len(o.nat.reflexive) > 0 {
		self.Addrs = slices.Clone(o.nat.reflexive[:min(len(o.nat.reflexive), membership.MaxAddrs)])
	}
	o.mem.SetSelf(self)
}
