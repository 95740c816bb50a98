//go:build linux

package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runTimeout bounds a one-shot command run by the testbed itself (ip, nft,
// iptables, conntrack). It only matters when something is broken.
const runTimeout = 30 * time.Second

// NS is one network namespace of a testbed.
type NS struct {
	tb *Testbed
	// Name is the namespace's name, for `ip netns exec Name …`.
	Name string
	// Role is the short name given to AddPublicHost, AddNAT or AddHost;
	// "internet" for the internet.
	Role string
}

// Host is a namespace with one address: public, or private behind Router.
type Host struct {
	*NS
	// Addr is the host's address on its link: in 203.0.113.0/24 for a
	// public host, in its router's LAN otherwise.
	Addr netip.Addr
	// Router is the NAT router in front of the host; nil for a public host.
	Router *Router
}

func (n *NS) String() string { return n.Name }

// Command returns a command that runs name with args inside the namespace
// (through `ip netns exec`). The environment is the test process's. Like
// every process the testbed starts (see command), it gets its own process
// group, is killed with SIGKILL should the test process die without cleaning
// up, and has its whole group killed when ctx ends.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return command(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs name with args inside the namespace to completion and returns
// its combined output. The error includes the command line and the output.
func (n *NS) Run(ctx context.Context, name string, args ...string) (string, error) {
	return n.runInput(ctx, "", name, args...)
}

func (n *NS) runInput(ctx context.Context, stdin, name string, args ...string) (string, error) {
	cmd := n.Command(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s %s: %w: %s", n.Role, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ip runs `ip -n NS args…`.
func (n *NS) ip(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	out, err := command(ctx, "ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: ip %s: %w: %s", n.Role, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (n *NS) mustIP(args ...string) {
	n.tb.t.Helper()
	if _, err := n.ip(args...); err != nil {
		n.tb.t.Fatalf("netns: %v", err)
	}
}

// run runs a tool inside the namespace with the testbed's own timeout.
func (n *NS) run(stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	return n.runInput(ctx, stdin, name, args...)
}

// sysctl writes /proc/sys/<key> inside the namespace.
func (n *NS) sysctl(key, value string) error {
	return n.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

func (n *NS) mustSysctl(key, value string) {
	n.tb.t.Helper()
	if err := n.sysctl(key, value); err != nil {
		n.tb.t.Fatalf("netns: in %s: sysctl %s=%s: %v", n.Role, key, value, err)
	}
}

// bridgeNoNetfilter keeps frames switched by a bridge in this namespace out
// of iptables and conntrack (br_netfilter), so only routed packets meet the
// NAT rules. Kernels without br_netfilter have no such switch.
func (n *NS) bridgeNoNetfilter() {
	n.tb.t.Helper()
	for _, k := range []string{"iptables", "ip6tables", "arptables"} {
		err := n.sysctl("net/bridge/bridge-nf-call-"+k, "0")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			n.tb.t.Fatalf("netns: in %s: %v", n.Role, err)
		}
	}
}

// Do runs f on an OS thread that has entered the namespace, so sockets f
// creates belong to it; they stay there when used from any goroutine
// afterwards. f must not start goroutines that expect to be inside the
// namespace: only the thread running f is.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread goes back to its own namespace before it is unlocked.
		// Should that fail, it stays locked and the runtime ends it with
		// this goroutine, so no other goroutine ever runs in the wrong
		// namespace.
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join(netnsDir, n.Name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: enter %s: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := setns(self); err != nil {
			errc <- fmt.Errorf("netns: leave %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func setns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }

// Listen is net.Listen inside the namespace.
func (n *NS) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// ListenPacket is net.ListenPacket inside the namespace. The result can be
// handed to an in-process node (Config.PacketConn) to put it behind a NAT.
func (n *NS) ListenPacket(network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.Do(func() (err error) {
		c, err = net.ListenPacket(network, address)
		return err
	})
	return c, err
}

// DialContext is net.Dialer.DialContext inside the namespace.
func (n *NS) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}
