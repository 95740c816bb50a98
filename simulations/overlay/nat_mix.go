package overlay

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/mycelium-net/mycelium/nat"
	"github.com/mycelium-net/mycelium/registry"
	"github.com/mycelium-net/mycelium/simulations/des"
)

// NAT mix: Scenario.NATMix gives each simulated node a NAT behaviour,
// drawn from the scenario's seed in proportion to the mix, and the Result
// gains what nat.CanPunch (the node's own decision function) says of every
// ordered pair of nodes. This is the theory's verdict applied to the mix,
// what the protocol would attempt, not a measured punch; the overlay run
// itself does not depend on it (the draw has its own random stream, so the
// trace is the same with or without a mix).

// NATShare is one class of a NAT mix and its share of the nodes.
type NATShare struct {
	Class string  `json:"class"` // "public" or "<mapping>-<filtering>", as nat.Behavior.String
	Share float64 `json:"share"` // weight over the sum of weights
}

// natClasses are the behaviours a mix may name, in the order of the
// table in the nat package doc.
func natClasses() []nat.Behavior {
	out := []nat.Behavior{{Public: true}}
	cs := []registry.NATClass{registry.NATEndpointIndependent, registry.NATAddressDependent, registry.NATAddressAndPortDependent}
	for _, m := range cs {
		for _, f := range cs {
			out = append(out, nat.Behavior{Mapping: m, Filtering: f})
		}
	}
	return out
}

// ParseNATMix reads a mix such as "public:0.2,eim-apdf:0.5,apdm-apdf:0.3":
// class:weight pairs, comma separated, with the classes public and
// <mapping>-<filtering> (mapping eim, adm or apdm; filtering eif, adf or
// apdf), each at most once, and weights of at least 0 whose sum is
// positive. Shares are the weights over their sum, in the order given.
// The empty string is no mix.
func ParseNATMix(s string) ([]NATShare, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var mix []NATShare
	sum := 0.0
	for item := range strings.SplitSeq(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(item), ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("nat-mix %q: want class:weight", item)
		}
		if _, ok := natBehavior(name); !ok {
			return nil, fmt.Errorf("nat-mix: unknown class %q (public, or eim|adm|apdm-eif|adf|apdf)", name)
		}
		for _, m := range mix {
			if m.Class == name {
				return nil, fmt.Errorf("nat-mix: class %s twice", name)
			}
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || !(f >= 0 && f <= 1e9) {
			return nil, fmt.Errorf("nat-mix: weight %q of %s, want a number from 0 to 1e9", w, name)
		}
		mix = append(mix, NATShare{Class: name, Share: f})
		sum += f
	}
	if !(sum > 0) {
		return nil, fmt.Errorf("nat-mix %q: weights sum to 0", s)
	}
	for i := range mix {
		mix[i].Share /= sum
	}
	return mix, nil
}

// natBehavior is the behaviour a class name stands for.
func natBehavior(name string) (nat.Behavior, bool) {
	for _, b := range natClasses() {
		if b.String() == name {
			return b, true
		}
	}
	return nat.Behavior{}, false
}

// NATResult is what the theory says of a run's NAT mix.
type NATResult struct {
	Mix []NATShare `json:"mix"`
	// Nodes is the number of nodes drawn into each class of Mix, in its
	// order.
	Nodes []int `json:"nodes"`
	// Pairs is the number of ordered node pairs (a, b), a != b: all of
	// them, counted exactly (nodes of one class are alike, so CanPunch is
	// called once per pair of classes).
	Pairs int64 `json:"pairs"`
	// Outcomes counts the pairs by CanPunch(a, b).
	Outcomes NATOutcomes `json:"outcomes"`
	// DirectCapable is the fraction of pairs whose outcome is Direct or
	// Punch: the node would try a direct path and the theory says it opens.
	DirectCapable float64 `json:"direct_capable_fraction"`
	// Matrix[i][j] is CanPunch from class Mix[i] to class Mix[j], and
	// MatrixPairs[i][j] the ordered pairs of nodes it stands for.
	Matrix      [][]string `json:"matrix"`
	MatrixPairs [][]int64  `json:"matrix_pairs"`
}

// NATOutcomes counts pairs by nat.PunchOutcome.
type NATOutcomes struct {
	Direct  int64 `json:"direct"`
	Punch   int64 `json:"punch"`
	Relay   int64 `json:"relay"`
	Unknown int64 `json:"unknown"`
}

