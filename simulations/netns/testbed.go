//go:build linux

package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The internet namespace's addresses. All addresses here are TEST-NET
// (RFC 5737) or private (RFC 1918), and nothing is routed outside the
// namespaces. Read-only.
var (
	// internetAddr is on the public-host subnet 203.0.113.0/24: the public
	// hosts' gateway and the STUN server's primary address.
	internetAddr = netip.AddrFrom4([4]byte{203, 0, 113, 1})
	// internetAltAddr is on the NAT subnet 198.51.100.0/24: the routers'
	// gateway and the STUN server's RFC 5780 other address.
	internetAltAddr = netip.AddrFrom4([4]byte{198, 51, 100, 1})
)

const (
	firstHostOctet = 10  // public hosts and routers number from .10
	maxHostOctet   = 254 // and end at .254
	maxLANs        = 250 // routers get 10.1.0.0/24 … 10.250.0.0/24
	netnsDir       = "/var/run/netns"
	cleanupTimeout = 10 * time.Second // for a killed process to be reaped
)

// tools are the commands every testbed needs, with the Debian package
// that has each. coturn's are checked where they are used (STUN).
var tools = []struct{ bin, pkg string }{
	{"ip", "iproute2"},
	{"iptables", "iptables"},
	{"iptables-restore", "iptables"},
	{"nft", "nftables"},
	{"conntrack", "conntrack"},
}

// Testbed is one test's set of namespaces: the internet, public hosts and
// NAT routers with their LANs. Make it with New; everything it creates goes
// away at the test's cleanup.
type Testbed struct {
	t      testing.TB
	prefix string // of every namespace name: "myc<pid>-<6 hex>-"
	dir    string // short temp dir (unix socket paths are limited to 108 bytes)

	internet *NS

	mu       sync.Mutex
	nss      []*NS // in creation order
	procs    []*Proc
	routers  []*Router
	roles    map[string]bool
	pubNext  int // next host octet in 203.0.113.0/24
	natNext  int // next host octet in 198.51.100.0/24
	lanNext  int // next K for a LAN 10.K.0.0/24
	portNext int // next bridge port number in the internet namespace
	stun     *STUNServer
}

// New creates the internet namespace for t and registers the cleanup that
// tears down every namespace and process the testbed makes. It skips t,
// naming the reason, when the machine cannot run namespace tests: not root,
// a tool missing (with its Debian package), or `ip netns add` refused.
func New(t testing.TB) *Testbed {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Skipf("netns: needs root to create network namespaces (running as euid %d)", euid)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool.bin); err != nil {
			t.Skipf("netns: %s not found in PATH: install the Debian package %s", tool.bin, tool.pkg)
		}
	}
	reapStale(t)
	prefix := ownedPrefix()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("netns: %v", err)
	}
	tb := &Testbed{
		t:       t,
		prefix:  prefix,
		dir:     dir,
		roles:   map[string]bool{},
		pubNext: firstHostOctet,
		natNext: firstHostOctet,
		lanNext: 1,
	}
	t.Cleanup(tb.cleanup)

	// Creating the first namespace is where a restricted machine (a
	// container without CAP_SYS_ADMIN, a read-only /var/run) says no.
	inet, err := tb.newNS("internet")
	if err != nil {
		t.Skipf("netns: `ip netns add` is not permitted here: %v", err)
	}
	tb.internet = inet
	if _, err := inet.ip("link", "add", "br0", "type", "bridge"); err != nil {
		t.Skipf("netns: this kernel cannot make a bridge: %v", err)
	}
	inet.mustIP("link", "set", "br0", "up")
	inet.mustIP("addr", "add", internetAddr.String()+"/24", "dev", "br0")
	inet.mustIP("addr", "add", internetAltAddr.String()+"/24", "dev", "br0")
	// The internet routes between its two subnets over the one bridge, so
	// it must not tell hosts to take a shortcut (ICMP redirects).
	inet.mustSysctl("net/ipv4/ip_forward", "1")
	inet.mustSysctl("net/ipv4/conf/all/send_redirects", "0")
	inet.mustSysctl("net/ipv4/conf/br0/send_redirects", "0")
	inet.bridgeNoNetfilter()
	return tb
}

// Internet is the internet namespace: it switches every public link,
// routes between 203.0.113.0/24 and 198.51.100.0/24, and holds the gateway
// addresses 203.0.113.1 and 198.51.100.1 (where STUN listens).
func (tb *Testbed) Internet() *NS { return tb.internet }

// Dir is a short temporary directory for keys, sockets and logs. It is
// removed at cleanup, after every process is gone.
func (tb *Testbed) Dir() string { return tb.dir }

// AddPublicHost adds a host with the next free address in 203.0.113.0/24,
// whose gateway is 203.0.113.1. name is a short lower-case label, unique in
// the testbed.
func (tb *Testbed) AddPublicHost(name string) *Host {
	tb.t.Helper()
	tb.mu.Lock()
	octet := tb.pubNext
	tb.pubNext++
	tb.mu.Unlock()
	if octet > maxHostOctet {
		tb.t.Fatalf("netns: out of public host addresses")
	}
	ns := tb.mustNewNS(name)
	addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(octet)})
	tb.attach(ns, "eth0")
	ns.mustIP("addr", "add", addr.String()+"/24", "dev", "eth0")
	ns.mustIP("link", "set", "eth0", "up")
	ns.mustIP("route", "add", "default", "via", internetAddr.String())
	return &Host{NS: ns, Addr: addr}
}

