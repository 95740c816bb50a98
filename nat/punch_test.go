package nat

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/mycelium-net/mycelium/registry"
)

const (
	eiClass  = registry.NATEndpointIndependent
	adClass  = registry.NATAddressDependent
	apdClass = registry.NATAddressAndPortDependent
)

// knownBehaviors are the ten rows and columns of the doc's table, in its
// order.
func knownBehaviors() []Behavior {
	out := []Behavior{{Public: true}}
	for _, m := range []registry.NATClass{eiClass, adClass, apdClass} {
		for _, f := range []registry.NATClass{eiClass, adClass, apdClass} {
			out = append(out, Behavior{Mapping: m, Filtering: f})
		}
	}
	return out
}

// allBehaviors adds those with unknown classes.
func allBehaviors() []Behavior {
	out := []Behavior{{Public: true}}
	for m := range registry.NATClass(4) {
		for f := range registry.NATClass(4) {
			out = append(out, Behavior{Mapping: m, Filtering: f})
		}
	}
	return out
}

// theTable is the package doc's table: row a (us), column b (the peer),
// D Direct, P Punch, R Relay.
var theTable = []string{
	"public    D D P P D P P D P P",
	"eim-eif   D D P P D P P D P P",
	"eim-adf   D D P P D P P D P P",
	"eim-apdf  D D P P D R R D R R",
	"adm-eif   D D P P D P P D P P",
	"adm-adf   D D P R D R R D R R",
	"adm-apdf  D D P R D R R D R R",
	"apdm-eif  D D P P D P P D P P",
	"apdm-adf  D D P R D R R D R R",
	"apdm-apdf D D P R D R R D R R",
}

func TestCanPunchTable(t *testing.T) {
	bs := knownBehaviors()
	letter := map[PunchOutcome]string{Direct: "D", Punch: "P", Relay: "R", Unknown: "?"}
	for i, a := range bs {
		f := strings.Fields(theTable[i])
		if f[0] != a.String() || len(f) != 1+len(bs) {
			t.Fatalf("table row %d is %q, want %s and %d cells", i, theTable[i], a, len(bs))
		}
		for j, b := range bs {
			if got := letter[CanPunch(a, b)]; got != f[1+j] {
				t.Errorf("CanPunch(%s, %s) = %s, table says %s", a, b, got, f[1+j])
			}
		}
	}
}

// TestCanPunchDocTable holds doc.go's copy of the table to this one.
func TestCanPunchDocTable(t *testing.T) {
	for _, row := range theTable {
		f := strings.Fields(row)
		doc := "//\t" + fmt.Sprintf("%-10s", f[0]) + strings.Join(f[1:], "  ")
		if !strings.Contains(docGo(t), doc+"\n") {
			t.Errorf("doc.go lacks the row %q", doc)
		}
	}
}

func TestCanPunchSymmetry(t *testing.T) {
	for _, a := range allBehaviors() {
		for _, b := range allBehaviors() {
			ab, ba := CanPunch(a, b), CanPunch(b, a)
			if ab.Works() != ba.Works() || (ab == Relay) != (ba == Relay) || (ab == Unknown) != (ba == Unknown) {
				t.Errorf("CanPunch(%s, %s) = %s but CanPunch(%s, %s) = %s", a, b, ab, b, a, ba)
			}
			if ab == Direct && !ba.Works() {
				t.Errorf("CanPunch(%s, %s) = direct but the reverse is %s", a, b, ba)
			}
		}
	}
}

func TestCanPunchUnknown(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b Behavior
		want PunchOutcome
	}{
		{"nothing_known", Behavior{}, Behavior{}, Unknown},
		{"to_public", Behavior{}, Behavior{Public: true}, Direct},
		{"to_unknown_mapping_eif", Behavior{}, Behavior{Filtering: eiClass}, Direct},
		{"from_public", Behavior{Public: true}, Behavior{}, Punch},
		{"eim_adf_to_unknown_mapping_adf", Behavior{Mapping: eiClass, Filtering: adClass}, Behavior{Filtering: adClass}, Punch},
		{"eim_apdf_to_unknown_mapping_apdf", Behavior{Mapping: eiClass, Filtering: apdClass}, Behavior{Filtering: apdClass}, Unknown},
		{"apdm_apdf_to_apdm_unknown_filtering", Behavior{Mapping: apdClass, Filtering: apdClass}, Behavior{Mapping: apdClass}, Unknown},
		{"apdm_apdf_to_eim_unknown_filtering", Behavior{Mapping: apdClass, Filtering: apdClass}, Behavior{Mapping: eiClass}, Unknown},
		{"eim_eif_to_unknown", Behavior{Mapping: eiClass, Filtering: eiClass}, Behavior{}, Punch},
		{"out_of_range_is_unknown", Behavior{Mapping: 9, Filtering: apdClass}, Behavior{Mapping: apdClass, Filtering: apdClass}, Relay},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := CanPunch(c.a, c.b); got != c.want {
				t.Errorf("CanPunch(%s, %s) = %s, want %s", c.a, c.b, got, c.want)
			}
		})
	}
}

func TestPunchOutcomeString(t *testing.T) {
	for o, want := range map[PunchOutcome]string{Relay: "relay", Punch: "punch", Direct: "direct", Unknown: "unknown", 7: "PunchOutcome(7)"} {
		if o.String() != want {
			t.Errorf("%d: %q, want %q", o, o.String(), want)
		}
	}
}

