package netlab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/nat"
	"github.com/mycelium-net/mycelium/registry"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// natClass is one column of the NAT matrix: public, or a NAT with one of
// the 3 x 3 RFC 4787 mapping x filtering behaviours.
type natClass struct {
	name    string
	public  bool
	mapping netlab.Behavior
	filter  netlab.Behavior
}

func natClasses() []natClass {
	out := []natClass{{name: "public", public: true}}
	names := map[netlab.Behavior]string{netlab.EndpointIndependent: "ei", netlab.AddressDependent: "ad", netlab.AddressAndPortDependent: "apd"}
	for _, m := range []netlab.Behavior{netlab.EndpointIndependent, netlab.AddressDependent, netlab.AddressAndPortDependent} {
		for _, f := range []netlab.Behavior{netlab.EndpointIndependent, netlab.AddressDependent, netlab.AddressAndPortDependent} {
			out = append(out, natClass{name: names[m] + "m-" + names[f] + "f", mapping: m, filter: f})
		}
	}
	return out
}

func regClass(b netlab.Behavior) registry.NATClass {
	switch b {
	case netlab.EndpointIndependent:
		return registry.NATEndpointIndependent
	case netlab.AddressDependent:
		return registry.NATAddressDependent
	}
	return registry.NATAddressAndPortDependent
}

func (c natClass) behavior() nat.Behavior {
	if c.public {
		return nat.Behavior{Public: true, Mapping: registry.NATEndpointIndependent, Filtering: registry.NATEndpointIndependent}
	}
	return nat.Behavior{Mapping: regClass(c.mapping), Filtering: regClass(c.filter)}
}

// pairResult is what one run of a pair gave.
type pairResult struct {
	classified bool          // both nodes reported their own class
	direct     bool          // A ended up with a direct connection to B
	dial       time.Duration // simultaneous dial, first packet to connection
	total      time.Duration // Dial call
}