// attach links ns to the internet's bridge with a veth whose end in ns is
// called ifname. The link is created inside the namespaces, never in the
// host's.
func (tb *Testbed) attach(ns *NS, ifname string) {
	tb.t.Helper()
	tb.mu.Lock()
	port := fmt.Sprintf("p%d", tb.portNext)
	tb.portNext++
	tb.mu.Unlock()
	tb.link(ns, ifname, tb.internet, port)
	tb.internet.mustIP("link", "set", port, "master", "br0", "up")
}

// link makes a veth pair with one end in a and the other in b.
func (tb *Testbed) link(a *NS, aName string, b *NS, bName string) {
	tb.t.Helper()
	if _, err := a.ip("link", "add", aName, "type", "veth", "peer", "name", bName, "netns", b.Name); err != nil {
		tb.t.Fatalf("netns: %v", err)
	}
}

var roleRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)

func (tb *Testbed) mustNewNS(role string) *NS {
	tb.t.Helper()
	ns, err := tb.newNS(role)
	if err != nil {
		tb.t.Fatalf("netns: %v", err)
	}
	return ns
}

// newNS adds a namespace named prefix+role, brings its loopback up, and
// records it for cleanup before anything else can fail.
func (tb *Testbed) newNS(role string) (*NS, error) {
	if !roleRE.MatchString(role) {
		return nil, fmt.Errorf("name %q: want 1-16 lower-case letters and digits, starting with a letter", role)
	}
	tb.mu.Lock()
	if tb.roles[role] {
		tb.mu.Unlock()
		return nil, fmt.Errorf("name %q is already in this testbed", role)
	}
	tb.roles[role] = true
	tb.mu.Unlock()

	ns := &NS{tb: tb, Name: tb.prefix + role, Role: role}
	if _, err := ipNetns("add", ns.Name); err != nil {
		return nil, err
	}
	tb.mu.Lock()
	tb.nss = append(tb.nss, ns)
	tb.mu.Unlock()
	if _, err := ns.ip("link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return ns, nil
}

// cleanup runs at the end of the test, passed, failed or panicked: it logs
// what a failed test needs to see, kills every process, then deletes every
// namespace (which takes their links with them).
func (tb *Testbed) cleanup() {
	tb.mu.Lock()
	procs, nss, routers := tb.procs, tb.nss, tb.routers
	tb.mu.Unlock()
	if tb.t.Failed() {
		for _, r := range routers {
			tb.t.Logf("netns: router %s (%s) state:\n%s", r.Role, r.Recipe, r.diagnostics())
		}
		for _, p := range procs {
			tb.t.Logf("netns: output of %s:\n%s", p.Name, p.Output())
		}
	}
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].kill(); err != nil {
			tb.t.Errorf("netns: %v", err)
		}
	}
	for i := len(nss) - 1; i >= 0; i-- {
		if err := removeNS(nss[i].Name); err != nil {
			tb.t.Errorf("netns: %v", err)
		}
	}
	os.RemoveAll(tb.dir)
}

// removeNS kills whatever still runs in the namespace, then deletes it.
func removeNS(name string) error {
	if out, err := ipNetns("pids", name); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_, err := ipNetns("del", name)
	return err
}

// ipNetns runs `ip netns args…` from the host namespace, bounded by
// runTimeout. It only adds, lists and deletes named namespaces; nothing in
// the host's own namespace changes. It returns stdout; the error carries
// stderr.
func ipNetns(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := command(ctx, "ip", append([]string{"netns"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("ip netns %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ownedName matches the names of namespaces and temporary directories this
// package makes: "myc<owner pid>-<6 hex digits>-…".
var ownedName = regexp.MustCompile(`^myc(\d+)-[0-9a-f]{6}-`)

// ownedPrefix is a fresh name prefix owned by this process.
func ownedPrefix() string { return fmt.Sprintf("myc%d-%s-", os.Getpid(), randHex(3)) }

// deadOwner reports whether name is one of ours whose owner has exited.
func deadOwner(name string) (pid int, dead bool) {
	m := ownedName.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	pid, _ = strconv.Atoi(m[1])
	return pid, pid != os.Getpid() && !alive(pid)
}

// reapStale deletes the namespaces and temporary directories that a test
// process which no longer runs left behind: one killed by a timeout or a
// signal cannot run its cleanup. The owner's PID is in each name; a live
// owner's are left alone.
func reapStale(t testing.TB) {
	if out, err := ipNetns("list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			// Another test process may be reaping the same one; losing
			// that race is fine.
			if pid, dead := deadOwner(f[0]); dead && removeNS(f[0]) == nil {
				t.Logf("netns: removed namespace %s left by test process %d, which has exited", f[0], pid)
			}
		}
	}
	dirs, _ := os.ReadDir(os.TempDir())
	for _, d := range dirs {
		if _, dead := deadOwner(d.Name()); dead && d.IsDir() {
			os.RemoveAll(filepath.Join(os.TempDir(), d.Name()))
		}
	}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S …": the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
