package netlab

import (
	"fmt"
	"net/netip"
	"time"
)

// NAT is a NAT router (RFC 4787): a public address on its parent network,
// the public network or the private side of another router (carrier-grade
// NAT, NAT behind NAT), and a private network of its own where hosts and
// further routers sit. It maps and filters by its NATConfig.
//
// A public port serves one mapping at a time. Linux MASQUERADE needs only
// the whole tuple (public port, remote endpoint) to be unique, so a second
// host using the same source port towards a different server keeps that
// port there; here it gets another port, as it would on Linux towards the
// same server.
type NAT struct {
	net    *Network
	name   string
	parent *segment // where its public address is
	inside *segment // its private network

	// Guarded by net.mu.
	cfg   NATConfig // cfg.Addr changes with SetAddr
	link  Link      // to the parent network
	rands flowRands // loss and jitter on its link, per flow
	table *table
}

// Addr returns the router's public address.
func (nat *NAT) Addr() netip.Addr {
	nat.net.mu.Lock()
	defer nat.net.mu.Unlock()
	return nat.cfg.Addr
}

// String returns the router's name: the public address it was created
// with, after those of the routers in front of it. SetAddr does not
// change it.
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

// Flush forgets every mapping and its filtering state, as `conntrack -F`
// does: datagrams from outside are dropped until the hosts behind send
// again, and each host's next outbound datagram makes a new mapping. That
// new mapping need not have a new port: with PortPreserving it gets the
// same one back, as it does on Linux. To force a rebinding, use Rebind.
func (nat *NAT) Flush() {
	nat.net.mu.Lock()
	defer nat.net.mu.Unlock()
	nat.table.flush()
}

// Rebind forces a NAT rebinding: it forgets every mapping, as Flush does,
// and keeps the ports they had out of use until the next Rebind, so that
// every host's next mapping gets a public port other than the one it had,
// whatever the allocation policy. (The netns tier's Router.RebindPort
// does the same to a Linux router by switching its port range.) If the
// router's port range has no other port free, a new mapping fails and
// its datagram is dropped (DropNoFreePort).
func (nat *NAT) Rebind() {
	nat.net.mu.Lock()
	defer nat.net.mu.Unlock()
	nat.table.rebind()
}

// SetAddr moves the router to public address addr on the network it sits
// on, as a new DHCP lease or a carrier-grade NAT's reassignment does, and
// forgets every mapping: each host's next outbound datagram leaves from
// addr. Datagrams on their way to the old address are dropped
// (DropNoRoute), and the old address is free for another host or router.
// addr must be free on the router's network (ErrAddrInUse); the address
// the router has already changes nothing.
func (nat *NAT) SetAddr(addr netip.Addr) error {
	n := nat.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr == nat.cfg.Addr {
		return nil
	}
	if err := nat.parent.claimLocked(addr); err != nil {
		return fmt.Errorf("NAT %s: SetAddr: %w", nat.name, err)
	}
	delete(nat.parent.members, nat.cfg.Addr)
	nat.parent.members[addr] = nat
	nat.cfg.Addr = addr
	nat.table.flush()
	nat.table.retired = nil
	return nil
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
	if !n.forwardLocked(p, nat.name) {
		return
	}
	m := nat.table.outbound(p.src, p.dst, time.Now())
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
	n.traverseLocked(nat.link, nat.name, &nat.rands, p, nat.parent)
}

// arriveLocked translates a datagram that reached the router's public
// address and passes it to the private network, or drops it.
func (nat *NAT) arriveLocked(p *packet) {
	n := nat.net
	if p.dst.Addr() != nat.cfg.Addr { // sent before SetAddr moved the router
		n.dropLocked(p, nat.name, DropNoRoute)
		return
	}
	m, why := nat.table.inbound(p.src, p.dst.Port(), time.Now())
	if m == nil {
		n.dropLocked(p, nat.name, why)
		return
	}
	if !n.forwardLocked(p, nat.name) {
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
