package circuit

import (
	"fmt"
	"testing"
)

// TestWindow exercises the sliding window directly: in order, repeats,
// reordering, the exact edge, and jumps larger than the ring.
func TestWindow(t *testing.T) {
	var w window
	accept := func(c uint64) {
		t.Helper()
		if err := w.accept(c); err != nil {
			t.Fatalf("accept(%d): %v", c, err)
		}
	}
	refuse := func(c uint64) {
		t.Helper()
		if err := w.check(c); err == nil {
			t.Fatalf("check(%d) passed", c)
		}
		wantErr(t, w.accept(c), ErrReplayedPacket, fmt.Sprintf("accept(%d)", c))
	}
	accept(0)
	refuse(0)
	for c := uint64(1); c <= 100; c++ {
		accept(c)
	}
	refuse(50)
	accept(300)
	for c := uint64(299); c > 100; c-- {
		accept(c)
	}
	refuse(200)

	// Top 5000: 5000-2047 is the oldest accepted counter.
	accept(5000)
	accept(5000 - ReplayWindow + 1)
	refuse(5000 - ReplayWindow)
	refuse(300)
	// Bits from before the slide must not linger in reused words.
	for c := uint64(5000 - ReplayWindow + 2); c < 5000; c += 61 {
		accept(c)
	}

	// A jump of far more than the ring clears it all.
	accept(1 << 40)
	for c := uint64(1<<40 - ReplayWindow + 1); c < 1<<40; c += 7 {
		accept(c)
	}
	refuse(1<<40 - ReplayWindow)
	refuse(1 << 40)
	accept(maxCounter)
	refuse(maxCounter)
}

// TestWindowEveryOffset: after every top, each counter in the window is
// accepted exactly once, and none behind it.
func TestWindowEveryOffset(t *testing.T) {
	for _, top := range []uint64{ReplayWindow - 1, ReplayWindow, 3*ReplayWindow + 17} {
		var w window
		if err := w.accept(top); err != nil {
			t.Fatal(err)
		}
		for c := top - 1; c+ReplayWindow > top; c-- {
			if err := w.accept(c); err != nil {
				t.Fatalf("top %d: accept(%d): %v", top, c, err)
			}
			if err := w.check(c); err == nil {
				t.Fatalf("top %d: %d accepted twice", top, c)
			}
			if c == 0 {
				break
			}
		}
		if top >= ReplayWindow {
			wantErr(t, w.check(top-ReplayWindow), ErrReplayedPacket, fmt.Sprintf("top %d, just behind", top))
		}
	}
}