// natStream is the random stream of the NAT draw ("nat").
const natStream = 0x6e6174

// drawNAT gives each of n nodes a class index into mix, from its own
// stream of seed.
func drawNAT(seed uint64, n int, mix []NATShare) []uint8 {
	rng := des.NewRand(seed, natStream)
	out := make([]uint8, n)
	for i := range out {
		out[i] = pickShare(rng, mix)
	}
	return out
}

// publicNodes counts the nodes of class public; every node is public
// when there is no mix.
func publicNodes(class []uint8, mix []NATShare) int {
	if mix == nil {
		return len(class)
	}
	n := 0
	for _, c := range class {
		if mix[c].Class == "public" {
			n++
		}
	}
	return n
}

func pickShare(rng *rand.Rand, mix []NATShare) uint8 {
	u := rng.Float64()
	last := 0
	for k, m := range mix {
		if m.Share <= 0 {
			continue
		}
		last = k
		if u < m.Share {
			return uint8(k)
		}
		u -= m.Share
	}
	return uint8(last) // rounding left u just above the last share
}

// natResult applies nat.CanPunch to every ordered pair of the nodes.
func natResult(mix []NATShare, class []uint8) *NATResult {
	k := len(mix)
	r := &NATResult{Mix: mix, Nodes: make([]int, k), Matrix: make([][]string, k), MatrixPairs: make([][]int64, k)}
	for _, c := range class {
		r.Nodes[c]++
	}
	for i := range k {
		a, _ := natBehavior(mix[i].Class)
		r.Matrix[i] = make([]string, k)
		r.MatrixPairs[i] = make([]int64, k)
		for j := range k {
			b, _ := natBehavior(mix[j].Class)
			o := nat.CanPunch(a, b)
			pairs := int64(r.Nodes[i]) * int64(r.Nodes[j])
			if i == j {
				pairs = int64(r.Nodes[i]) * int64(r.Nodes[i]-1)
			}
			r.Matrix[i][j] = o.String()
			r.MatrixPairs[i][j] = pairs
			r.Pairs += pairs
			switch o {
			case nat.Direct:
				r.Outcomes.Direct += pairs
			case nat.Punch:
				r.Outcomes.Punch += pairs
			case nat.Relay:
				r.Outcomes.Relay += pairs
			default:
				r.Outcomes.Unknown += pairs
			}
		}
	}
	if r.Pairs > 0 {
		r.DirectCapable = float64(r.Outcomes.Direct+r.Outcomes.Punch) / float64(r.Pairs)
	}
	return r
}

// natRows are the NAT mix's summary rows.
func natRows(g *NATResult) [][2]string {
	var mix, nodes []string
	for i, m := range g.Mix {
		mix = append(mix, fmt.Sprintf("%s:%.3g", m.Class, m.Share))
		nodes = append(nodes, fmt.Sprintf("%s %d", m.Class, g.Nodes[i]))
	}
	frac := func(n int64) float64 { return float64(n) / float64(max(g.Pairs, 1)) }
	return [][2]string{
		{"NAT mix", strings.Join(mix, ", ")},
		{"NAT: nodes per class", strings.Join(nodes, ", ")},
		{"NAT: direct-capable pairs (theory)", fmt.Sprintf("%.4f of %d ordered pairs", g.DirectCapable, g.Pairs)},
		{"NAT: direct / punch / relay / unknown", fmt.Sprintf("%.4f / %.4f / %.4f / %.4f",
			frac(g.Outcomes.Direct), frac(g.Outcomes.Punch), frac(g.Outcomes.Relay), frac(g.Outcomes.Unknown))},
	}
}

// natTable is the HTML matrix of outcomes by class pair.
func natTable(g *NATResult) string {
	var b strings.Builder
	b.WriteString("<table><tr><th>from \\ to</th>")
	for _, m := range g.Mix {
		fmt.Fprintf(&b, "<th>%s</th>", m.Class)
	}
	b.WriteString("</tr>\n")
	for i, m := range g.Mix {
		fmt.Fprintf(&b, "<tr><td>%s (%d)</td>", m.Class, g.Nodes[i])
		for j := range g.Mix {
			fmt.Fprintf(&b, "<td>%s</td>", g.Matrix[i][j])
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>\n")
	return b.String()
}
