//go:build linux

package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// STUN ports of the coturn server (RFC 5780 needs two addresses and two
// ports).
const (
	STUNPort    = 3478
	STUNAltPort = 3479
)

// stunReadyTimeout bounds the wait for turnserver to answer; only a broken
// setup reaches it.
const stunReadyTimeout = 30 * time.Second

// STUNServer is coturn's turnserver running as a STUN-only RFC 5780 server
// in the internet namespace.
type STUNServer struct {
	// Primary is where clients send: 203.0.113.1:3478.
	Primary netip.AddrPort
	// Other is the RFC 5780 OTHER-ADDRESS: 198.51.100.1:3479.
	Other netip.AddrPort
	// Proc is the turnserver process; its output is its log.
	Proc *Proc
}

// STUN starts coturn's turnserver in the internet namespace on the first
// call and returns it; it skips the test if coturn is not installed. It
// returns once the server answers a binding request with CHANGE-REQUEST
// from its other address, so RFC 5780 is known to work. The server runs:
//
//	turnserver -n --listening-ip 203.0.113.1 --listening-ip 198.51.100.1
//	  --listening-port 3478 --alt-listening-port 3479 --stun-only --no-auth
//	  --no-cli --no-tls --no-dtls --no-tcp --log-file stdout --simple-log
//	  --no-software-attribute --pidfile DIR/turnserver.pid --userdb DIR/turndb
//
// (-n: no config file; pidfile and userdb in the testbed's directory, so
// nothing outside it is written.)
func (tb *Testbed) STUN() *STUNServer {
	tb.t.Helper()
	tb.mu.Lock()
	s := tb.stun
	tb.mu.Unlock()
	if s != nil {
		return s
	}
	for _, bin := range []string{"turnserver", "turnutils_natdiscovery"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.t.Skipf("netns: %s not found in PATH: install the Debian package coturn", bin)
		}
	}
	dir := filepath.Join(tb.dir, "coturn")
	cmd := tb.internet.Command(context.Background(), "turnserver", "-n",
		"--listening-ip", internetAddr.String(), "--listening-ip", internetAltAddr.String(),
		"--listening-port", fmt.Sprint(STUNPort), "--alt-listening-port", fmt.Sprint(STUNAltPort),
		"--stun-only", "--no-auth", "--no-cli", "--no-tls", "--no-dtls", "--no-tcp",
		"--log-file", "stdout", "--simple-log", "--no-software-attribute",
		"--pidfile", filepath.Join(dir, "turnserver.pid"), "--userdb", filepath.Join(dir, "turndb"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.t.Fatalf("netns: %v", err)
	}
	s = &STUNServer{
		Primary: netip.AddrPortFrom(internetAddr, STUNPort),
		Other:   netip.AddrPortFrom(internetAltAddr, STUNAltPort),
		Proc:    tb.internet.Start(cmd),
	}
	ctx, cancel := context.WithTimeout(context.Background(), stunReadyTimeout)
	defer cancel()
	if err := tb.internet.stunProbe(ctx, s); err != nil {
		tb.t.Fatalf("netns: turnserver is not answering: %v; output:\n%s", err, s.Proc.Output())
	}
	tb.mu.Lock()
	tb.stun = s
	tb.mu.Unlock()
	return s
}

// STUN message layout (RFC 5389 section 6, RFC 5780 section 7.2).
const (
	stunHeaderLen     = 20
	stunMagicCookie   = 0x2112A442
	stunBindRequest   = 0x0001
	stunBindSuccess   = 0x0101
	stunChangeRequest = 0x0003
	stunChangeIP      = 0x4
	stunChangePort    = 0x2
)

// stunProbe sends binding requests asking for an answer from the other
// address and port until one comes back from s.Other. Each try waits a
// little longer than the last: a lost or early request is simply resent.
func (n *NS) stunProbe(ctx context.Context, s *STUNServer) error {
	c, err := n.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return err
	}
	defer c.Close()
	var txid [12]byte
	rand.Read(txid[:])
	req := binary.BigEndian.AppendUint16(nil, stunBindRequest)
	req = binary.BigEndian.AppendUint16(req, 8)
	req = binary.BigEndian.AppendUint32(req, stunMagicCookie)
	req = append(req, txid[:]...)
	req = binary.BigEndian.AppendUint16(req, stunChangeRequest)
	req = binary.BigEndian.AppendUint16(req, 4)
	req = binary.BigEndian.AppendUint32(req, stunChangeIP|stunChangePort)
	buf := make([]byte, 1500)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		if _, err := c.WriteTo(req, net.UDPAddrFromAddrPort(s.Primary)); err != nil {
			return err
		}
		deadline := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		c.SetReadDeadline(deadline)
		for {
			nr, from, err := c.ReadFrom(buf)
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			if err != nil {
				break // this try timed out
			}
			m := buf[:nr]
			if nr >= stunHeaderLen && binary.BigEndian.Uint16(m) == stunBindSuccess && bytes.Equal(m[8:20], txid[:]) {
				if got := from.(*net.UDPAddr).AddrPort(); got != s.Other {
					return fmt.Errorf("CHANGE-REQUEST answered from %v, want %v", got, s.Other)
				}
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.Proc.Done():
			return errors.New("turnserver exited")
		default:
		}
	}
}