// TestCanPunchModel checks every known cell against a packet-level model
// of two RFC 4787 NATs (below), built apart from the table: Direct must
// mean a's dial alone opens a path, Punch that a simultaneous open or b's
// dial does, Relay that none does.
func TestCanPunchModel(t *testing.T) {
	for _, a := range knownBehaviors() {
		for _, b := range knownBehaviors() {
			dial := modelPunch(a, b, false)
			sim := modelPunch(a, b, true)
			rev := modelPunch(b, a, false)
			var want PunchOutcome
			switch {
			case dial:
				want = Direct
			case sim || rev:
				want = Punch
			default:
				want = Relay
			}
			if got := CanPunch(a, b); got != want {
				t.Errorf("CanPunch(%s, %s) = %s; model: dial %v, simultaneous %v, reverse dial %v", a, b, got, dial, sim, rev)
			}
		}
	}
}

// modelNAT is one host's socket behind an RFC 4787 NAT with one public
// IP (or none, if public). Each mapping has its own filter (RFC 4787
// section 5: the filtering rule belongs to the mapping). New mappings
// get fresh ports nobody can guess. An admitted inbound packet makes a
// session: replies to its sender leave by the mapping it came in on,
// unless the host already has a mapping for that destination (as a
// conntrack entry would).
type modelNAT struct {
	b        Behavior
	ip       netip.Addr
	next     uint16
	maps     map[netip.AddrPort]uint16 // by destination, reduced per mapping class
	sent     map[uint16]map[netip.AddrPort]bool
	sessions map[netip.AddrPort]uint16
}

func newModelNAT(b Behavior, ip netip.Addr) *modelNAT {
	return &modelNAT{b: b, ip: ip, next: 40000, maps: map[netip.AddrPort]uint16{},
		sent: map[uint16]map[netip.AddrPort]bool{}, sessions: map[netip.AddrPort]uint16{}}
}

func (n *modelNAT) key(dst netip.AddrPort) netip.AddrPort {
	switch n.b.Mapping {
	case eiClass:
		return netip.AddrPort{}
	case adClass:
		return netip.AddrPortFrom(dst.Addr(), 0)
	}
	return dst
}

// out sends to dst and returns the packet's source outside.
func (n *modelNAT) out(dst netip.AddrPort) netip.AddrPort {
	if n.b.Public {
		return netip.AddrPortFrom(n.ip, 4242)
	}
	p, ok := n.maps[n.key(dst)]
	if !ok {
		if p, ok = n.sessions[dst]; !ok {
			p = n.next
			n.next++
			n.maps[n.key(dst)] = p
		}
	}
	if n.sent[p] == nil {
		n.sent[p] = map[netip.AddrPort]bool{}
	}
	n.sent[p][dst] = true
	return netip.AddrPortFrom(n.ip, p)
}

// in reports whether a packet from src to our port is let in.
func (n *modelNAT) in(src netip.AddrPort, port uint16) bool {
	if n.b.Public {
		return port == 4242
	}
	sent, ok := n.sent[port]
	if !ok {
		return false
	}
	admit := false
	switch n.b.Filtering {
	case eiClass:
		admit = true
	case adClass:
		for d := range sent {
			admit = admit || d.Addr() == src.Addr()
		}
	default:
		admit = sent[src]
	}
	if admit {
		if _, ok := n.sessions[src]; !ok {
			n.sessions[src] = port
		}
	}
	return admit
}

// modelPunch plays a connection from a to b: both learn their published
// address from an observer, then for a few rounds each side sends to
// every address of the other it knows (a knows b's published address; b
// knows a's only if both, else it only answers) and learns the source of
// every packet let in. Within a round every packet leaves before any
// arrives (no conntrack race). It reports whether, in the last round,
// some pair of outside addresses carried packets both ways.
func modelPunch(a, b Behavior, both bool) bool {
	obs := netip.MustParseAddrPort("192.0.2.1:3478")
	na := newModelNAT(a, netip.MustParseAddr("203.0.113.1"))
	nb := newModelNAT(b, netip.MustParseAddr("198.51.100.1"))
	pubA, pubB := na.out(obs), nb.out(obs)
	knowA := map[netip.AddrPort]bool{} // what a knows of b
	knowB := map[netip.AddrPort]bool{}
	knowA[pubB] = true
	if both {
		knowB[pubA] = true
	}
	type pkt struct{ src, dst netip.AddrPort }
	var ab, ba []pkt // let in, last round
	for range 4 {
		var toB, toA []pkt
		for _, d := range sortedAddrs(knowA) {
			toB = append(toB, pkt{na.out(d), d})
		}
		for _, d := range sortedAddrs(knowB) {
			toA = append(toA, pkt{nb.out(d), d})
		}
		ab, ba = nil, nil
		for _, p := range toB {
			if p.dst.Addr() == nb.ip && nb.in(p.src, p.dst.Port()) {
				ab = append(ab, p)
				knowB[p.src] = true
			}
		}
		for _, p := range toA {
			if p.dst.Addr() == na.ip && na.in(p.src, p.dst.Port()) {
				ba = append(ba, p)
				knowA[p.src] = true
			}
		}
	}
	for _, x := range ab {
		for _, y := range ba {
			if x.src == y.dst && x.dst == y.src {
				return true
			}
		}
	}
	return false
}

func sortedAddrs(m map[netip.AddrPort]bool) []netip.AddrPort {
	var out []netip.AddrPort
	for a := range m {
		out = append(out, a)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j].Compare(out[i]) < 0 {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func docGo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
