package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSim(t *testing.T) {
	home := shortTempDir(t)
	r := cli(t, home, nil, "sim", "--nodes", "200", "--seed", "1", "--broadcasts", "5", "--json")
	if r.code != 0 {
		t.Fatalf("sim: %+v", r)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("sim --json printed %q: %v", r.stdout, err)
	}
	for _, k := range []string{"nodes", "seed", "connected", "reliability", "rmr", "ldh", "wall_seconds", "sim_seconds"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no key %q in %s", k, r.stdout)
		}
	}
	if got["nodes"] != 200.0 || got["seed"] != 1.0 || got["connected"] != true || got["reliability"] != 1.0 {
		t.Errorf("nodes %v seed %v connected %v reliability %v; want 200, 1, true, 1", got["nodes"], got["seed"], got["connected"], got["reliability"])
	}
	if r.stderr != "" {
		t.Errorf("stderr is not a terminal, yet: %q", r.stderr)
	}

	// A scenario file, with a flag that wins over it, and a report.
	sc := filepath.Join(home, "sc.json")
	os.WriteFile(sc, []byte(`{"nodes": 100, "seed": 3, "fail": 0.2, "broadcasts": 3}`), 0o644)
	rep := filepath.Join(home, "rep")
	r = cli(t, home, nil, "sim", sc, "--seed", "4", "--report", rep)
	if r.code != 0 || !strings.Contains(r.stdout, "reliability") || !strings.Contains(r.stdout, "heal time") {
		t.Fatalf("sim with a file: %+v", r)
	}
	var fromFile map[string]any
	js, _ := os.ReadFile(filepath.Join(rep, "sim.json"))
	if err := json.Unmarshal(js, &fromFile); err != nil || fromFile["nodes"] != 100.0 || fromFile["seed"] != 4.0 || fromFile["failed"] != 20.0 {
		t.Fatalf("sim.json: nodes %v seed %v failed %v (%v); want 100, 4 (the flag), 20", fromFile["nodes"], fromFile["seed"], fromFile["failed"], err)
	}
	if page, err := os.ReadFile(filepath.Join(rep, "index.html")); err != nil || !strings.Contains(string(page), "<svg") {
		t.Fatalf("index.html: %v", err)
	}

	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"unknown_key":  {[]string{"sim", writeFile(t, home, "bad.json", `{"nodez": 5}`)}, "unknown field"},
		"bad_fraction": {[]string{"sim", "--fail", "1.5"}, "fail"},
		"two_files":    {[]string{"sim", "a.json", "b.json"}, "too many arguments"},
	} {
		t.Run(name, func(t *testing.T) {
			r := cli(t, home, nil, c.args...)
			if r.code == 0 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("%v: %+v, want failure mentioning %q", c.args, r, c.want)
			}
		})
	}
}

// TestSimRegistry: --registry-updates adds the registry phase, in the
// JSON and in the summary.
func TestSimRegistry(t *testing.T) {
	home := shortTempDir(t)
	r := cli(t, home, nil, "sim", "--nodes", "100", "--broadcasts", "1", "--registry-updates", "2", "--registry-interval", "2s", "--json")
	if r.code != 0 {
		t.Fatalf("sim: %+v", r)
	}
	var got struct {
		Registry map[string]any `json:"registry"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Registry == nil {
		t.Fatalf("sim --json printed %q: %v", r.stdout, err)
	}
	for _, k := range []string{"updates", "reach99_seconds_mean", "reach99_seconds_max", "reach100_seconds_mean", "reach100_seconds_max",
		"delivered_fraction", "bytes_per_update", "bandwidth_bytes_per_node_per_second", "antientropy_bytes_per_node_per_second",
		"neighbor_ups_per_node_per_second", "memory", "measured", "derived"} {
		if _, ok := got.Registry[k]; !ok {
			t.Errorf("no registry key %q in %s", k, r.stdout)
		}
	}
	if got.Registry["updates"] != 2.0 || got.Registry["delivered_fraction"] != 1.0 {
		t.Errorf("updates %v, delivered %v; want 2, 1", got.Registry["updates"], got.Registry["delivered_fraction"])
	}
	r = cli(t, home, nil, "sim", "--nodes", "100", "--broadcasts", "1", "--registry-updates", "2")
	if r.code != 0 || !strings.Contains(r.stdout, "registry: 100% of nodes after") || !strings.Contains(r.stdout, "registry: memory per node") {
		t.Fatalf("summary: %+v", r)
	}
	if r := cli(t, home, nil, "sim", "--nodes", "10", "--registry-updates", "11"); r.code == 0 || !strings.Contains(r.stderr, "registry-updates") {
		t.Fatalf("11 updates of 10 nodes: %+v", r)
	}
}

// TestSimCircuits: --circuit-dials adds the circuit phase, in the JSON
// and in the summary.
func TestSimCircuits(t *testing.T) {
	home := shortTempDir(t)
	mix := "public:0.3,eim-apdf:0.4,apdm-apdf:0.3"
	r := cli(t, home, nil, "sim", "--nodes", "150", "--broadcasts", "1", "--nat-mix", mix,
		"--relays", "3", "--relay-fail", "0.34", "--circuit-dials", "200", "--json")
	if r.code != 0 {
		t.Fatalf("sim: %+v", r)
	}
	var got struct {
		Circuits map[string]any `json:"circuits"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Circuits == nil {
		t.Fatalf("sim --json printed %q: %v", r.stdout, err)
	}
	c := got.Circuits
	for _, k := range []string{"at_seconds", "dials", "succeeded", "failed", "success_rate", "direct", "circuit", "hops_histogram",
		"attempts_histogram", "failures", "relays", "relays_failed", "relay_circuits", "unpunchable_links"} {
		if _, ok := c[k]; !ok {
			t.Errorf("no circuits key %q in %s", k, r.stdout)
		}
	}
	num := func(k string) float64 { f, _ := c[k].(float64); return f }
	if num("dials") != 200 || num("succeeded")+num("failed") != 200 || num("direct")+num("circuit") != num("succeeded") ||
		num("circuit") == 0 || num("relays") != 3 || num("relays_failed") != 1 || num("success_rate") <= 0 || num("success_rate") > 1 {
		t.Errorf("circuits %v: want 200 dials, succeeded + failed = dials, direct + circuit = succeeded, some circuits, 3 relays, 1 failed", c)
	}
	r = cli(t, home, nil, "sim", "--nodes", "100", "--broadcasts", "1", "--nat-mix", mix, "--relays", "2", "--circuit-dials", "50")
	if r.code != 0 || !strings.Contains(r.stdout, "circuit dials: direct / circuit") || !strings.Contains(r.stdout, "dedicated relays") {
		t.Fatalf("summary: %+v", r)
	}
	if r := cli(t, home, nil, "sim", "--nodes", "10", "--relays", "11"); r.code == 0 || !strings.Contains(r.stderr, "relays 11") {
		t.Fatalf("11 relays of 10 nodes: %+v", r)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
