package overlay

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/mycelium-net/mycelium/nat"
)

func TestParseNATMix(t *testing.T) {
	mix, err := ParseNATMix(" public:1, EIM-APDF:2.5 ,apdm-apdf:0.5,adm-eif:0")
	if err != nil {
		t.Fatal(err)
	}
	want := []NATShare{{"public", 0.25}, {"eim-apdf", 0.625}, {"apdm-apdf", 0.125}, {"adm-eif", 0}}
	if len(mix) != len(want) {
		t.Fatalf("got %v, want %v", mix, want)
	}
	for i := range want {
		if mix[i].Class != want[i].Class || math.Abs(mix[i].Share-want[i].Share) > 1e-12 {
			t.Errorf("share %d: got %v, want %v", i, mix[i], want[i])
		}
	}
	if mix, err := ParseNATMix(""); mix != nil || err != nil {
		t.Errorf("empty mix: %v, %v", mix, err)
	}
	for name, in := range map[string]string{
		"unknown_class":  "public:1,eim-xyz:1",
		"no_weight":      "public",
		"twice":          "public:1,public:2",
		"negative":       "public:1,eim-eif:-1",
		"not_a_number":   "public:x",
		"nan":            "public:NaN",
		"zero_sum":       "public:0,eim-eif:0",
		"trailing_comma": "public:1,",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseNATMix(in); err == nil {
				t.Errorf("ParseNATMix(%q) took it", in)
			}
			sc := DefaultScenario()
			sc.NATMix = in
			if sc.Validate() == nil {
				t.Errorf("Validate took nat-mix %q", in)
			}
		})
	}
}

// TestNATResultCounts checks the pair counts on three nodes by hand and
// the matrix against nat.CanPunch.
func TestNATResultCounts(t *testing.T) {
	mix, err := ParseNATMix("public:1,apdm-apdf:2")
	if err != nil {
		t.Fatal(err)
	}
	r := natResult(mix, []uint8{0, 1, 1})
	// public→apdm 2 punch, apdm→public 2 direct, apdm→apdm 2 relay.
	want := NATOutcomes{Direct: 2, Punch: 2, Relay: 2}
	if r.Pairs != 6 || r.Outcomes != want || math.Abs(r.DirectCapable-4.0/6) > 1e-12 {
		t.Errorf("pairs %d, outcomes %+v, direct-capable %v", r.Pairs, r.Outcomes, r.DirectCapable)
	}
	if r.Nodes[0] != 1 || r.Nodes[1] != 2 || r.MatrixPairs[1][1] != 2 || r.MatrixPairs[0][0] != 0 {
		t.Errorf("nodes %v, matrix pairs %v", r.Nodes, r.MatrixPairs)
	}
	for i := range mix {
		for j := range mix {
			a, _ := natBehavior(mix[i].Class)
			b, _ := natBehavior(mix[j].Class)
			if got, want := r.Matrix[i][j], nat.CanPunch(a, b).String(); got != want {
				t.Errorf("matrix %s→%s: %s, CanPunch says %s", a, b, got, want)
			}
		}
	}
}

// readmeMix is the illustrative mix of simulations/README.md.
const readmeMix = "public:0.10,eim-eif:0.05,eim-adf:0.09,eim-apdf:0.60,apdm-apdf:0.16"

// TestNATMixDraw draws the README's mix for 10,000 nodes: the classes
// come out in proportion, and the direct-capable fraction is the one
// the shares give (sum of share(a)·share(b) over the pairs CanPunch
// says work), within sampling error.
func TestNATMixDraw(t *testing.T) {
	mix, err := ParseNATMix(readmeMix)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	r := natResult(mix, drawNAT(1, n, mix))
	expect := 0.0
	for i, m := range mix {
		if got := float64(r.Nodes[i]) / n; math.Abs(got-m.Share) > 0.02 {
			t.Errorf("class %s: %.3f of the nodes, share %.3f", m.Class, got, m.Share)
		}
		a, _ := natBehavior(m.Class)
		for _, m2 := range mix {
			b, _ := natBehavior(m2.Class)
			if nat.CanPunch(a, b).Works() {
				expect += m.Share * m2.Share
			}
		}
	}
	if r.Pairs != n*(n-1) || math.Abs(r.DirectCapable-expect) > 0.02 {
		t.Errorf("%d pairs, direct-capable %.4f, shares give %.4f", r.Pairs, r.DirectCapable, expect)
	}
	t.Logf("direct-capable %.4f (shares give %.4f), outcomes %+v", r.DirectCapable, expect, r.Outcomes)
	again := natResult(mix, drawNAT(1, n, mix))
	if again.DirectCapable != r.DirectCapable {
		t.Error("the same seed drew another mix")
	}
}

// TestNATMixRun: a run with a mix reports it, in the summary and the JSON,
// and runs exactly as the same run without one.
func TestNATMixRun(t *testing.T) {
	sc := small(60)
	plain := run(t, sc)
	sc.NATMix = "public:0.5,apdm-apdf:0.5"
	r := run(t, sc)
	if plain.NAT != nil || r.NAT == nil {
		t.Fatalf("nat result: %v without a mix, %v with one", plain.NAT, r.NAT)
	}
	if r.TraceSHA256 != plain.TraceSHA256 {
		t.Error("the NAT mix changed the run")
	}
	if r.NAT.Pairs != 60*59 || r.NAT.Nodes[0]+r.NAT.Nodes[1] != 60 {
		t.Errorf("pairs %d, nodes %v", r.NAT.Pairs, r.NAT.Nodes)
	}
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"direct_capable_fraction"`) {
		t.Error("JSON lacks nat.direct_capable_fraction")
	}
	found := false
	for _, row := range SummaryRows(r) {
		found = found || strings.HasPrefix(row[0], "NAT: direct-capable")
	}
	if !found || !strings.Contains(reportHTML(r), "from \\ to") {
		t.Error("summary or report lacks the NAT mix")
	}
}
