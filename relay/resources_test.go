package relay

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultResourcesValid(t *testing.T) {
	if err := DefaultResources().Validate(); err != nil {
		t.Fatal(err)
	}
	d := DefaultResources()
	if d.MaxCircuits != 4096 || d.MaxCircuitsPerPeer != 64 || d.BytesPerSecond != 4<<20 || d.Burst != 256<<10 ||
		d.IdleTimeout != 2*time.Minute || d.MaxMemory != 64<<20 || d.Allow != nil || d.DrainTimeout != 30*time.Second {
		t.Fatalf("defaults changed: %+v", d)
	}
	// The defaults' memory bound admits every circuit MaxCircuits allows.
	if int64(d.MaxCircuits)*relayCost > d.MaxMemory {
		t.Fatalf("%d circuits of %d bytes exceed MaxMemory", d.MaxCircuits, relayCost)
	}
}

func TestResourcesValidate(t *testing.T) {
	for field, change := range map[string]func(*Resources){
		"MaxCircuits":        func(r *Resources) { r.MaxCircuits = 0 },
		"MaxCircuitsPerPeer": func(r *Resources) { r.MaxCircuitsPerPeer = r.MaxCircuits + 1 },
		"BytesPerSecond":     func(r *Resources) { r.BytesPerSecond = -1 },
		"Burst":              func(r *Resources) { r.Burst = 1000 },
		"IdleTimeout":        func(r *Resources) { r.IdleTimeout = 0 },
		"MaxMemory":          func(r *Resources) { r.MaxMemory = relayCost - 1 },
		"DrainTimeout":       func(r *Resources) { r.DrainTimeout = -time.Second },
		"Allow[1]":           func(r *Resources) { r.Allow = []NodeID{node(1), {}} },
	} {
		r := DefaultResources()
		change(&r)
		err := r.Validate()
		if !errors.Is(err, ErrBadResources) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
		if tab, err := NewTable(r); tab != nil || !errors.Is(err, ErrBadResources) {
			t.Errorf("NewTable with a bad %s: %v", field, err)
		}
	}
	r := DefaultResources()
	r.BytesPerSecond = 1 << 30
	r.Burst = 1 << 30
	r.DrainTimeout = 0
	if err := r.Validate(); err != nil {
		t.Fatalf("largest burst, zero drain: %v", err)
	}
	r.Burst = 1<<30 + 1
	if err := r.Validate(); !errors.Is(err, ErrBadResources) {
		t.Fatalf("burst over 1 GiB: %v", err)
	}
}

// TestLargestRates checks the token arithmetic at the bounds Validate
// allows: no overflow after any pause.
func TestLargestRates(t *testing.T) {
	r := DefaultResources()
	r.BytesPerSecond, r.Burst = 1<<40, 1<<30
	tab := newTestTable(t, r, 50)
	c := mustOpen(t, tab, t0, node(1), 1, node(2))
	for _, d := range []time.Duration{0, time.Millisecond, time.Hour, 1 << 62} {
		if !c.AllowForward(t0.Add(d), 1<<30) {
			t.Fatalf("full burst refused after %v", d)
		}
	}
	later := t0.Add(1<<62 + 1)
	if !c.AllowForward(later, 1099) || c.AllowForward(later, 1) {
		t.Fatal("1 ns at 1 TiB/s should refill 1099.5 bytes")
	}
	r.BytesPerSecond, r.Burst = 1, 1<<30
	tab = newTestTable(t, r, 51)
	c = mustOpen(t, tab, t0, node(1), 1, node(2))
	if !c.AllowForward(t0, 1<<30) || c.AllowForward(t0.Add(time.Second), 2) || !c.AllowForward(t0.Add(2*time.Second), 2) {
		t.Fatal("1 byte/s with a 1 GiB burst")
	}
}
