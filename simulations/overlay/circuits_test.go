package overlay

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mycelium-net/mycelium/circuit"
)

// natMixAll has every class the nat package knows, 70% of the nodes
// behind a NAT.
const natMixAll = "public:0.3,eim-eif:0.05,eim-adf:0.08,eim-apdf:0.25,adm-eif:0.03,adm-adf:0.04,adm-apdf:0.05," +
	"apdm-eif:0.03,apdm-adf:0.04,apdm-apdf:0.13"

// circuitScenario is 1,200 nodes with churn, the mix above and 8
// dedicated relays, and 1,500 dials (a fifth of that under the race
// detector).
func circuitScenario(relayFail float64, minRelays int) Scenario {
	sc := small(1200)
	sc.CircuitDials = 1500
	if raceEnabled {
		sc.Nodes, sc.CircuitDials = 240, 300
	}
	sc.Churn = 0.02
	sc.NATMix = natMixAll
	sc.Relays = 8
	sc.RelayFail = relayFail
	sc.CircuitRelays = minRelays
	return sc
}

// checkCircuits checks what holds of every circuit phase: the counts add
// up and no circuit has fewer relays than asked.
func checkCircuits(t *testing.T, sc Scenario, g *CircuitResult) {
	t.Helper()
	if g == nil {
		t.Fatal("no circuit result")
	}
	sum := func(s []int) (n int) {
		for _, v := range s {
			n += v
		}
		return n
	}
	if g.Dials != sc.CircuitDials || g.Succeeded+g.Failed != g.Dials || g.Direct+g.Circuit != g.Succeeded {
		t.Errorf("dials %d (want %d), succeeded %d, failed %d, direct %d, circuit %d: they do not add up",
			g.Dials, sc.CircuitDials, g.Succeeded, g.Failed, g.Direct, g.Circuit)
	}
	if g.Hops[0] != g.Direct || sum(g.Hops[1:]) != g.Circuit || sum(g.Attempts) != g.Dials-g.Direct ||
		g.Failures.NoPath != g.Attempts[0] || g.Failures.NoPath+g.Failures.AllAttemptsFailed != g.Failed {
		t.Errorf("histograms: hops %v, attempts %v, failures %+v; direct %d, circuit %d, failed %d",
			g.Hops, g.Attempts, g.Failures, g.Direct, g.Circuit, g.Failed)
	}
	for k := 1; k < sc.CircuitRelays; k++ {
		if g.Hops[k] != 0 {
			t.Errorf("%d circuits with %d relays, fewer than the %d asked", g.Hops[k], k, sc.CircuitRelays)
		}
	}
	if g.Direct == 0 || g.Circuit == 0 {
		t.Errorf("direct %d, circuit %d: the mix should give both", g.Direct, g.Circuit)
	}
	if g.Relays != sc.Relays || len(g.RelayCircuits) != sc.Relays {
		t.Errorf("relays %d, loads %v; want %d", g.Relays, g.RelayCircuits, sc.Relays)
	}
}

// TestCircuitDials: with churn but no relay failure, every dial finds a
// path that holds at the first attempt, through the relays asked for.
func TestCircuitDials(t *testing.T) {
	for _, minRelays := range []int{circuit.DefaultRelays, 2} {
		t.Run(strings.Repeat("r", minRelays), func(t *testing.T) {
			sc := circuitScenario(0, minRelays)
			g := run(t, sc).Circuits
			checkCircuits(t, sc, g)
			t.Logf("%d dials: direct %d, circuit %d, hops %v, attempts %v, relay loads %v, over links NAT rules out %d",
				g.Dials, g.Direct, g.Circuit, g.Hops, g.Attempts, g.RelayCircuits, g.UnpunchableLinks)
			if g.Failed != 0 || g.Attempts[1] != g.Circuit {
				t.Errorf("%d dials failed (%+v), attempts %v: with no relay down, every first path should hold", g.Failed, g.Failures, g.Attempts)
			}
			if g.RelaysFailed != 0 {
				t.Errorf("%d relays failed, want none", g.RelaysFailed)
			}
		})
	}
}

