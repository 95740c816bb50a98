//go:build linux

package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

var readyRE = regexp.MustCompile(`msg=ready id=(\S+) listen=(\S+) control=(\S+)`)

// node is a `mycelium node` process in a host's namespace.
type node struct {
	bin, home, control string
	id, listen         string
	host               *Host
	proc               *Proc
}

// startNode runs `mycelium node` in h's namespace, logging at debug level,
// and waits for its ready line.
func startNode(t *testing.T, tb *Testbed, bin string, h *Host, listen netip.AddrPort, extra ...string) *node {
	t.Helper()
	return startNodeHome(t, tb, bin, h, h.Role, listen, extra...)
}

// startNodeHome is startNode with its own home directory name, for a second
// node on one host.
func startNodeHome(t *testing.T, tb *Testbed, bin string, h *Host, home string, listen netip.AddrPort, extra ...string) *node {
	t.Helper()
	return startRole(t, tb, bin, h, home, "node", listen, extra...)
}

// startRole is startNodeHome for the command cmd: "node" or "relay".
func startRole(t *testing.T, tb *Testbed, bin string, h *Host, home, role string, listen netip.AddrPort, extra ...string) *node {
	t.Helper()
	n := &node{bin: bin, home: filepath.Join(tb.Dir(), home), host: h}
	if err := os.MkdirAll(n.home, 0o700); err != nil {
		t.Fatal(err)
	}
	n.control = "unix:" + filepath.Join(n.home, "control.sock")
	args := append([]string{role, "--listen", listen.String(), "--key", filepath.Join(n.home, "node.key"),
		"--control", n.control, "--log-level", "debug"}, extra...)
	cmd := h.Command(context.Background(), bin, args...)
	cmd.Env = n.env()
	n.proc = h.Start(cmd)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	m, err := n.proc.WaitFor(ctx, readyRE)
	if err != nil {
		t.Fatal(err)
	}
	n.id, n.listen = m[1], m[2]
	return n
}

func (n *node) env() []string {
	return append(os.Environ(), "MYCELIUM_HOME="+n.home, "MYCELIUM_CONTROL=", "GORACE=atexit_sleep_ms=0")
}

// cli runs a mycelium client command against the node's control socket,
// from the node's namespace.
func (n *node) cli(t *testing.T, stdin []byte, args ...string) (stdout []byte) {
	t.Helper()
	out, stderr, err := n.tryCLI(stdin, args...)
	if err != nil {
		t.Fatalf("mycelium %v in %s: %v; stderr: %s", args, n.host.Role, err, stderr)
	}
	return out
}

// tryCLI is cli for a command that may fail: it returns the error and
// what the command wrote to stderr.
func (n *node) tryCLI(stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	args = append([]string{args[0], "--control", n.control}, args[1:]...)
	cmd := n.host.Command(ctx, n.bin, args...)
	cmd.Env = n.env()
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}

// stop sends SIGTERM and expects a clean exit.
func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := n.proc.Wait(ctx); err != nil {
		t.Errorf("node in %s after SIGTERM: %v\n%s", n.host.Role, err, n.proc.Output())
	}
}

