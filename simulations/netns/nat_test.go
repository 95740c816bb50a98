//go:build linux

package netns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitLimit bounds every wait in these tests; only a failure reaches it.
const waitLimit = time.Minute

// check is one thing a test verifies off the test goroutine: it returns a
// log for the report and an error.
type check struct {
	name string
	run  func() (log string, err error)
}

// runConcurrently starts every check at once, then reports each as a
// subtest. turnutils_natdiscovery spends most of its time waiting out 3 s
// timeouts, so the checks overlap their waiting; NATDiscovery lets only
// natDiscoveryMax of them run it at any moment, whatever -parallel or the
// number of CPUs.
func runConcurrently(t *testing.T, checks []check) {
	t.Helper()
	type result struct {
		log string
		err error
	}
	results := make([]result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			results[i].log, results[i].err = c.run()
		})
	}
	wg.Wait()
	for i, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if results[i].log != "" {
				t.Log(results[i].log)
			}
			if results[i].err != nil {
				t.Fatal(results[i].err)
			}
		})
	}
}

func discover(ns *NS, s *STUNServer, flags ...string) (Discovery, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	d, err := ns.NATDiscovery(ctx, s, flags...)
	if err != nil {
		return d, fmt.Errorf("turnutils_natdiscovery %v in %s: %w\noutput:\n%s", flags, ns.Role, err, d.Raw)
	}
	return d, nil
}

// discoverAgreeing runs turnutils_natdiscovery with flags and checks its
// report with want. Its verdicts rest on fixed 3 s waits, so one answer
// slowed down on a loaded machine can flip a verdict: a run that fails or
// disagrees is repeated once, and only a second failure counts, reported
// with both outputs. A pass at the second try is in the returned log, with
// the first output.
func discoverAgreeing(ns *NS, s *STUNServer, want func(Discovery) error, flags ...string) (Discovery, string, error) {
	try := func() (Discovery, error) {
		d, err := discover(ns, s, flags...)
		if err != nil {
			return d, err // carries the output
		}
		if err := want(d); err != nil {
			return d, fmt.Errorf("turnutils_natdiscovery %v in %s: %w; output:\n%s", flags, ns.Role, err, d.Raw)
		}
		return d, nil
	}
	d, first := try()
	if first == nil {
		return d, "", nil
	}
	d, second := try()
	if second != nil {
		return d, "", fmt.Errorf("failed twice in a row.\nFirst run: %v\nSecond run: %v", first, second)
	}
	return d, fmt.Sprintf("the first run failed and a second passed. First run: %v", first), nil
}

// joinLogs joins the non-empty logs with newlines.
func joinLogs(logs ...string) string {
	var nonEmpty []string
	for _, l := range logs {
		if l != "" {
			nonEmpty = append(nonEmpty, l)
		}
	}
	return strings.Join(nonEmpty, "\n")
}

// TestRecipesAgreeWithNATDiscovery runs coturn's RFC 5780 client behind
// each recipe, two hosts per router at once, and checks it reports the
// mapping and filtering the recipe is named for.
func TestRecipesAgreeWithNATDiscovery(t *testing.T) {
	tb := New(t)
	stun := tb.STUN()
	var checks []check
	for i, r := range Recipes() {
		rt := tb.AddNAT(fmt.Sprintf("nat%d", i), r)
		for j := range 2 {
			h := rt.AddHost(fmt.Sprintf("h%dx%d", i, j))
			checks = append(checks, check{r.String() + "/" + h.Role, func() (string, error) {
				d, retried, err := discoverAgreeing(h.NS, stun, func(d Discovery) error {
					if d.Mapping != r.Mapping() || d.Filtering != r.Filtering() {
						return fmt.Errorf("found %v behind %s, whose rules promise mapping %s, filtering %s", d, r, r.Mapping(), r.Filtering())
					}
					for _, ap := range d.Reflexive {
						if ap.Addr() != rt.PublicAddr() {
							return fmt.Errorf("reflexive address %v is not the router's %v", ap, rt.PublicAddr())
						}
					}
					return nil
				}, "-m", "-f")
				if err != nil {
					return "", err
				}
				return joinLogs(retried, fmt.Sprintf("turnutils_natdiscovery -m -f behind %s:\n%s", r, d.verdicts())), nil
			}})
		}
	}

	// A static port forward admits anyone to that one port.
	fwd := tb.AddNAT("fwd", Masquerade)
	fwdHost := fwd.AddHost("fwdhost")
	const port = 40000
	if err := fwd.Forward("udp", port, netip.AddrPortFrom(fwdHost.Addr, port)); err != nil {
		t.Fatal(err)
	}
	checks = append(checks, check{"forward", func() (string, error) {
		d, retried, err := discoverAgreeing(fwdHost.NS, stun, func(d Discovery) error {
			if d.Filtering != EndpointIndependent {
				return fmt.Errorf("found filtering %s on a forwarded port, want %s", d.Filtering, EndpointIndependent)
			}
			return nil
		}, "-f", "-L", fwdHost.Addr.String(), "-l", fmt.Sprint(port))
		if err != nil {
			return "", err
		}
		return joinLogs(retried, fmt.Sprintf("turnutils_natdiscovery -f from port %d, forwarded by DNAT:\n%s", port, d.verdicts())), nil
	}})

	// The control: a public host is behind no NAT at all.
	pub := tb.AddPublicHost("pub")
	checks = append(checks, check{"public_host", func() (string, error) {
		d, retried, err := discoverAgreeing(pub.NS, stun, func(d Discovery) error {
			if !d.NoNAT || d.Filtering != EndpointIndependent {
				return fmt.Errorf("on a public host: %v, no-NAT %v; want no NAT and endpoint-independent filtering", d, d.NoNAT)
			}
			return nil
		}, "-m", "-f", "-L", pub.Addr.String())
		if err != nil {
			return "", err
		}
		return joinLogs(retried, fmt.Sprintf("turnutils_natdiscovery -m -f on a public host:\n%s", d.verdicts())), nil
	}})
	runConcurrently(t, checks)
}

