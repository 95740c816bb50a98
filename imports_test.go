package mycelium

import (
	"os/exec"
	"strings"
	"testing"
)

// The layering of DESIGN.md, as a test: imports point down only, protocol
// packages stay sans-IO, only the transport opens sockets, and only the
// driver and the command line touch OpenTelemetry.

const module = "github.com/mycelium-net/mycelium"

// layer ranks a package of this module; a package may import only packages
// of a lower rank, or of its own rank inside internal/.
func layer(pkg string) int {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	switch {
	case rel == "":
		return 70 // the public API and driver
	case top == "cmd", rel == "internal/control" || strings.HasPrefix(rel, "internal/control/"),
		rel == "internal/demo" || strings.HasPrefix(rel, "internal/demo/"):
		return 90 // the command line and what only it uses
	case top == "simulations":
		return 80 // drives the machines and the real node
	case top == "relay", top == "migration":
		return 60
	case top == "circuit":
		return 50
	case top == "nat":
		return 40
	case top == "registry":
		return 30
	case top == "broadcast":
		return 20
	case top == "membership":
		return 10
	case top == "internal":
		return 0
	}
	return -1 // unknown top-level folder: the test names it
}

// sansIO are the protocol packages: state machines with no sockets, QUIC,
// HTTP or telemetry.
var sansIO = []string{"membership", "broadcast", "registry", "nat", "circuit", "migration"}

// checkEdge returns why pkg may not import imp, or "".
func checkEdge(pkg, imp string) string {
	if strings.HasPrefix(imp, module) {
		lp, li := layer(pkg), layer(imp)
		switch {
		case lp < 0:
			return "package is outside the layout of DESIGN.md"
		case li < 0:
			return "imported package is outside the layout of DESIGN.md"
		case li > lp || (li == lp && li != 0 && li != 90 && !sameTop(pkg, imp)):
			return "imports must point down the layers"
		}
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	for _, p := range sansIO {
		if top != p {
			continue
		}
		for _, banned := range []string{"github.com/quic-go/", "github.com/libp2p/", "net/http", "go.opentelemetry.io/", "os/exec"} {
			if strings.HasPrefix(imp, banned) {
				return "protocol packages are sans-IO state machines"
			}
		}
	}
	if strings.HasPrefix(imp, "github.com/libp2p/go-reuseport") && rel != "internal/transport" {
		return "only internal/transport opens sockets"
	}
	if strings.HasPrefix(imp, "go.opentelemetry.io/") && !(rel == "" || top == "cmd" || strings.HasPrefix(rel, "internal/telemetry")) {
		return "only the driver and cmd/ import OpenTelemetry"
	}
	return ""
}

func sameTop(a, b string) bool {
	ta, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, module), "/"), "/")
	tb, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(b, module), "/"), "/")
	return ta == tb
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 5 {
		t.Fatalf("go list found only %d packages", len(lines))
	}
	for _, line := range lines {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if why := checkEdge(f[0], imp); why != "" {
				t.Errorf("%s imports %s: %s", f[0], imp, why)
			}
		}
	}
}

// TestImportRulesCatch shows the checker refuses the edges it should.
func TestImportRulesCatch(t *testing.T) {
	bad := [][2]string{
		{module + "/membership", module + "/broadcast"},
		{module + "/membership", "github.com/quic-go/quic-go"},
		{module + "/registry", "go.opentelemetry.io/otel"},
		{module + "/internal/identity", module},
		{module, module + "/cmd/mycelium"},
		{module, module + "/internal/control"},
		{module + "/circuit", module + "/relay"},
		{module + "/internal/wire", "github.com/libp2p/go-reuseport"},
		{module + "/stray", module + "/internal/wire"},
	}
	for _, e := range bad {
		if checkEdge(e[0], e[1]) == "" {
			t.Errorf("%s -> %s was allowed", e[0], e[1])
		}
	}
	good := [][2]string{
		{module, module + "/internal/transport"},
		{module + "/cmd/mycelium", module},
		{module + "/internal/transport", "github.com/libp2p/go-reuseport"},
		{module + "/broadcast", module + "/membership"},
		{module + "/relay", module + "/circuit"},
		{module + "/internal/transport", module + "/internal/identity"},
		{module + "/simulations/netlab", module + "/internal/identity"},
	}
	for _, e := range good {
		if why := checkEdge(e[0], e[1]); why != "" {
			t.Errorf("%s -> %s refused: %s", e[0], e[1], why)
		}
	}
}
