package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

func TestRun(t *testing.T) {
	leakcheck.Check(t)
	var out bytes.Buffer
	rep, err := Run(context.Background(), Options{Nodes: 4, Bytes: 100_000, Progress: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("demo failed:\n%s", out.String())
	}
	if len(rep.Nodes) != 4 || len(rep.Transfers) != 4 {
		t.Fatalf("report has %d nodes and %d transfers, want 4 and 4", len(rep.Nodes), len(rep.Transfers))
	}
	for _, tr := range rep.Transfers {
		if !tr.OK || tr.Path != "direct" || tr.Bytes != 100_000 {
			t.Errorf("transfer %+v", tr)
		}
	}
	names := map[string]bool{}
	for _, c := range rep.Checks {
		names[c.Name] = c.OK
	}
	for _, want := range []string{"identity_mismatch", "unknown_service", "simultaneous_dial", "broadcast", "behind_nats", "nat_classification", "hole_punch", "circuit", "relay_drain", "path_change"} {
		if !names[want] {
			t.Errorf("check %s missing or failed: %+v", want, rep.Checks)
		}
	}
	if !strings.Contains(out.String(), "all checks passed") {
		t.Errorf("progress output lacks the verdict:\n%s", out.String())
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{Nodes: 1, Bytes: 1}, {Nodes: 17, Bytes: 1}, {Nodes: 3, Bytes: 0}} {
		if o.Validate() == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, err := Run(context.Background(), Options{Nodes: 0}); err == nil {
		t.Error("Run accepted bad options")
	}
}