// runPair builds a lab of 24 public nodes and nodes A and B of classes a
// and b (A at 198.51.100.1 or 203.0.113.100, B at 198.51.100.2 or
// 203.0.113.101), waits for both to classify themselves, and has A dial B
// by ID.
func runPair(t *testing.T, a, b natClass, seed uint64) pairResult {
	var res pairResult
	synctest.Test(t, func(t *testing.T) {
		cfg := netlab.DefaultConfig()
		cfg.Seed = seed
		cfg.Link.Latency = 5 * time.Millisecond
		lab, err := netlab.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer lab.Close()
		var all []*mycelium.Node
		defer func() {
			for _, n := range all {
				n.Close()
			}
		}()
		var boot []mycelium.Peer
		for i := range 12 {
			h, _ := lab.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}))
			for _, port := range []uint16{4433, 4434} {
				n := labNodeBoot(t, h, port, boot)
				all = append(all, n)
				if boot == nil {
					boot = []mycelium.Peer{{ID: n.ID(), Addr: n.LocalAddr()}}
				}
			}
		}
		place := func(c natClass, i int) *mycelium.Node {
			var host *netlab.Host
			if c.public {
				host, _ = lab.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)}))
			} else {
				home, err := lab.AddNAT(natCfg(fmt.Sprintf("198.51.100.%d", 1+i), c.mapping, c.filter))
				if err != nil {
					t.Fatal(err)
				}
				host, _ = home.AddHost(netip.MustParseAddr("192.168.1.10"))
			}
			pc, err := host.ListenPacket(uint16(5000 + i))
			if err != nil {
				t.Fatal(err)
			}
			key, _ := mycelium.GenerateKey()
			nc := mycelium.DefaultConfig()
			nc.Key, nc.PacketConn, nc.Bootstrap = key, pc, boot
			nc.Membership.ActiveSize = 1 // stay a stranger to most public nodes, for the filtering probes
			n, err := mycelium.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			all = append(all, n)
			return n
		}
		na, nb := place(a, 0), place(b, 1)
		serveLabEcho(t, nb)
		known := func(n *mycelium.Node, c natClass) bool {
			s := n.Stats().NAT
			return s.Public == c.public && s.Mapping == c.behavior().Mapping.String() && s.Filtering == c.behavior().Filtering.String()
		}
		deadline := time.Now().Add(2 * time.Minute)
		for !known(na, a) || !known(nb, b) {
			if time.Now().After(deadline) {
				t.Logf("%s x %s: not classified: A %+v, B %+v", a.name, b.name, na.Stats().NAT, nb.Stats().NAT)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		// A must hold B's record as it is now, and B's NAT must be in it.
		for {
			r, ok := na.Lookup(nb.ID())
			if ok && r.Inbound == b.public && r.Filtering.String() == nb.Stats().NAT.Filtering {
				break
			}
			if time.Now().After(deadline) {
				t.Logf("%s x %s: A never learnt B's class", a.name, b.name)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		res.classified = true
		before := na.Stats().Counters.PunchDialMicros
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c, err := na.Dial(ctx, nb.ID(), "echo")
		cancel()
		res.total = time.Since(start)
		if err != nil {
			if !errors.Is(err, mycelium.ErrNoDirectPath) || nat.CanPunch(a.behavior(), b.behavior()).Works() {
				t.Logf("%s x %s: dial: %v", a.name, b.name, err)
			}
			return
		}
		c.Write([]byte("x"))
		io.ReadFull(c, make([]byte, 1))
		c.Close()
		for _, p := range na.Stats().Peers {
			if p.ID == nb.ID() {
				ap, err := netip.ParseAddrPort(p.Addr)
				res.direct = err == nil && (ap.Addr() == netip.MustParseAddr("198.51.100.2") || ap.Addr() == netip.MustParseAddr("203.0.113.101"))
			}
		}
		res.dial = time.Duration(na.Stats().Counters.PunchDialMicros-before) * time.Microsecond
	})
	return res
}

// TestSynctestNATPairs checks a few pairs of NAT classes in every
// `make test`: each node classifies itself, and A reaches B directly
// exactly where nat.CanPunch says it can (MYCELIUM_NAT_MATRIX=SEEDS runs
// every pair, see TestSynctestNATMatrix).
func TestSynctestNATPairs(t *testing.T) {
	cls := map[string]natClass{}
	for _, c := range natClasses() {
		cls[c.name] = c
	}
	for _, p := range [][2]string{
		{"eim-apdf", "eim-apdf"},  // Punch
		{"eim-adf", "apdm-apdf"},  // Punch: the EIM side admits the symmetric side's new port
		{"eim-apdf", "apdm-apdf"}, // Relay: not tried
		{"apdm-apdf", "eim-eif"},  // Direct: B admits anyone
	} {
		a, b := cls[p[0]], cls[p[1]]
		t.Run(a.name+"_x_"+b.name, func(t *testing.T) {
			r := runPair(t, a, b, 1)
			want := nat.CanPunch(a.behavior(), b.behavior()).Works()
			if !r.classified || r.direct != want {
				t.Fatalf("classified %v, direct %v; the theory says %v (%v)", r.classified, r.direct, want, nat.CanPunch(a.behavior(), b.behavior()))
			}
		})
	}
}

// TestSynctestNATMatrix runs every ordered pair of the 10 classes for
// MYCELIUM_NAT_MATRIX seeds each and logs the matrix: per pair, how many
// runs went direct, what the theory says, and the mean simultaneous-dial
// time. Every run must classify both nodes and go direct exactly where
// the theory allows.
func TestSynctestNATMatrix(t *testing.T) {
	seeds, _ := strconv.Atoi(os.Getenv("MYCELIUM_NAT_MATRIX"))
	if seeds < 1 {
		t.Skip("the full matrix takes minutes: set MYCELIUM_NAT_MATRIX=SEEDS")
	}
	classes := natClasses()
	var rows []string
	rows = append(rows, "| A \\ B | "+strings.Join(func() []string {
		var s []string
		for _, c := range classes {
			s = append(s, c.name)
		}
		return s
	}(), " | ")+" |")
	rows = append(rows, "|"+strings.Repeat("---|", len(classes)+1))
	for _, a := range classes {
		row := "| " + a.name + " |"
		for _, b := range classes {
			want := nat.CanPunch(a.behavior(), b.behavior())
			direct, bad := 0, 0
			var dial time.Duration
			for s := range seeds {
				var r pairResult
				t.Run(fmt.Sprintf("%s_x_%s_%d", a.name, b.name, s), func(t *testing.T) {
					r = runPair(t, a, b, uint64(s+1))
					if !r.classified || r.direct != want.Works() {
						t.Errorf("classified %v, direct %v; theory %v", r.classified, r.direct, want)
					}
				})
				if r.direct {
					direct++
					dial += r.dial
				}
				if !r.classified || r.direct != want.Works() {
					bad++
				}
			}
			cell := fmt.Sprintf(" %d/%d %s", direct, seeds, want)
			if direct > 0 && dial > 0 {
				cell += fmt.Sprintf(" %dms", (dial / time.Duration(direct)).Milliseconds())
			}
			if bad > 0 {
				cell += fmt.Sprintf(" (%d wrong)", bad)
			}
			row += cell + " |"
		}
		rows = append(rows, row)
	}
	t.Logf("NAT matrix, %d seeds per pair (direct runs / runs, nat.CanPunch, mean simultaneous dial):\n%s", seeds, strings.Join(rows, "\n"))
}