// natDiscoveryMax bounds the turnutils_natdiscovery processes running at
// once in this test process. It reads a missing answer after a fixed 3 s
// wait as "filtered"; with many runs at once on a small, loaded machine an
// answer that is merely late could flip a verdict. Three keep the
// cross-check tests' waiting overlapped while the machine stays idle enough.
const natDiscoveryMax = 3

var natDiscoverySlots = make(chan struct{}, natDiscoveryMax)

// Discovery is what turnutils_natdiscovery reported.
type Discovery struct {
	// Mapping and Filtering are its verdicts; Unknown if it gave none.
	Mapping, Filtering Behaviour
	// NoNAT is set when it found its local address equal to the reflexive
	// one (it only can when given -L).
	NoNAT bool
	// Reflexive lists every "UDP reflexive addr" it printed, in order.
	Reflexive []netip.AddrPort
	// Raw is its whole output.
	Raw string
}

var (
	verdictRE   = regexp.MustCompile(`(?m)^NAT with (Endpoint Independent|Address Dependent|Address and Port Dependent) (Mapping|Filtering)!\s*$`)
	noNATRE     = regexp.MustCompile(`(?m)^No NAT!`)
	reflexiveRE = regexp.MustCompile(`UDP reflexive addr:?\s*(\d+\.\d+\.\d+\.\d+:\d+)`)
)

// NATDiscovery runs turnutils_natdiscovery in the namespace against s, with
// flags (-m for mapping, -f for filtering, -L/-l for a fixed local address
// and port, …), and parses what it prints. Its verdict lines are:
//
//	NAT with Endpoint Independent Mapping!
//	NAT with Address Dependent Mapping!
//	NAT with Address and Port Dependent Mapping!
//	NAT with Endpoint Independent Filtering!
//	NAT with Address Dependent Filtering!
//	NAT with Address and Port Dependent Filtering!
//	No NAT! (Endpoint Independent Mapping)
//
// Its filtering tests wait 3 s for each answer that does not come, so an
// address-and-port-dependent verdict takes about 6 s. The verdicts rest on
// those fixed waits, so at most natDiscoveryMax runs go at once in this
// process; NATDiscovery waits for its turn (within ctx).
func (n *NS) NATDiscovery(ctx context.Context, s *STUNServer, flags ...string) (Discovery, error) {
	select {
	case natDiscoverySlots <- struct{}{}:
		defer func() { <-natDiscoverySlots }()
	case <-ctx.Done():
		return Discovery{}, fmt.Errorf("waiting for one of %d turnutils_natdiscovery slots: %w", natDiscoveryMax, ctx.Err())
	}
	args := append(append([]string{}, flags...), "-p", fmt.Sprint(s.Primary.Port()), s.Primary.Addr().String())
	out, err := n.Run(ctx, "turnutils_natdiscovery", args...)
	return parseDiscovery(out), err
}

// parseDiscovery reads turnutils_natdiscovery's output. Verdicts it does
// not recognise, or contradictory ones, leave Unknown.
func parseDiscovery(out string) Discovery {
	d := Discovery{Raw: out, NoNAT: noNATRE.MatchString(out)}
	seen := map[string]int{}
	for _, m := range verdictRE.FindAllStringSubmatch(out, -1) {
		var b Behaviour
		switch m[1] {
		case "Endpoint Independent":
			b = EndpointIndependent
		case "Address Dependent":
			b = AddressDependent
		case "Address and Port Dependent":
			b = AddressAndPortDependent
		}
		seen[m[2]]++
		switch {
		case m[2] == "Mapping" && seen[m[2]] == 1:
			d.Mapping = b
		case m[2] == "Filtering" && seen[m[2]] == 1:
			d.Filtering = b
		case m[2] == "Mapping":
			d.Mapping = Unknown
		default:
			d.Filtering = Unknown
		}
	}
	for _, m := range reflexiveRE.FindAllStringSubmatch(out, -1) {
		if ap, err := netip.ParseAddrPort(m[1]); err == nil {
			d.Reflexive = append(d.Reflexive, ap)
		}
	}
	return d
}

func (d Discovery) String() string {
	return fmt.Sprintf("mapping %s, filtering %s", d.Mapping, d.Filtering)
}

// verdicts are the lines of d.Raw that carry a verdict, for reports.
func (d Discovery) verdicts() string {
	var lines []string
	for _, l := range strings.Split(d.Raw, "\n") {
		if verdictRE.MatchString(l) || noNATRE.MatchString(l) || reflexiveRE.MatchString(l) || strings.Contains(l, "timeout") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, "\n")
}
