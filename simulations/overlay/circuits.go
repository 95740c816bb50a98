package overlay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/mycelium-net/mycelium/circuit"
	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/nat"
	"github.com/mycelium-net/mycelium/registry"
	"github.com/mycelium-net/mycelium/relay"
	"github.com/mycelium-net/mycelium/simulations/des"
)

// The circuit phase (Scenario.CircuitDials): dials by node ID, each
// direct or over a circuit, decided by the node's own functions
// (nat.CanPunch, circuit.HomeOrder, circuit.Graph.Select and
// circuit.PathAttempts) on the simulated overlay's links. The doc
// comment of the package lists what it models and what it does not.

// homeRelays is how many home relays a NAT-bound node keeps: the node's
// maxHomes.
const homeRelays = 2

// circStream is the random stream of the circuit phase ("circ"): the
// dedicated relays, home relay orders, the relays that fail, the dials
// and path ties.
const circStream = 0x63697263

// relayCapacity is the capacity in circuits a dedicated relay announces:
// the node's default relay.Resources.MaxCircuits.
var relayCapacity = uint32(relay.DefaultResources().MaxCircuits)

// circSim is the circuit phase of a run.
type circSim struct {
	s      *Sim
	rng    *rand.Rand
	relay  []bool // by node index: a dedicated relay
	relays []int  // the dedicated relays' indices, in order

	// Taken when the phase starts.
	cands []circuit.Candidate
	cand  []int32   // by node index: its index in cands, or -1 (no record)
	homes [][]int32 // by node index: a NAT-bound node's home relays
	// graph is over cands; nil when a relay's load has changed since.
	graph *circuit.Graph
	// failed holds, by node index, the relays of that node's failed
	// paths: the node avoids them for a minute, longer than the phase.
	failed [][]circuit.NodeID

	res CircuitResult
}

// newCircSim draws the dedicated relays among the public nodes.
func newCircSim(s *Sim) *circSim {
	c := &circSim{s: s, rng: des.NewRand(s.sc.Seed, circStream), relay: make([]bool, len(s.nodes))}
	var pub []int
	for i := range s.nodes {
		if s.public(i) {
			pub = append(pub, i)
		}
	}
	for _, k := range c.rng.Perm(len(pub))[:s.sc.Relays] { // Validate: Relays <= len(pub)
		c.relays = append(c.relays, pub[k])
		c.relay[pub[k]] = true
	}
	slices.Sort(c.relays)
	return c
}

// run is the phase: records are taken, relays fail, the dials follow.
func (c *circSim) run() {
	s := c.s
	now := s.eng.Now()
	c.res = CircuitResult{
		AtSeconds: now.Seconds(),
		Hops:      make([]int, circuit.MaxRelays+1),
		Attempts:  make([]int, circuit.PathAttempts+1),
		Relays:    len(c.relays),
	}
	c.snapshot()
	c.res.RelaysFailed = int(s.sc.RelayFail*float64(len(c.relays)) + 0.5)
	for _, k := range c.rng.Perm(len(c.relays))[:c.res.RelaysFailed] {
		s.eng.Crash(c.relays[k])
	}
	var live []int
	for i := range s.nodes {
		if s.eng.Alive(i) && s.joinT[i] <= now {
			live = append(live, i)
		}
	}
	if len(live) < 2 {
		return
	}
	c.failed = make([][]circuit.NodeID, len(s.nodes))
	for range s.sc.CircuitDials {
		a, t := c.rng.IntN(len(live)), c.rng.IntN(len(live)-1)
		if t >= a {
			t++
		}
		c.dial(live[a], live[t])
	}
}

// snapshot takes the record of every live node that has joined, as path
// selection reads it (candidateOf in the node): its active view (at most
// registry.MaxNeighbors of it) and, behind a NAT, its home relays, which
// it picks in circuit.HomeOrder's order.
func (c *circSim) snapshot() {
	s := c.s
	now := s.eng.Now()
	c.cand = make([]int32, len(s.nodes))
	for i := range s.nodes {
		c.cand[i] = -1
		if !s.eng.Alive(i) || s.joinT[i] > now {
			continue
		}
		c.cand[i] = int32(len(c.cands))
		cd := circuit.Candidate{ID: s.ids[i], OnionKey: onionKey(s.ids[i]), Inbound: s.public(i), Relay: c.relay[i]}
		if cd.Relay {
			cd.Capacity = relayCapacity
		}
		c.cands = append(c.cands, cd)
	}
	c.homes = make([][]int32, len(s.nodes))
	for i, k := range c.cand {
		if k < 0 || c.cands[k].Inbound {
			continue
		}
		order := circuit.HomeOrder(c.cands, c.cands[k].ID, c.rng)
		for _, h := range order[:min(homeRelays, len(order))] {
			c.homes[i] = append(c.homes[i], s.byID[identity.NodeID(h)])
		}
	}
	for i, k := range c.cand {
		if k < 0 {
			continue
		}
		act := s.nodes[i].mem.Active()
		links := make([]circuit.NodeID, 0, len(act)+len(c.homes[i]))
		for _, p := range act[:min(len(act), registry.MaxNeighbors)] {
			links = append(links, p.ID)
		}
		for _, h := range c.homes[i] {
			links = append(links, s.ids[h])
		}
		c.cands[k].Links = links
	}
}

