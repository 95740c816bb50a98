//go:build linux

package netns

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The kernel facts of doc.go that a model of Linux NAT (netlab) should
// reproduce, shown on the running kernel with in-process sockets.

// reflectorPort is where udpReflector listens.
const reflectorPort = 7000

// udpReflector answers every UDP datagram sent to h's address, port
// reflectorPort, with "<the datagram> <its source as seen here>", until the
// test ends, and returns its address.
func udpReflector(t *testing.T, h *Host) netip.AddrPort {
	t.Helper()
	_, addr := udpReflectorConn(t, h)
	return addr
}

// udpReflectorConn is udpReflector that also returns its socket, to send
// from the reflector's address.
func udpReflectorConn(t *testing.T, h *Host) (net.PacketConn, netip.AddrPort) {
	t.Helper()
	addr := netip.AddrPortFrom(h.Addr, reflectorPort)
	c, err := h.ListenPacket("udp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo(fmt.Appendf(nil, "%s %s", buf[:n], from), from)
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c, addr
}

// udpSocket is a UDP socket in h's namespace on h's address and port.
func udpSocket(t *testing.T, h *Host, port uint16) net.PacketConn {
	t.Helper()
	c, err := h.ListenPacket("udp4", netip.AddrPortFrom(h.Addr, port).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// whoami asks the reflector at to which address and port c's datagrams
// arrive from: one request and its answer, the request resent every
// 500 ms until an answer to it comes (there is no loss between namespaces;
// this only bounds the wait).
func whoami(c net.PacketConn, to netip.AddrPort) (netip.AddrPort, error) {
	var nonce [8]byte
	rand.Read(nonce[:])
	req := []byte(hex.EncodeToString(nonce[:]))
	deadline := time.Now().Add(waitLimit)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := c.WriteTo(req, net.UDPAddrFromAddrPort(to)); err != nil {
			return netip.AddrPort{}, err
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, from, err := c.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return netip.AddrPort{}, err
			}
			got, seen, ok := bytes.Cut(buf[:n], []byte(" "))
			if !ok || !bytes.Equal(got, req) || from.(*net.UDPAddr).AddrPort() != to {
				continue // an answer to an earlier request
			}
			return netip.ParseAddrPort(string(seen))
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no answer from %v to %v within %v", to, c.LocalAddr(), waitLimit)
}

func mustWhoami(t *testing.T, c net.PacketConn, to netip.AddrPort) netip.AddrPort {
	t.Helper()
	ap, err := whoami(c, to)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// TestMasqueradePortCollision: MASQUERADE keeps a host's source port unless
// another mapping already uses that public port towards the same remote
// address and port; then it picks a random port, not the next one, and the
// host's later mappings to new remotes take that port (its newest). So one
// public port carries several hosts' mappings while their remotes differ,
// and a host's mapping stops being endpoint-independent where two collide.
func TestMasqueradePortCollision(t *testing.T) {
	tb := New(t)
	s1 := udpReflector(t, tb.AddPublicHost("s1"))
	s2 := udpReflector(t, tb.AddPublicHost("s2"))
	s3 := udpReflector(t, tb.AddPublicHost("s3"))
	r := tb.AddNAT("nat", Masquerade)
	const port = 5000
	a := udpSocket(t, r.AddHost("a"), port)
	b := udpSocket(t, r.AddHost("b"), port)
	pub := netip.AddrPortFrom(r.PublicAddr(), port)

	// Different remotes: both hosts keep port 5000.
	if got := mustWhoami(t, a, s1); got != pub {
		t.Fatalf("a:%d -> s1 arrives from %v, want %v (port kept)", port, got, pub)
	}
	if got := mustWhoami(t, b, s2); got != pub {
		t.Fatalf("b:%d -> s2 arrives from %v, want %v: while the remotes differ the public port is shared", port, got, pub)
	}
	// The same remote: the second host to get there gets another port.
	bs1 := mustWhoami(t, b, s1)
	as2 := mustWhoami(t, a, s2)
	t.Logf("a:%d appears to s1 as %v, to s2 as %v; b:%d appears to s2 as %v, to s1 as %v", port, pub, as2, port, pub, bs1)
	for _, c := range []struct {
		what string
		got  netip.AddrPort
	}{{"b -> s1", bs1}, {"a -> s2", as2}} {
		if c.got.Addr() != r.PublicAddr() || c.got.Port() == port {
			t.Errorf("%s arrives from %v, want %v with a port other than %d: that tuple is taken", c.what, c.got, r.PublicAddr(), port)
		}
	}
	// A search upwards from 5001 would give both 5001 (their tuples differ);
	// a random start puts both within ten of it once in ~4e7 runs.
	if near := func(p uint16) bool { return p > port && p <= port+10 }; near(bs1.Port()) && near(as2.Port()) {
		t.Errorf("the colliding mappings got ports %d and %d, next to %d: the kernel searched upwards, where doc.go says it starts at random", bs1.Port(), as2.Port(), port)
	}
	// A new remote: each host reuses its newest mapping's port.
	bs3 := mustWhoami(t, b, s3)
	as3 := mustWhoami(t, a, s3)
	t.Logf("to s3, a new remote: a appears as %v, b as %v", as3, bs3)
	if bs3 != bs1 {
		t.Errorf("b -> s3 arrives from %v, want %v, b's newest mapping", bs3, bs1)
	}
	if as2 != bs1 && as3 != as2 { // equal random ports would collide at s3
		t.Errorf("a -> s3 arrives from %v, want %v, a's newest mapping", as3, as2)
	}
	// Existing mappings stay as they are.
	for _, c := range []struct {
		what string
		c    net.PacketConn
		to   netip.AddrPort
		want netip.AddrPort
	}{{"a -> s1", a, s1, pub}, {"b -> s2", b, s2, pub}, {"b -> s1", b, s1, bs1}} {
		if got := mustWhoami(t, c.c, c.to); got != c.want {
			t.Errorf("%s again arrives from %v, want %v as before", c.what, got, c.want)
		}
	}
}

// TestUnsolicitedInboundKeepsMapping: a datagram from outside addressed to
// the router's public address and a port no mapping uses is dropped before
// conntrack records it. Were it let in to the router itself (where nothing
// listens), its conntrack entry would hold that public port towards its
// sender, and a host sending later from the same port to that sender would
// get a random port there: one remote would see the host from another port,
// and the recipe would not be the endpoint-independent mapping it claims.
// CI met that: nodes that learnt a NAT-bound node's address from its record
// reached it before it reached them.
func TestUnsolicitedInboundKeepsMapping(t *testing.T) {
	tb := New(t)
	for _, recipe := range []Recipe{Masquerade, AddressDependentFiltering, EndpointIndependentFiltering} {
		t.Run(recipe.String(), func(t *testing.T) {
			r := tb.AddNAT("nat"+strconv.Itoa(int(recipe)), recipe)
			s1, s1Addr := udpReflectorConn(t, tb.AddPublicHost("s1r"+strconv.Itoa(int(recipe))))
			const port = 5000
			pub := netip.AddrPortFrom(r.PublicAddr(), port)
			before := inputDrops(t, r)
			if _, err := s1.WriteTo([]byte("unsolicited"), net.UDPAddrFromAddrPort(pub)); err != nil {
				t.Fatal(err)
			}
			// Wait for the router to have dropped it (the packet's
			// arrival is the event; the poll only bounds the wait).
			deadline := time.Now().Add(waitLimit)
			for inputDrops(t, r) == before {
				if time.Now().After(deadline) {
					t.Fatalf("the router's INPUT drop counter stayed at %d: the unsolicited datagram never arrived", before)
				}
				time.Sleep(10 * time.Millisecond)
			}
			a := udpSocket(t, r.AddHost("a"+strconv.Itoa(int(recipe))), port)
			if got := mustWhoami(t, a, s1Addr); got != pub {
				ct, _ := r.Conntrack()
				t.Fatalf("a:%d -> s1 arrives from %v, want %v (port kept): the unsolicited datagram took the port\n%s", port, got, pub, ct)
			}
		})
	}
}

// inputDrops is the packet count of the router's rule that drops new
// inbound flows addressed to itself.
func inputDrops(t *testing.T, r *Router) int {
	t.Helper()
	out, err := r.run("", "iptables", "-L", "INPUT", "-v", "-x", "-n")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == "DROP" {
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("iptables counter %q: %v", f[0], err)
			}
			return n
		}
	}
	t.Fatalf("the router has no INPUT DROP rule:\n%s", out)
	return 0
}

// ctEntry is one line of `conntrack -L`: the first src and sport (the
// original direction's), the timeout left in seconds, and the flags.
type ctEntry struct {
	src, sport string
	timeout    int
	assured    bool
	unreplied  bool
	line       string
}

// udpConntrack parses the UDP entries of `conntrack -L` output, whose lines
// read
//
//	udp      17 27 src=10.1.0.2 dst=203.0.113.10 sport=5001 dport=7000 src=203.0.113.10 dst=198.51.100.10 sport=7000 dport=5001 mark=0 use=1
//	udp      17 119 src=10.1.0.2 dst=203.0.113.10 sport=5002 dport=7000 src=203.0.113.10 dst=198.51.100.10 sport=7000 dport=5002 [ASSURED] mark=0 use=1
func udpConntrack(out string) []ctEntry {
	var es []ctEntry
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "udp" {
			continue
		}
		e := ctEntry{line: line}
		e.timeout, _ = strconv.Atoi(f[2])
		for _, w := range f[3:] {
			switch {
			case w == "[ASSURED]":
				e.assured = true
			case w == "[UNREPLIED]":
				e.unreplied = true
			case strings.HasPrefix(w, "src=") && e.src == "":
				e.src = w[4:]
			case strings.HasPrefix(w, "sport=") && e.sport == "":
				e.sport = w[6:]
			}
		}
		es = append(es, e)
	}
	return es
}

// TestUDPConntrackTimeouts: a UDP conntrack entry that has seen one
// request and its reply keeps the unreplied timeout (30 s) and is not
// ASSURED; only a packet more than 2 s after the entry began, once a reply
// has been seen, makes it ASSURED with the stream timeout (120 s).
func TestUDPConntrackTimeouts(t *testing.T) {
	tb := New(t)
	srv := udpReflector(t, tb.AddPublicHost("srv"))
	r := tb.AddNAT("nat", Masquerade)
	h := r.AddHost("h")
	const oncePort, streamPort = 5001, 5002
	once := udpSocket(t, h, oncePort)
	stream := udpSocket(t, h, streamPort)

	start := time.Now()
	mustWhoami(t, once, srv)
	mustWhoami(t, stream, srv)
	// The kernel's 2 s (nf_conntrack_proto_udp.c, stream_ts) plus a margin.
	time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
	mustWhoami(t, stream, srv)

	var timeouts [2]int
	for i, name := range []string{"nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"} {
		err := r.Do(func() error {
			b, err := os.ReadFile("/proc/sys/net/netfilter/" + name)
			if err == nil {
				timeouts[i], err = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			return err
		})
		if err != nil {
			t.Fatalf("in %s: %v", r.Role, err)
		}
	}
	unreplied, assured := timeouts[0], timeouts[1]
	t.Logf("in %s: nf_conntrack_udp_timeout %d s, nf_conntrack_udp_timeout_stream %d s", r.Role, unreplied, assured)
	if unreplied != 30 || assured != 120 {
		t.Errorf("UDP conntrack timeouts are %d s and %d s; doc.go says 30 s and 120 s", unreplied, assured)
	}

	ct, err := r.Conntrack()
	if err != nil {
		t.Fatal(err)
	}
	entry := func(port int) ctEntry {
		for _, e := range udpConntrack(ct) {
			if e.src == h.Addr.String() && e.sport == strconv.Itoa(port) {
				return e
			}
		}
		t.Fatalf("no conntrack entry from %v:%d in:\n%s", h.Addr, port, ct)
		return ctEntry{}
	}
	t.Logf("$ conntrack -L (in %s, %.1f s after the first exchange)\n%s", r.Role, time.Since(start).Seconds(), ct)
	if e := entry(oncePort); e.assured || e.unreplied || e.timeout > unreplied {
		t.Errorf("after one request and its reply: %q; want replied, not ASSURED, at most %d s left", e.line, unreplied)
	}
	if e := entry(streamPort); !e.assured || e.timeout <= unreplied || e.timeout > assured {
		t.Errorf("after an exchange 2.5 s after the first: %q; want ASSURED, %d-%d s left", e.line, unreplied+1, assured)
	}
}
