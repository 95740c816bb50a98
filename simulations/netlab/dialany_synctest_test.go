package netlab_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/simulations/netlab"
)

// TestSynctestDialAnyID is the circuits issue's netlab acceptance run,
// gated: MYCELIUM_DIAL_ANY=NODES[,DIALS] (for example 200,1000). 30% of
// the nodes are public, 5 of them with the relay role; the rest sit each
// behind its own NAT, cycling through the 9 RFC 4787 classes. Once every
// node's record is known, random pairs dial each other by node ID alone
// and echo one byte; every dial must succeed. It logs the time to the
// first echoed byte (median, p99) and how each connection ran (direct,
// punched, or a circuit).
func TestSynctestDialAnyID(t *testing.T) {
	spec := os.Getenv("MYCELIUM_DIAL_ANY")
	if spec == "" {
		t.Skip("a large run: set MYCELIUM_DIAL_ANY=NODES[,DIALS], e.g. 200,1000")
	}
	nodesN, dialsN := 200, 1000
	if _, err := fmt.Sscanf(spec, "%d,%d", &nodesN, &dialsN); err != nil {
		if nodesN, err = strconv.Atoi(spec); err != nil {
			t.Fatalf("MYCELIUM_DIAL_ANY=%q: want NODES[,DIALS]", spec)
		}
	}
	synctest.Test(t, func(t *testing.T) {
		cfg := netlab.DefaultConfig()
		cfg.Link.Latency = 5 * time.Millisecond
		lab, err := netlab.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer lab.Close()
		var nodes []*mycelium.Node
		defer func() {
			for _, n := range nodes {
				n.Close()
			}
		}()
		labStart := time.Now()
		classes := natClasses()[1:] // the 9 NAT classes
		public := max(5, nodesN*3/10)
		var boot []mycelium.Peer
		for i := range nodesN {
			var h *netlab.Host
			if i < public {
				if i >= 240 {
					t.Fatal("too many public nodes for one /24")
				}
				if h, err = lab.AddHost(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)})); err != nil {
					t.Fatal(err)
				}
			} else {
				c := classes[(i-public)%len(classes)]
				k := i - public
				home, err := lab.AddNAT(natCfg(fmt.Sprintf("198.51.%d.%d", 100+k/250, 1+k%250), c.mapping, c.filter))
				if err != nil {
					t.Fatal(err)
				}
				h, err = home.AddHost(netip.MustParseAddr("192.168.1.10"))
				if err != nil {
					t.Fatal(err)
				}
			}
			pc, err := h.ListenPacket(4433)
			if err != nil {
				t.Fatal(err)
			}
			key, _ := mycelium.GenerateKey()
			ncfg := mycelium.DefaultConfig()
			ncfg.Key, ncfg.PacketConn, ncfg.Bootstrap = key, pc, boot
			ncfg.Relay = i < 5
			n, err := mycelium.New(ncfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(); err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, n)
			if boot == nil {
				boot = []mycelium.Peer{{ID: n.ID(), Addr: n.LocalAddr()}}
			}
			serveLabEcho(t, n)
		}
		// Polled every 100 ms (virtual) for up to 10 minutes: with
		// hundreds of nodes a poll is costly and the registry takes a few
		// minutes to fill everywhere.
		ready := func() bool {
			for i, n := range nodes {
				st := n.Stats()
				if st.Known < nodesN || (i >= public && (st.NAT.Public || st.NAT.Observers == 0)) {
					return false
				}
			}
			return true
		}
		// Readiness takes about 40 s or, in some runs, 5m8s: one NAT round
		// plus natInterval. Log who holds it up at 90 s, once.
		stragglersLogged := false
		for deadline := time.Now().Add(10 * time.Minute); !ready(); time.Sleep(100 * time.Millisecond) {
			if !stragglersLogged && time.Since(labStart) > 90*time.Second {
				stragglersLogged = true
				for i, n := range nodes {
					st := n.Stats()
					if st.Known < nodesN || (i >= public && (st.NAT.Public || st.NAT.Observers == 0)) {
						t.Logf("not ready at 90 s: node %d (public host %v): knows %d records, NAT %s/%s public %v, observers %d, reflexive %v",
							i, i < public, st.Known, st.NAT.Mapping, st.NAT.Filtering, st.NAT.Public, st.NAT.Observers, st.NAT.Reflexive)
					}
				}
			}
			if time.Now().After(deadline) {
				for i, n := range nodes {
					st := n.Stats()
					if st.Known < nodesN || (i >= public && (st.NAT.Public || st.NAT.Observers == 0)) {
						t.Logf("node %d (%s) not ready: knows %d records, NAT public %v, observers %d, %d peers",
							i, n.ID().Short(), st.Known, st.NAT.Public, st.NAT.Observers, len(st.Peers))
					}
				}
				t.Fatal("not every node knew every record and its own NAT after 10 virtual minutes")
			}
		}
		t.Logf("every node knows every record and its own NAT after %v (virtual)", time.Since(labStart))
		// Let the records that say so, and name home relays, spread.
		time.Sleep(2 * time.Minute) // virtual time (synctest)
		logComponents(t, "before the dials", nodes, public)
		rng := rand.New(rand.NewPCG(1, 2))
		var ttfb []time.Duration
		paths := map[string]int{}
		failed := 0
		for d := range dialsN {
			a, b := rng.IntN(nodesN), rng.IntN(nodesN-1)
			if b >= a {
				b++
			}
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c, err := nodes[a].Dial(ctx, nodes[b].ID(), "echo")
			if err == nil {
				c.Write([]byte{byte(d)})
				buf := make([]byte, 1)
				_, err = io.ReadFull(c, buf)
				c.Close()
			}
			cancel()
			if err != nil {
				failed++
				t.Errorf("dial %d: node %d -> node %d: %v", d, a, b, err)
				for _, p := range nodes[a].Stats().Peers {
					if p.ID == nodes[b].ID() {
						t.Logf("  the dialler's connection to it: path %s, via %v", p.Path, p.Via)
					}
				}
				if rec, ok := nodes[a].Lookup(nodes[b].ID()); ok {
					own, _ := nodes[b].Lookup(nodes[b].ID())
					rs := nodes[a].Stats().Registry
					t.Logf("  its record at the dialler: seq %d (its own: seq %d, issued %v ago), inbound %v, NAT %v/%v, %d listen, %d reflexive, home relays %d, neighbours %d",
						rec.Seq, own.Seq, time.Since(own.Issued), rec.Inbound, rec.Mapping, rec.Filtering, len(rec.Listen), len(rec.Reflexive), len(rec.HomeRelays), len(rec.Neighbors))
					t.Logf("  the dialler's registry: %+v; %d peers", rs, len(nodes[a].Stats().Peers))
				} else {
					t.Logf("  the dialler holds no record of it")
				}
				continue
			}
			ttfb = append(ttfb, time.Since(start))
			for _, p := range nodes[a].Stats().Peers {
				if p.ID == nodes[b].ID() {
					paths[p.Path]++
				}
			}
		}
		logComponents(t, "at the end", nodes, public)
		// How records reached the nodes: broadcast (Plumtree) or
		// anti-entropy at neighbour-up.
		var bcast, ae []int
		for _, n := range nodes {
			rs := n.Stats().Registry
			bcast = append(bcast, int(rs.BroadcastsIn))
			ae = append(ae, int(rs.RecordsIn))
		}
		slices.Sort(bcast)
		slices.Sort(ae)
		t.Logf("records offered per node by broadcast: min %d, median %d, max %d; by anti-entropy: min %d, median %d, max %d",
			bcast[0], bcast[len(bcast)/2], bcast[len(bcast)-1], ae[0], ae[len(ae)/2], ae[len(ae)-1])
		slices.Sort(ttfb)
		if len(ttfb) > 0 {
			t.Logf("%d nodes (%d public, 5 relays), %d dials by ID: %d failed; time to first byte median %v, p99 %v, max %v; paths %v",
				nodesN, public, dialsN, failed, ttfb[len(ttfb)/2], ttfb[len(ttfb)*99/100], ttfb[len(ttfb)-1], paths)
		}
	})
}