// TestRebind checks each recipe's rebinding by where coturn sees one fixed
// local port: conntrack -F alone keeps a preserved port, RebindPort moves it
// into the new range (and the recipe keeps its behaviours there, where
// mapped and local ports differ), RebindAddr moves it to the new address.
func TestRebind(t *testing.T) {
	tb := New(t)
	stun := tb.STUN()
	var checks []check
	for i, recipe := range Recipes() {
		r := tb.AddNAT(fmt.Sprintf("nat%d", i), recipe)
		h := r.AddHost(fmt.Sprintf("h%d", i))
		checks = append(checks, check{recipe.String(), func() (string, error) { return rebindChain(r, h, stun) }})
	}
	runConcurrently(t, checks)
}

func rebindChain(r *Router, h *Host, stun *STUNServer) (string, error) {
	const localPort = 40000
	var log strings.Builder
	mapped := func() (netip.AddrPort, error) {
		d, retried, err := discoverAgreeing(h.NS, stun, func(d Discovery) error {
			// Random ports drawn from a 10000-port range now and then
			// repeat, which natdiscovery would call endpoint-independent
			// or address-dependent; the mapping verdict of
			// MasqueradeRandomFully is TestRecipesAgreeWithNATDiscovery's.
			if len(d.Reflexive) == 0 || (r.Recipe != MasqueradeRandomFully && d.Mapping != r.Recipe.Mapping()) {
				return fmt.Errorf("from port %d: %v, reflexive %v; want mapping %s", localPort, d, d.Reflexive, r.Recipe.Mapping())
			}
			return nil
		}, "-m", "-L", h.Addr.String(), "-l", fmt.Sprint(localPort))
		if retried != "" {
			fmt.Fprintln(&log, retried)
		}
		if err != nil {
			return netip.AddrPort{}, err
		}
		return d.Reflexive[0], nil
	}
	before, err := mapped()
	if err != nil {
		return log.String(), err
	}
	fmt.Fprintf(&log, "%v:%d is mapped to %v\n", h.Addr, localPort, before)
	if before.Addr() != r.PublicAddr() {
		return log.String(), fmt.Errorf("mapped to %v, not to the router's address %v", before, r.PublicAddr())
	}
	if r.Recipe != MasqueradeRandomFully {
		if before.Port() != localPort {
			return log.String(), fmt.Errorf("mapped to %v: MASQUERADE did not keep port %d", before, localPort)
		}
		if _, err := r.run("", "conntrack", "-F"); err != nil {
			return log.String(), err
		}
		again, err := mapped()
		if err != nil {
			return log.String(), err
		}
		fmt.Fprintf(&log, "after conntrack -F alone: %v\n", again)
		if again != before {
			return log.String(), fmt.Errorf("after conntrack -F alone mapped to %v, want %v again (port preservation)", again, before)
		}
	}

	for i, want := range []struct{ lo, hi uint16 }{{10000, 19999}, {20000, 29999}} {
		if err := r.RebindPort(); err != nil {
			return log.String(), err
		}
		got, err := mapped()
		if err != nil {
			return log.String(), err
		}
		fmt.Fprintf(&log, "after RebindPort %d: %v\n", i+1, got)
		if got.Addr() != r.PublicAddr() || got.Port() < want.lo || got.Port() > want.hi {
			return log.String(), fmt.Errorf("after RebindPort %d mapped to %v, want %v port %d-%d", i+1, got, r.PublicAddr(), want.lo, want.hi)
		}
	}
	// Mapped ports now differ from local ones: the nft endpoint map must
	// translate them.
	d, retried, err := discoverAgreeing(h.NS, stun, func(d Discovery) error {
		if d.Filtering != r.Recipe.Filtering() {
			return fmt.Errorf("after RebindPort: filtering %s, want %s", d.Filtering, r.Recipe.Filtering())
		}
		return nil
	}, "-f")
	if retried != "" {
		fmt.Fprintln(&log, retried)
	}
	if err != nil {
		return log.String(), err
	}
	fmt.Fprintf(&log, "after RebindPort, turnutils_natdiscovery -f:\n%s\n", d.verdicts())

	old := r.PublicAddr()
	next, err := r.RebindAddr()
	if err != nil {
		return log.String(), err
	}
	got, err := mapped()
	if err != nil {
		return log.String(), err
	}
	fmt.Fprintf(&log, "after RebindAddr (%v -> %v): %v\n", old, next, got)
	if next == old || got.Addr() != next {
		return log.String(), fmt.Errorf("after RebindAddr from %v to %v mapped to %v", old, next, got)
	}
	return log.String(), nil
}
