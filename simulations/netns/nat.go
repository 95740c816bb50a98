//go:build linux

package netns

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
)

// A router's interfaces are "wan" (its veth to the internet's bridge) and
// "lan" (a bridge holding its hosts' veths). Every rule below names them.
//
// Every recipe starts from baseRules, loaded with iptables-restore:
//
//	*nat
//	:MYC-DNAT - [0:0]
//	:MYC-SNAT - [0:0]
//	-A PREROUTING -i wan -j MYC-DNAT
//	-A POSTROUTING -o wan -j MYC-SNAT
//	-A MYC-SNAT -j MASQUERADE                   (Masquerade and the nft recipes)
//	-A MYC-SNAT -j MASQUERADE --random-fully    (MasqueradeRandomFully)
//	COMMIT
//	*filter
//	-A INPUT -i wan -m conntrack --ctstate NEW -j DROP
//	-A FORWARD -i wan -o lan -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//	-A FORWARD -i wan -o lan -m conntrack --ctstate DNAT -j ACCEPT
//	-A FORWARD -i wan -o lan -j DROP
//	COMMIT
//
// MASQUERADE gives a new mapping the first free one of: the port of the
// newest mapping the same source already has, the source's own port, a
// random port, not the next one (the kernel's get_unique_tuple; doc.go has
// the details). A public port is taken only towards the remote it is
// already used for. So a source keeps one external port whatever it sends
// to, endpoint-independent mapping, except where two sources sharing a
// public port reach the same remote: the second gets a random port there,
// and keeps it for remotes new to it. A reply is let in only when it
// matches a conntrack entry exactly, remote address and port:
// address-and-port-dependent filtering.
// --random-fully draws a fresh random port for every new conntrack entry,
// that is for every new destination endpoint: address-and-port-dependent
// mapping. The FORWARD rules are the firewall any home router has: nothing
// reaches the LAN unless conntrack knows it or a DNAT rule sent it there.
// The INPUT rule drops a new flow addressed to the router itself (a
// datagram to a public port no mapping or DNAT uses) before conntrack
// confirms it. Let in, its entry would hold that public port towards its
// sender, and a host later sending from that port to that sender would get
// a random one: the mapping would stop being endpoint-independent for
// whoever reached the host's address first (TestUnsolicitedInboundKeepsMapping;
// CI met it when nodes dialled a NAT-bound node's advertised address).
// Router.Forward appends static DNAT rules to MYC-DNAT.
//
// After a RebindPort, MYC-SNAT holds a port range instead (RANGE alternates
// between 10000-19999 and 20000-29999, both outside Linux's ephemeral ports):
//
//	-A MYC-SNAT -p udp -j MASQUERADE --to-ports RANGE [--random-fully]
//	-A MYC-SNAT -p tcp -j MASQUERADE --to-ports RANGE [--random-fully]
//	-A MYC-SNAT -j MASQUERADE [--random-fully]
const baseRules = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:MYC-DNAT - [0:0]
:MYC-SNAT - [0:0]
-A PREROUTING -i wan -j MYC-DNAT
-A POSTROUTING -o wan -j MYC-SNAT
%sCOMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i wan -m conntrack --ctstate NEW -j DROP
-A FORWARD -i wan -o lan -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i wan -o lan -m conntrack --ctstate DNAT -j ACCEPT
-A FORWARD -i wan -o lan -j DROP
COMMIT
`

// endpointTable is the nftables state of AddressDependentFiltering and
// EndpointIndependentFiltering, on top of baseRules' MASQUERADE.
//
// Conntrack alone cannot give these: a MASQUERADE entry admits replies from
// exactly one remote address and port. So the router learns, from every UDP
// packet it sends out on wan after SNAT (hook postrouting, priority srcnat+10,
// where the header already carries the mapped port):
//
//   - @endpoint: mapped port -> internal address . internal port, read from
//     the conntrack tuple (the original tuple for an outbound flow, the reply
//     tuple for a flow an inbound packet opened);
//   - @contacted: mapped port . remote address, for every address the
//     mapping has sent to.
//
// A new inbound UDP flow (a nat chain sees only a flow's first packet) to a
// mapped port is DNATed to that port's internal endpoint:
//
//   - AddressDependentFiltering: only if its source address is in
//     @contacted for that port, from any source port;
//   - EndpointIndependentFiltering: from anyone.
//
// Anything else is not DNATed, so it is addressed to the router itself,
// where nothing listens. Conntrack then carries the DNATed flow both ways,
// and its replies leave from the same mapped port. The sets keep an entry
// 120 s after its last packet, RFC 4787 REQ-5's lower bound; an update
// refreshes the timeout but not the data, so a mapped port reused by another
// host within 120 s keeps pointing at the first (a real NAT's port reuse
// hazard too; RebindPort and RebindAddr empty the sets). The same goes for
// a public port that MASQUERADE gives to two hosts at once, towards
// different remotes: inbound flows to it reach the host that sent first.
const endpointTable = `table ip mycnat {
	map endpoint {
		type inet_service : ipv4_addr . inet_service
		flags dynamic,timeout
		timeout 120s
	}
	set contacted {
		type inet_service . ipv4_addr
		flags dynamic,timeout
		timeout 120s
	}
	chain learn {
		type filter hook postrouting priority srcnat + 10; policy accept;
		oifname "wan" meta l4proto udp ct direction original update @endpoint { udp sport : ct original ip saddr . ct original proto-src }
		oifname "wan" meta l4proto udp ct direction reply update @endpoint { udp sport : ct reply ip saddr . ct reply proto-src }
		oifname "wan" meta l4proto udp update @contacted { udp sport . ip daddr }
	}
	chain admit {
		type nat hook prerouting priority dstnat + 10; policy accept;
		%s
	}
}
`

// The admit rules of endpointTable.
const (
	admitContacted = `iifname "wan" meta l4proto udp udp dport . ip saddr @contacted dnat ip to udp dport map @endpoint`
	admitAnyone    = `iifname "wan" meta l4proto udp dnat ip to udp dport map @endpoint`
)

// holdTable drops everything that arrives on wan or lan before conntrack
// sees it (priority -310 runs before raw at -300 and conntrack at -200),
// while a rebinding rewrites rules and flushes state. Without it a packet
// in between could recreate an old mapping.
const holdTable = `table inet mychold {
	chain hold {
		type filter hook prerouting priority -310; policy accept;
		iifname { "wan", "lan" } drop
	}
}
`

// rebindPorts are the SNAT port ranges RebindPort alternates between.
var rebindPorts = [2]string{"10000-19999", "20000-29999"}

// Router is a NAT router: one public address on the internet and a LAN
// 10.K.0.0/24 behind it, with Recipe's rules.
type Router struct {
	*NS
	// Recipe is the NAT behaviour the router was made with.
	Recipe Recipe
	// LAN is the router's private prefix; the router is its .1.
	LAN netip.Prefix

	mu       sync.Mutex
	public   netip.Addr
	rebinds  int // RebindPort calls so far
	hostNext int // next host octet on the LAN
}

// AddNAT adds a NAT router with the next free address in 198.51.100.0/24
// (gateway 198.51.100.1, through which it reaches every other router), a LAN 10.K.0.0/24 for AddHost, and recipe's
// rules. ip_forward is on in this namespace only (and the internet's).
func (tb *Testbed) AddNAT(name string, recipe Recipe) *Router {
	tb.t.Helper()
	if recipe.Mapping() == Unknown {
		tb.t.Fatalf("netns: AddNAT %s: unknown recipe %d", name, int(recipe))
	}
	tb.mu.Lock()
	octet, k := tb.natNext, tb.lanNext
	tb.natNext++
	tb.lanNext++
	tb.mu.Unlock()
	if octet > maxHostOctet || k > maxLANs {
		tb.t.Fatalf("netns: out of router addresses")
	}
	ns := tb.mustNewNS(name)
	r := &Router{
		NS:       ns,
		Recipe:   recipe,
		LAN:      netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(k), 0, 0}), 24),
		public:   netip.AddrFrom4([4]byte{198, 51, 100, byte(octet)}),
		hostNext: 2,
	}
	tb.mu.Lock()
	tb.routers = append(tb.routers, r)
	tb.mu.Unlock()

	ns.mustSysctl("net/ipv4/ip_forward", "1")
	tb.attach(ns, "wan")
	// A /32 with a route to the gateway only: traffic to another router
	// goes through the internet namespace, one router hop, as between
	// two homes on the real internet (the openers of a hole punch rely
	// on that hop to die before the peer's router).
	ns.mustIP("addr", "add", r.public.String()+"/32", "dev", "wan")
	ns.mustIP("link", "set", "wan", "up")
	ns.mustIP("route", "add", internetAltAddr.String(), "dev", "wan")
	ns.mustIP("route", "add", "default", "via", internetAltAddr.String(), "dev", "wan")
	ns.mustIP("link", "add", "lan", "type", "bridge")
	ns.mustIP("addr", "add", r.gateway().String()+"/24", "dev", "lan")
	ns.mustIP("link", "set", "lan", "up")
	ns.bridgeNoNetfilter()

	if _, err := ns.run(fmt.Sprintf(baseRules, r.snatRules("")), "iptables-restore"); err != nil {
		tb.t.Fatalf("netns: %v", err)
	}
	if table := r.nftTable(); table != "" {
		if _, err := ns.run(table, "nft", "-f", "-"); err != nil {
			tb.t.Fatalf("netns: %v", err)
		}
	}
	return r
}

// gateway is the router's own LAN address.
func (r *Router) gateway() netip.Addr { return r.LAN.Addr().Next() }

// snatRules is MYC-SNAT's body for a port range ("" to keep ports).
func (r *Router) snatRules(ports string) string {
	flags := ""
	if r.Recipe == MasqueradeRandomFully {
		flags = " --random-fully"
	}
	if ports == "" {
		return "-A MYC-SNAT -j MASQUERADE" + flags + "\n"
	}
	return "-A MYC-SNAT -p udp -j MASQUERADE --to-ports " + ports + flags + "\n" +
		"-A MYC-SNAT -p tcp -j MASQUERADE --to-ports " + ports + flags + "\n" +
		"-A MYC-SNAT -j MASQUERADE" + flags + "\n"
}

// nftTable is the recipe's nftables table, or "".
func (r *Router) nftTable() string {
	switch r.Recipe {
	case AddressDependentFiltering:
		return fmt.Sprintf(endpointTable, admitContacted)
	case EndpointIndependentFiltering:
		return fmt.Sprintf(endpointTable, admitAnyone)
	}
	return ""
}

// AddHost adds a host on the router's LAN with the next free address.
func (r *Router) AddHost(name string) *Host {
	r.tb.t.Helper()
	r.mu.Lock()
	octet := r.hostNext
	r.hostNext++
	r.mu.Unlock()
	if octet > maxHostOctet {
		r.tb.t.Fatalf("netns: LAN %s is full", r.LAN)
	}
	ns := r.tb.mustNewNS(name)
	addr := netip.AddrFrom4([4]byte{10, r.LAN.Addr().As4()[1], 0, byte(octet)})
	port := fmt.Sprintf("l%d", octet)
	r.tb.link(ns, "eth0", r.NS, port)
	r.mustIP("link", "set", port, "master", "lan", "up")
	ns.mustIP("addr", "add", addr.String()+"/24", "dev", "eth0")
	ns.mustIP("link", "set", "eth0", "up")
	ns.mustIP("route", "add", "default", "via", r.gateway().String())
	return &Host{NS: ns, Addr: addr, Router: r}
}

// MoveTo takes h, a host behind a router, off its LAN and puts it on r's:
// its link goes away (with its address and routes), a new one comes up on
// r's LAN with the next free address there, and the default route points
// at r. Processes in h keep running; sockets bound to a wildcard address
// keep working, from the new address. It returns the new address. h's
// Addr and Router change; do not call it while another goroutine reads
// them.
func (h *Host) MoveTo(r *Router) (netip.Addr, error) {
	if h.Router == nil {
		return netip.Addr{}, fmt.Errorf("netns: MoveTo: %s is a public host", h.Name)
	}
	r.mu.Lock()
	octet := r.hostNext
	r.hostNext++
	r.mu.Unlock()
	if octet > maxHostOctet {
		return netip.Addr{}, fmt.Errorf("netns: LAN %s is full", r.LAN)
	}
	if _, err := h.ip("link", "del", "eth0"); err != nil {
		return netip.Addr{}, err
	}
	addr := netip.AddrFrom4([4]byte{10, r.LAN.Addr().As4()[1], 0, byte(octet)})
	port := fmt.Sprintf("l%d", octet)
	if _, err := h.ip("link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", r.Name); err != nil {
		return netip.Addr{}, err
	}
	if _, err := r.ip("link", "set", port, "master", "lan", "up"); err != nil {
		return netip.Addr{}, err
	}
	for _, args := range [][]string{
		{"addr", "add", addr.String() + "/24", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", r.gateway().String()},
	} {
		if _, err := h.ip(args...); err != nil {
			return netip.Addr{}, err
		}
	}
	h.Addr, h.Router = addr, r
	return addr, nil
}

// PublicAddr is the router's address on the internet, which every mapping
// uses. RebindAddr changes it.
func (r *Router) PublicAddr() netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.public
}

// Forward adds a static inbound DNAT (a port forward): packets of proto
// ("udp" or "tcp") arriving on the public address at port go to `to`,
// whoever sends them. This is endpoint-independent filtering for that port,
// and it needs no outbound packet first:
//
//	-A MYC-DNAT -p PROTO --dport PORT -j DNAT --to-destination TO
func (r *Router) Forward(proto string, port uint16, to netip.AddrPort) error {
	if proto != "udp" && proto != "tcp" {
		return fmt.Errorf("netns: Forward: protocol %q, want udp or tcp", proto)
	}
	_, err := r.run("", "iptables", "-t", "nat", "-A", "MYC-DNAT", "-p", proto, "--dport", fmt.Sprint(port), "-j", "DNAT", "--to-destination", to.String())
	return err
}

// RebindPort moves every mapping to a new external port, as a NAT that
// lost its state or restarted would: it switches MYC-SNAT to the other
// port range of rebindPorts (each new mapping then gets a port in the new
// range, so none keeps its old one), empties the recipe's nft sets, and
// flushes conntrack. The next packet a host sends makes a new mapping; a
// peer's packets to the old one are dropped.
func (r *Router) RebindPort() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ports := rebindPorts[r.rebinds%len(rebindPorts)]
	r.rebinds++
	return r.whileHeld(func() error {
		if _, err := r.run("*nat\n:MYC-SNAT - [0:0]\n"+r.snatRules(ports)+"COMMIT\n", "iptables-restore", "--noflush"); err != nil {
			return err
		}
		return r.resetState()
	})
}

// RebindAddr gives the router the next free public address in
// 198.51.100.0/24 in place of its current one, empties its NAT state, and
// returns the new address. The SNAT rule is left alone: without an earlier
// RebindPort, mappings keep their ports, so peers see the old port on a new
// address; after one, ports are drawn from its range again.
func (r *Router) RebindAddr() (netip.Addr, error) {
	r.tb.mu.Lock()
	octet := r.tb.natNext
	r.tb.natNext++
	r.tb.mu.Unlock()
	if octet > maxHostOctet {
		return netip.Addr{}, fmt.Errorf("netns: out of router addresses")
	}
	next := netip.AddrFrom4([4]byte{198, 51, 100, byte(octet)})
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.whileHeld(func() error {
		// Routes through wan do not depend on its address (AddNAT), so
		// they survive the swap; replace them anyway, in case.
		if _, err := r.ip("addr", "del", r.public.String()+"/32", "dev", "wan"); err != nil {
			return err
		}
		if _, err := r.ip("addr", "add", next.String()+"/32", "dev", "wan"); err != nil {
			return err
		}
		if _, err := r.ip("route", "replace", internetAltAddr.String(), "dev", "wan"); err != nil {
			return err
		}
		if _, err := r.ip("route", "replace", "default", "via", internetAltAddr.String(), "dev", "wan"); err != nil {
			return err
		}
		return r.resetState()
	})
	if err != nil {
		return netip.Addr{}, err
	}
	r.public = next
	return next, nil
}

// whileHeld runs f with holdTable in place.
func (r *Router) whileHeld(f func() error) error {
	if _, err := r.run(holdTable, "nft", "-f", "-"); err != nil {
		return err
	}
	ferr := f()
	if _, err := r.run("", "nft", "delete", "table", "inet", "mychold"); err != nil && ferr == nil {
		ferr = err
	}
	return ferr
}

// resetState empties the recipe's nft sets, then conntrack.
func (r *Router) resetState() error {
	if r.nftTable() != "" {
		if _, err := r.run("flush map ip mycnat endpoint\nflush set ip mycnat contacted\n", "nft", "-f", "-"); err != nil {
			return err
		}
	}
	_, err := r.run("", "conntrack", "-F")
	return err
}

// Conntrack returns the router's conntrack table (`conntrack -L`).
func (r *Router) Conntrack() (string, error) {
	return r.run("", "conntrack", "-L")
}

// diagnostics is what a failed test logs about the router.
func (r *Router) diagnostics() string {
	var b strings.Builder
	for _, c := range [][]string{{"iptables-save"}, {"nft", "list", "ruleset"}, {"conntrack", "-L"}, {"ip", "-br", "addr"}} {
		out, err := r.run("", c[0], c[1:]...)
		fmt.Fprintf(&b, "$ %s\n%s", strings.Join(c, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(%v)\n", err)
		}
	}
	return b.String()
}