// logComponents logs the components of the active-view graph (links taken
// both ways): a part of the overlay cut off from the rest gets no
// broadcasts from it. Each member of a component smaller than the largest
// is logged with its view and the membership counters that say how it
// tried to get out.
func logComponents(t *testing.T, when string, nodes []*mycelium.Node, public int) {
	t.Helper()
	index := map[mycelium.NodeID]int{}
	for i, n := range nodes {
		index[n.ID()] = i
	}
	stats := make([]mycelium.Stats, len(nodes))
	adj := make([][]int, len(nodes))
	for i, n := range nodes {
		stats[i] = n.Stats()
		for _, p := range stats[i].Active {
			if j, ok := index[p]; ok {
				adj[i] = append(adj[i], j)
				adj[j] = append(adj[j], i)
			}
		}
	}
	comp := make([]int, len(nodes))
	for i := range comp {
		comp[i] = -1
	}
	var members [][]int
	for i := range nodes {
		if comp[i] >= 0 {
			continue
		}
		c, stack := len(members), []int{i}
		comp[i] = c
		members = append(members, nil)
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			members[c] = append(members[c], x)
			for _, y := range adj[x] {
				if comp[y] < 0 {
					comp[y] = c
					stack = append(stack, y)
				}
			}
		}
	}
	slices.SortFunc(members, func(a, b []int) int { return len(b) - len(a) })
	var sizes []int
	for _, m := range members {
		sizes = append(sizes, len(m))
	}
	t.Logf("active-view graph %s: %d component(s), sizes %v", when, len(sizes), sizes)
	// How often the driver's own repairs ran so far: a rejoin when alone,
	// one when the records showed a part of the overlay cut off, and the
	// connections closed as silent.
	var rejoins, splits, splitNodes, silent uint64
	for _, st := range stats {
		c := st.Counters
		rejoins += c.RegistryRejoins
		splits += c.PartitionRejoins
		silent += c.SilentConns
		if c.PartitionRejoins > 0 {
			splitNodes++
		}
	}
	t.Logf("  so far: rejoins when alone %d; rejoins of a cut-off part %d, by %d nodes; silent connections closed %d", rejoins, splits, splitNodes, silent)
	for _, m := range members[1:] {
		for _, i := range m {
			st := stats[i]
			var act []int
			for _, p := range st.Active {
				act = append(act, index[p])
			}
			ms := st.Membership
			t.Logf("  island node %d (public %v, NAT %v/%v): active %v, passive %d; escalations %d, contact probes %d, isolation joins %d, rejoins %d, requests %d (accepted %d, rejected %d, timeouts %d, failures %d), connect failed %d",
				i, i < public, st.NAT.Mapping, st.NAT.Filtering, act, st.Passive, ms.Escalations, ms.ContactProbes, ms.IsolationJoins, ms.Rejoins,
				ms.NeighborRequests, ms.NeighborAccepted, ms.NeighborRejected, ms.NeighborTimeouts, ms.NeighborFailures, ms.ConnectFailed)
		}
	}
}
