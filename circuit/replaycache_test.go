package circuit

import (
	"fmt"
	"testing"
	"time"
)

// tagOf returns a distinct replay tag for i.
func tagOf(i int) [replayTagSize]byte {
	var t [replayTagSize]byte
	t[0], t[1] = byte(i), byte(i>>8)
	return t
}

// TestReplayCacheBound: a full cache refuses new tags until some expire,
// and never forgets an unexpired one.
func TestReplayCacheBound(t *testing.T) {
	c := NewReplayCache(3)
	for i := range 3 {
		if err := c.insert(tagOf(i), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	wantErr(t, c.insert(tagOf(3), t0.Add(3*time.Second)), ErrReplayCacheFull, "fourth tag")
	wantErr(t, c.insert(tagOf(0), t0.Add(3*time.Second)), ErrReplay, "repeat while full")
	if c.Len() != 3 {
		t.Fatalf("Len = %d, want 3", c.Len())
	}
	// Just before tag 0 expires: still full. At its expiry: room for one.
	exp0 := t0.Add(2 * SetupMaxAge)
	wantErr(t, c.insert(tagOf(3), exp0.Add(-time.Nanosecond)), ErrReplayCacheFull, "just before expiry")
	if err := c.insert(tagOf(3), exp0); err != nil {
		t.Fatalf("insert at tag 0's expiry: %v", err)
	}
	wantErr(t, c.insert(tagOf(4), exp0), ErrReplayCacheFull, "second insert at tag 0's expiry")
	// Tags 1 and 2 are still held.
	for i := 1; i <= 3; i++ {
		wantErr(t, c.insert(tagOf(i), exp0), ErrReplay, fmt.Sprintf("tag %d", i))
	}
}

// TestReplayCacheExpiry: a tag is refused until 2*SetupMaxAge after it
// was seen, then accepted again; expired tags are dropped.
func TestReplayCacheExpiry(t *testing.T) {
	c := NewReplayCache(100)
	for i := range 10 {
		if err := c.insert(tagOf(i), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, c.insert(tagOf(0), t0.Add(2*SetupMaxAge-time.Second)), ErrReplay, "tag 0 before expiry")
	if err := c.insert(tagOf(0), t0.Add(2*SetupMaxAge)); err != nil {
		t.Fatalf("tag 0 at expiry: %v", err)
	}
	// An hour on, every earlier tag has expired and is dropped.
	if err := c.insert(tagOf(50), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d after every other tag expired, want 1", c.Len())
	}
	if len(c.order) != 1 {
		t.Fatalf("expiry heap holds %d entries, want 1", len(c.order))
	}
}

// TestReplayCacheMinimum: a cache of max < 1 holds one tag.
func TestReplayCacheMinimum(t *testing.T) {
	c := NewReplayCache(0)
	if err := c.insert(tagOf(1), t0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.insert(tagOf(2), t0), ErrReplayCacheFull, "second tag")
}

// TestPeelCacheFull: Peel reports a full cache, and a forged onion never
// reaches the cache.
func TestPeelCacheFull(t *testing.T) {
	r := testRand(1800)
	nodes := makeNodes(t, r, 1)
	cache := NewReplayCache(2)
	bad := make([]byte, OnionSize)
	for range 5 {
		if _, err := r.Read(bad); err != nil {
			t.Fatal(err)
		}
		_, err := Peel(nodes[0].priv, bad, t0, cache)
		wantErr(t, err, ErrBadOnion, "random onion")
	}
	if cache.Len() != 0 {
		t.Fatalf("forged onions left %d tags", cache.Len())
	}
	for i := range 3 {
		onion, _, err := NewOnion(r, t0, pathOf(nodes))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Peel(nodes[0].priv, onion, t0, cache)
		if i < 2 && err != nil {
			t.Fatalf("onion %d: %v", i, err)
		}
		if i == 2 {
			wantErr(t, err, ErrReplayCacheFull, "third onion")
		}
	}
}