// TestMyceliumStreamAcrossNAT runs the real binary: a public node, and
// behind a NAT of each recipe a node that bootstraps to it. The public node
// has no route to any LAN, so when it dials a NATed node's echo service the
// stream can only ride the connection that node opened through its NAT.
// 1 MiB of random bytes must come back intact. Two more public nodes (one
// on the first's address, one on its own) serve as STUN observers: each
// NATed node must classify its mapping as the recipe gives it.
func TestMyceliumStreamAcrossNAT(t *testing.T) {
	leakcheck.Check(t)
	tb := New(t)
	bin := myceliumBinary(t)
	pubHost := tb.AddPublicHost("pub")
	pub := startNode(t, tb, bin, pubHost, netip.AddrPortFrom(pubHost.Addr, 4242))
	boot := "--bootstrap=" + pub.id + "@" + pub.listen
	pubHost2 := tb.AddPublicHost("pub2")
	observers := []*node{
		startNodeHome(t, tb, bin, pubHost, "pub-b", netip.AddrPortFrom(pubHost.Addr, 4243), boot),
		startNodeHome(t, tb, bin, pubHost2, "pub2", netip.AddrPortFrom(pubHost2.Addr, 4242), boot),
	}
	for i, recipe := range Recipes() {
		router := tb.AddNAT(fmt.Sprintf("nat%d", i), recipe)
		host := router.AddHost(fmt.Sprintf("h%d", i))
		t.Run(recipe.String(), func(t *testing.T) {
			streamThroughNAT(t, tb, bin, pub, router, host, recipe)
		})
	}
	for _, o := range observers {
		o.stop(t)
	}
	pub.stop(t)
}

func streamThroughNAT(t *testing.T, tb *Testbed, bin string, pub *node, router *Router, host *Host, recipe Recipe) {
	nated := startNode(t, tb, bin, host, netip.AddrPortFrom(host.Addr, 4242), "--bootstrap", pub.id+"@"+pub.listen)

	// It classifies its NAT's mapping from the public nodes' STUN answers.
	nctx, ncancel := context.WithTimeout(context.Background(), waitLimit)
	defer ncancel()
	nm, err := nated.proc.WaitFor(nctx, regexp.MustCompile(`msg="nat classified"[^\n]* mapping=(\S+) filtering=\S+ public=false reflexive=(\S+)`))
	if err != nil {
		t.Fatal(err)
	}
	if nm[1] != recipe.Mapping().String() {
		t.Errorf("%s: the node classified its mapping as %s, want %s", recipe, nm[1], recipe.Mapping())
	}
	if ref, err := netip.ParseAddrPort(strings.Split(nm[2], ",")[0]); err != nil || ref.Addr() != router.PublicAddr() {
		t.Errorf("%s: reflexive %s, want the router's address %v", recipe, nm[2], router.PublicAddr())
	}

	// The public node sees the NATed node arrive from the router's address.
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	m, err := pub.proc.WaitFor(ctx, regexp.MustCompile(`msg="peer connected"[^\n]* peer=`+regexp.QuoteMeta(nated.id[:8])+` [^\n]*addr=(\S+) [^\n]*outbound=false`))
	if err != nil {
		t.Fatal(err)
	}
	from, err := netip.ParseAddrPort(m[1])
	if err != nil || from.Addr() != router.PublicAddr() {
		t.Fatalf("the NATed node's connection arrived from %s, want the router's address %v (%v)", m[1], router.PublicAddr(), err)
	}

	// An echo server on the NATed host's loopback, run by this process.
	ln, err := host.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { echo.Serve(ln); close(served) }()
	defer func() { ln.Close(); <-served }()
	nated.cli(t, nil, "expose", "echo", ln.Addr().String())

	payload := make([]byte, 1<<20)
	rand.Read(payload)
	got := pub.cli(t, payload, "dial", nated.id+"/echo")
	if !bytes.Equal(got, payload) {
		t.Fatalf("the echo through the NAT returned %d bytes differing from the %d sent", len(got), len(payload))
	}

	// The public node's path to the NATed node is that connection.
	var st struct {
		Peers []struct{ ID, Path, Addr string }
	}
	if out := pub.cli(t, nil, "status", "--json"); json.Unmarshal(out, &st) != nil {
		t.Fatalf("status --json: %s", out)
	}
	found := false
	for _, p := range st.Peers {
		if p.ID == nated.id {
			found = true
			if p.Addr != from.String() || p.Path != "direct" {
				t.Fatalf("public node's peer %s: %+v, want the direct connection from %v", nated.id, p, from)
			}
		}
	}
	if !found {
		t.Fatalf("public node's peers %+v lack %s", st.Peers, nated.id)
	}
	nated.stop(t)
}