// TestCircuitDialsRelayFail: 3 of the 8 relays crash after the records
// are taken. Paths through them break, and the dialers try others.
func TestCircuitDialsRelayFail(t *testing.T) {
	sc := circuitScenario(0.4, circuit.DefaultRelays)
	g := run(t, sc).Circuits
	checkCircuits(t, sc, g)
	t.Logf("%d dials: success %.4f (%d failed: %+v), direct %d, circuit %d, hops %v, attempts %v, relay loads %v, over links NAT rules out %d",
		g.Dials, g.SuccessRate, g.Failed, g.Failures, g.Direct, g.Circuit, g.Hops, g.Attempts, g.RelayCircuits, g.UnpunchableLinks)
	if g.RelaysFailed != 3 {
		t.Errorf("%d relays failed, want 3", g.RelaysFailed)
	}
	if g.Attempts[2]+g.Attempts[3] == 0 {
		t.Errorf("attempts %v: no dial needed a second path", g.Attempts)
	}
	idle := 0
	for _, n := range g.RelayCircuits {
		if n == 0 {
			idle++
		}
	}
	if idle < g.RelaysFailed {
		t.Errorf("relay loads %v: a crashed relay carries a circuit", g.RelayCircuits)
	}
	// Measured: 0.9993, 1 dial of 1,500 failed. Both home relays of its
	// target had crashed, and none of the target's neighbours was public:
	// its three paths went through the three crashed relays (its homes,
	// then a neighbour's home: Select prefers announced relays), and a
	// fourth would have held.
	if g.SuccessRate < 0.99 {
		t.Errorf("success %.4f, want at least 0.99", g.SuccessRate)
	}
}

// TestCircuitDialsSameSeed: the circuit phase is part of the seeded run.
func TestCircuitDialsSameSeed(t *testing.T) {
	sc := small(200)
	sc.NATMix = natMixAll
	sc.Churn = 0.05
	sc.Relays = 5
	sc.RelayFail = 0.4
	sc.CircuitDials = 400
	a, b := run(t, sc), run(t, sc)
	if a.TraceSHA256 != b.TraceSHA256 || !reflect.DeepEqual(a.Circuits, b.Circuits) {
		t.Fatalf("same seed, circuits %+v and %+v", a.Circuits, b.Circuits)
	}
	found := false
	for _, row := range SummaryRows(a) {
		found = found || strings.HasPrefix(row[0], "circuit dials: direct / circuit")
	}
	if !found || !strings.Contains(reportHTML(a), "<h2>Circuit dials</h2>") {
		t.Error("summary or report lacks the circuit dials")
	}
	sc.Seed++
	if c := run(t, sc); reflect.DeepEqual(a.Circuits, c.Circuits) {
		t.Error("another seed, the same circuit dials")
	}
}

func TestCircuitScenarioErrors(t *testing.T) {
	for name, c := range map[string]struct {
		json, want string
	}{
		"relays_over_public": {`{"nodes": 20, "nat_mix": "public:0.1,eim-apdf:0.9", "relays": 15}`, "relays 15, but only"},
		"relays_over_nodes":  {`{"nodes": 20, "relays": 21}`, "relays 21, but only 20 of the 20"},
		"relays_negative":    {`{"relays": -1}`, "relays -1"},
		"relay_fail_over":    {`{"relay_fail": 1.5}`, "relay-fail 1.5"},
		"relay_fail_under":   {`{"relay_fail": -0.1}`, "relay-fail -0.1"},
		"circuit_relays_0":   {`{"circuit_relays": 0}`, "circuit-relays 0, want 1..4"},
		"circuit_relays_5":   {`{"circuit_relays": 5}`, "circuit-relays 5, want 1..4"},
		"dials_negative":     {`{"circuit_dials": -1}`, "circuit-dials -1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadScenario(strings.NewReader(c.json))
			if !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrScenario saying %q", err, c.want)
			}
		})
	}
	sc, err := LoadScenario(strings.NewReader(`{"nodes": 20, "relays": 20, "relay_fail": 1, "circuit_relays": 4, "circuit_dials": 5}`))
	if err != nil || sc.Relays != 20 || sc.CircuitRelays != circuit.MaxRelays {
		t.Fatalf("every node a relay, all failing, longest paths: %+v, %v", sc, err)
	}
}