// onionKey stands for a node's onion key. Path selection only tells a
// zero key from the others, so the node ID with the low bit of its first
// byte set will do.
func onionKey(id identity.NodeID) [32]byte {
	k := [32]byte(id)
	k[0] |= 1
	return k
}

// dial is one dial from node a to node t, as the node's conn and
// dialCircuit make it: direct where nat.CanPunch says a path opens (a
// public target included), else up to circuit.PathAttempts paths, each
// relay of a failed one avoided after.
func (c *circSim) dial(a, t int) {
	s := c.s
	c.res.Dials++
	if s.canLink(a, t) && s.reach(a, t) {
		c.res.Direct++
		c.res.Hops[0]++
		return
	}
	// What a believes it is linked to: its active view, dead peers it has
	// not noticed yet included, and its home relays.
	var linked []circuit.NodeID
	for _, p := range s.nodes[a].mem.Active() {
		linked = append(linked, p.ID)
	}
	for _, h := range c.homes[a] {
		linked = append(linked, s.ids[h])
	}
	tried := 0
	for range circuit.PathAttempts {
		if c.graph == nil {
			c.graph = circuit.NewGraph(slices.Clone(c.cands))
		}
		path, err := c.graph.Select(circuit.PathQuery{
			Self: s.ids[a], Target: s.ids[t], MinRelays: s.sc.CircuitRelays,
			Linked: func(id circuit.NodeID) bool { return slices.Contains(linked, id) },
			Avoid:  func(id circuit.NodeID) bool { return slices.Contains(c.failed[a], id) },
			Rand:   c.rng,
		})
		if errors.Is(err, circuit.ErrNoPath) {
			break
		}
		if err != nil {
			s.buildErr = err
			return
		}
		tried++
		if c.holds(a, t, path) {
			c.placed(a, t, path)
			c.res.Attempts[tried]++
			return
		}
		c.failed[a] = append(c.failed[a], path...)
	}
	c.res.Attempts[tried]++
	if tried == 0 {
		c.res.Failures.NoPath++
	} else {
		c.res.Failures.AllAttemptsFailed++
	}
}

// index is the node index of a candidate's ID.
func (c *circSim) index(id circuit.NodeID) int { return int(c.s.byID[identity.NodeID(id)]) }

// holds reports whether a circuit from a through path to t can be built
// now: a reaches the first relay over a link it holds or, if that relay
// takes inbound connections, over a new one, and each relay holds a
// link to the next hop. A dead node holds no link.
func (c *circSim) holds(a, t int, path []circuit.NodeID) bool {
	prev := a
	for k, id := range path {
		r := c.index(id)
		up := c.linkUp(prev, r)
		if k == 0 && !up {
			up = c.cands[c.cand[r]].Inbound && c.s.reach(a, r)
		}
		if !up {
			return false
		}
		prev = r
	}
	return c.linkUp(prev, t)
}

// linkUp reports whether the link x–y exists now: an engine link (the
// overlay's), or a home relay link whose two ends can reach each other.
func (c *circSim) linkUp(x, y int) bool {
	home := slices.Contains(c.homes[x], int32(y)) || slices.Contains(c.homes[y], int32(x))
	return c.s.eng.Linked(x, y) || home && c.s.reach(x, y)
}

// placed counts the circuit from a through path to t, and adds it to the
// load of its dedicated relays.
func (c *circSim) placed(a, t int, path []circuit.NodeID) {
	s := c.s
	c.res.Circuit++
	c.res.Hops[len(path)]++
	unpunchable, prev := false, a
	for _, id := range path {
		r := c.index(id)
		if k := c.cand[r]; c.cands[k].Relay {
			c.cands[k].Load++
			c.graph = nil
		}
		unpunchable = unpunchable || !s.canLink(prev, r)
		prev = r
	}
	if unpunchable || !s.canLink(prev, t) {
		c.res.UnpunchableLinks++
	}
}

// result returns what the phase measured.
func (c *circSim) result() *CircuitResult {
	r := c.res
	r.Succeeded = r.Direct + r.Circuit
	r.Failed = r.Dials - r.Succeeded
	if r.Dials > 0 {
		r.SuccessRate = float64(r.Succeeded) / float64(r.Dials)
	}
	for _, i := range c.relays {
		var load uint32
		if k := c.cand[i]; k >= 0 {
			load = c.cands[k].Load
		}
		r.RelayCircuits = append(r.RelayCircuits, load)
	}
	return &r
}

// public reports whether node i is public: NAT class "public", or any
// node when the scenario has no NAT mix.
func (s *Sim) public(i int) bool { return s.behavior(i).Public }

// behavior is node i's NAT behaviour.
func (s *Sim) behavior(i int) nat.Behavior {
	if s.natMix == nil {
		return nat.Behavior{Public: true}
	}
	return s.natBeh[s.natClass[i]]
}

