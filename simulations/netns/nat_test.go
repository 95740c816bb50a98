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

// runConcurrently runs every check at once (turnutils_natdiscovery spends
// most of its time waiting out 3 s timeouts, so this does not depend on
// -parallel or the number of CPUs), then reports each as a subtest.
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
				d, err := discover(h.NS, stun, "-m", "-f")
				if err != nil {
					return "", err
				}
				log := fmt.Sprintf("turnutils_natdiscovery -m -f behind %s:\n%s", r, d.verdicts())
				if d.Mapping != r.Mapping() || d.Filtering != r.Filtering() {
					return log, fmt.Errorf("turnutils_natdiscovery found %v behind %s, whose rules promise mapping %s, filtering %s; its output:\n%s",
						d, r, r.Mapping(), r.Filtering(), d.Raw)
				}
				for _, ap := range d.Reflexive {
					if ap.Addr() != rt.PublicAddr() {
						return log, fmt.Errorf("reflexive address %v is not the router's %v; output:\n%s", ap, rt.PublicAddr(), d.Raw)
					}
				}
				return log, nil
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
		d, err := discover(fwdHost.NS, stun, "-f", "-L", fwdHost.Addr.String(), "-l", fmt.Sprint(port))
		if err != nil {
			return "", err
		}
		log := fmt.Sprintf("turnutils_natdiscovery -f from port %d, forwarded by DNAT:\n%s", port, d.verdicts())
		if d.Filtering != EndpointIndependent {
			return log, fmt.Errorf("turnutils_natdiscovery found filtering %s on a forwarded port, want %s; output:\n%s", d.Filtering, EndpointIndependent, d.Raw)
		}
		return log, nil
	}})

	// The control: a public host is behind no NAT at all.
	pub := tb.AddPublicHost("pub")
	checks = append(checks, check{"public_host", func() (string, error) {
		d, err := discover(pub.NS, stun, "-m", "-f", "-L", pub.Addr.String())
		if err != nil {
			return "", err
		}
		log := fmt.Sprintf("turnutils_natdiscovery -m -f on a public host:\n%s", d.verdicts())
		if !d.NoNAT || d.Filtering != EndpointIndependent {
			return log, fmt.Errorf("turnutils_natdiscovery on a public host: %v, no-NAT %v; want no NAT and endpoint-independent filtering; output:\n%s", d, d.NoNAT, d.Raw)
		}
		return log, nil
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
		d, err := discover(h.NS, stun, "-m", "-L", h.Addr.String(), "-l", fmt.Sprint(localPort))
		if err != nil {
			return netip.AddrPort{}, err
		}
		// Random ports drawn from a 10000-port range collide now and then,
		// which natdiscovery would call address-dependent; the mapping
		// verdict of MasqueradeRandomFully is TestRecipesAgreeWithNATDiscovery's.
		if len(d.Reflexive) == 0 || (r.Recipe != MasqueradeRandomFully && d.Mapping != r.Recipe.Mapping()) {
			return netip.AddrPort{}, fmt.Errorf("turnutils_natdiscovery -m from port %d: %v, reflexive %v; want mapping %s; output:\n%s", localPort, d, d.Reflexive, r.Recipe.Mapping(), d.Raw)
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
	d, err := discover(h.NS, stun, "-f")
	if err != nil {
		return log.String(), err
	}
	fmt.Fprintf(&log, "after RebindPort, turnutils_natdiscovery -f:\n%s\n", d.verdicts())
	if d.Filtering != r.Recipe.Filtering() {
		return log.String(), fmt.Errorf("after RebindPort turnutils_natdiscovery finds filtering %s, want %s; output:\n%s", d.Filtering, r.Recipe.Filtering(), d.Raw)
	}

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
