package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRegistryFiveNodes is the registry issue's first acceptance point, as
// a user would run it: five `mycelium node` processes on loopback, each
// bootstrapped from the one before; every node comes to know all five; a
// service exposed on the last is found by `mycelium lookup` on the first
// and dialled there by bare node ID (no address given).
func TestRegistryFiveNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("five node processes: skipped in -short")
	}
	var homes []string
	var nodes []*nodeProc
	for i := range 5 {
		home := shortTempDir(t)
		var extra []string
		if i > 0 {
			prev := nodes[i-1]
			extra = []string{"--bootstrap", prev.id + "@" + prev.listen}
		}
		homes = append(homes, home)
		nodes = append(nodes, startNode(t, home, extra...))
	}
	for i, n := range nodes {
		r := cli(t, homes[i], nil, "peers", "--json", "--min", "5", "--wait", "1m", "--control", n.control)
		if r.code != 0 {
			t.Fatalf("peers on node %d: %+v", i, r)
		}
		var res struct {
			Peers []struct {
				ID   string `json:"id"`
				Self bool   `json:"self"`
				Role string `json:"role"`
			} `json:"peers"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("peers --json: %v\n%s", err, r.stdout)
		}
		if len(res.Peers) != 5 {
			t.Fatalf("node %d knows %d nodes after waiting, want 5:\n%s", i, len(res.Peers), r.stdout)
		}
		for _, p := range res.Peers {
			if p.Self != (p.ID == n.id) || p.Role != "node" {
				t.Errorf("node %d: record %+v", i, p)
			}
		}
		st := cli(t, homes[i], nil, "status", "--json", "--control", n.control)
		var sj struct {
			Known int `json:"known"`
		}
		if err := json.Unmarshal([]byte(st.stdout), &sj); err != nil || sj.Known != 5 {
			t.Errorf("node %d status: known %d (%v), want 5", i, sj.Known, err)
		}
	}

	echoAddr, conns := tcpEcho(t)
	last, first := nodes[4], nodes[0]
	if r := cli(t, homes[4], nil, "expose", "--control", last.control, "web", echoAddr); r.code != 0 {
		t.Fatalf("expose: %+v", r)
	}
	r := cli(t, homes[0], nil, "lookup", "--wait", "1m", "--control", first.control, "web")
	if r.code != 0 || strings.TrimSpace(r.stdout) != last.id {
		t.Fatalf("lookup web on the first node: %+v, want the last node's ID %s", r, last.id)
	}
	r = cli(t, homes[0], strings.NewReader("over the registry"), "dial", "--control", first.control, last.id+"/web")
	if r.code != 0 || r.stdout != "over the registry" {
		t.Fatalf("dial by bare ID: %+v", r)
	}
	if conns() != 1 {
		t.Fatalf("echo server saw %d connections, want 1", conns())
	}
	if r := cli(t, homes[0], nil, "lookup", "--control", first.control, "nothing-here"); r.code != 1 || !strings.Contains(r.stderr, "no known node offers") {
		t.Fatalf("lookup of an unknown service: %+v", r)
	}
}
