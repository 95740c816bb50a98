package netlab

import (
	"net/netip"
	"time"
)

// NAT is a NAT router (RFC 4787): a public address on its parent network,
// the public network or the private side of another router (carrier-grade
// NAT, NAT behind NAT), and a private network of its own where hosts and
// further routers sit. It maps and filters by its NATConfig.
type NAT struct {
	net    *Network
	cfg    NATConfig
	name   string
	parent *segment // where its public address is
	inside *segment // its private network

	// Guarded by net.mu.
	link  Link // to the parent network
	table *table
}

// Addr returns the router's public address.
func (nat *NAT) Addr() netip.Addr { return nat.cfg.Addr }

// String returns the router's name: its public address, after those of
// the routers in front of it.
func (nat *NAT) String() string { return nat.name }

// AddHost puts a host with address addr on the router's private network.
// Use a private address (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, or
// 100.64.0.0/10 behind a carrier-grade NAT); nothing checks it, and a
// host there with a public address shadows the public host.
func (nat *NAT) AddHost(addr netip.Addr) (*Host, error) {
	return nat.net.addHost(nat.inside, addr, nat.name+"/")
}

// AddNAT puts another router on this router's private network, with
// cfg.Addr its address there: NAT behind NAT, as under carrier-grade NAT.
func (nat *NAT) AddNAT(cfg NATConfig) (*NAT, error) {
	return nat.net.addNAT(nat.inside, cfg, nat.name+"/")
}

// SetLink replaces the link between the router and its parent network.
// Hosts behind the router have links of their own.
func (nat *NAT) SetLink(l Link) error {
	if err := l.Validate(); err != nil {
		return err
	}
	nat.net.mu.Lock()
	defer nat.net.mu.Unlock()
	nat.link = l
	return nil
}

// Flush forgets every mapping, as `conntrack -F` does: the next outbound
// datagram of each flow gets a fresh mapping, which is how tests force a
// NAT rebinding.
func (nat *NAT) Flush() {
	nat.net.mu.Lock()
	defer nat.net.mu.Unlock()
	nat.table.flush()
}

// Mappings returns the number of live mappings.
func (nat *NAT) Mappings() int {
	nat.net.mu.Lock()
	defer nat.net.mu.Unlock()
	return nat.table.count(time.Now())
}

// outboundLocked translates a datagram leaving the private network and
// sends it on: up the router's link, or, when it is addressed to the
// router's own public address, back in (hairpinning).
func (nat *NAT) outboundLocked(p *packet) {
	n := nat.net
	hairpin := p.dst.Addr() == nat.cfg.Addr
	if hairpin && !nat.cfg.Hairpinning {
		n.dropLocked(p, nat.name, DropHairpin)
		return
	}
	m := nat.table.outbound(p.src, p.dst, time.Now(), n.rand)
	if m == nil {
		n.dropLocked(p, nat.name, DropNoFreePort)
		return
	}
	pre := p.src
	p.src = netip.AddrPortFrom(nat.cfg.Addr, m.port)
	nat.translatedLocked(p, pre, p.dst)
	if hairpin {
		nat.arriveLocked(p)
		return
	}
	n.traverseLocked(nat.link, nat.name, p, nat.parent)
}

// arriveLocked translates a datagram that reached the router's public
// address and passes it to the private network, or drops it.
func (nat *NAT) arriveLocked(p *packet) {
	n := nat.net
	m, why := nat.table.inbound(p.src, p.dst.Port(), time.Now())
	if m == nil {
		n.dropLocked(p, nat.name, why)
		return
	}
	pre := p.dst
	p.dst = m.key.internal
	nat.translatedLocked(p, p.src, pre)
	nat.inside.arriveLocked(p)
}

func (nat *NAT) translatedLocked(p *packet, preSrc, preDst netip.AddrPort) {
	n := nat.net
	n.stats.translated++
	n.traceLocked(Event{Kind: EventTranslate, Node: nat.name, Src: p.src, Dst: p.dst, PreSrc: preSrc, PreDst: preDst, Size: len(p.data)})
}