// canLink reports whether nat.CanPunch says nodes a and b can connect
// directly (its answer is the same both ways).
func (s *Sim) canLink(a, b int) bool { return nat.CanPunch(s.behavior(a), s.behavior(b)).Works() }

// reach reports whether nodes a and b can connect now: both alive, on one
// side of any partition.
func (s *Sim) reach(a, b int) bool {
	return s.eng.Alive(a) && s.eng.Alive(b) && s.eng.Group(a) == s.eng.Group(b)
}

// CircuitResult is what the circuit phase measured (Scenario.CircuitDials).
type CircuitResult struct {
	// AtSeconds is the virtual time of the phase: records taken, relays
	// crashed and every dial made at that instant.
	AtSeconds float64 `json:"at_seconds"`
	// Dials is the number of dials made: Scenario.CircuitDials, or none
	// if fewer than two nodes were alive.
	Dials     int `json:"dials"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// SuccessRate is Succeeded / Dials.
	SuccessRate float64 `json:"success_rate"`
	// Direct dials went straight to the target (nat.CanPunch says a
	// direct path opens); Circuit dials over a circuit.
	Direct  int `json:"direct"`
	Circuit int `json:"circuit"`
	// Hops[k] is the number of successful dials through k relays; Hops[0]
	// is Direct.
	Hops []int `json:"hops_histogram"`
	// Attempts[k] is the number of dials that needed a circuit and tried
	// k paths; Attempts[0] found none.
	Attempts []int           `json:"attempts_histogram"`
	Failures CircuitFailures `json:"failures"`
	// Relays is the number of dedicated relays, RelaysFailed those that
	// crashed after the records were taken, and RelayCircuits the
	// circuits placed on each (by node index, the crashed ones included).
	Relays        int      `json:"relays"`
	RelaysFailed  int      `json:"relays_failed"`
	RelayCircuits []uint32 `json:"relay_circuits"`
	// UnpunchableLinks counts the circuits that run over an overlay link
	// between two nodes nat.CanPunch says cannot connect directly: the
	// simulated overlay ignores NAT, so it holds links a real one could
	// not.
	UnpunchableLinks int `json:"unpunchable_links"`
}

// CircuitFailures counts failed dials by reason.
type CircuitFailures struct {
	// NoPath: path selection found no path at all.
	NoPath int `json:"no_path"`
	// AllAttemptsFailed: every path tried broke at some hop, and
	// circuit.PathAttempts were tried or no other path was left.
	AllAttemptsFailed int `json:"all_attempts_failed"`
}

// circuitRows are the circuit phase's summary rows.
func circuitRows(g *CircuitResult) [][2]string {
	var hops, tries []string
	for k, n := range g.Hops[1:] {
		if n > 0 {
			hops = append(hops, fmt.Sprintf("%d: %d", k+1, n))
		}
	}
	for k, n := range g.Attempts {
		if n > 0 {
			tries = append(tries, fmt.Sprintf("%d: %d", k, n))
		}
	}
	load := "none"
	if len(g.RelayCircuits) > 0 {
		sum := uint32(0)
		for _, n := range g.RelayCircuits {
			sum += n
		}
		load = fmt.Sprintf("%d / %.1f / %d", slices.Min(g.RelayCircuits), float64(sum)/float64(len(g.RelayCircuits)), slices.Max(g.RelayCircuits))
	}
	or := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	return [][2]string{
		{"circuit dials", fmt.Sprintf("%d at %.1f s: %d succeeded (%.4f), %d failed", g.Dials, g.AtSeconds, g.Succeeded, g.SuccessRate, g.Failed)},
		{"circuit dials: direct / circuit", fmt.Sprintf("%d / %d", g.Direct, g.Circuit)},
		{"circuit dials: relays per circuit", or(hops)},
		{"circuit dials: paths tried (0: none found)", or(tries)},
		{"circuit dials: failed, no path / every path broke", fmt.Sprintf("%d / %d", g.Failures.NoPath, g.Failures.AllAttemptsFailed)},
		{"circuit dials: over a link NAT rules out", fmt.Sprint(g.UnpunchableLinks)},
		{"dedicated relays", fmt.Sprintf("%d, %d crashed before the dials; circuits per relay min / mean / max %s", g.Relays, g.RelaysFailed, load)},
	}
}

// circuitTable is the HTML table of the dials by relays and paths tried.
func circuitTable(g *CircuitResult) string {
	var b strings.Builder
	b.WriteString("<table><tr><th>relays</th><th>successful dials</th></tr>\n")
	for k, n := range g.Hops {
		label := fmt.Sprint(k)
		if k == 0 {
			label = "0 (direct)"
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%d</td></tr>\n", label, n)
	}
	b.WriteString("</table>\n<table><tr><th>paths tried</th><th>dials needing a circuit</th></tr>\n")
	for k, n := range g.Attempts {
		fmt.Fprintf(&b, "<tr><td>%d</td><td>%d</td></tr>\n", k, n)
	}
	fmt.Fprintf(&b, "</table>\n<p>Failed: %d with no path, %d where every path tried broke.</p>\n", g.Failures.NoPath, g.Failures.AllAttemptsFailed)
	return b.String()
}
