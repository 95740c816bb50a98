package circuit

import "fmt"

// ringWords is the size of the window's bitmap in 64-bit words: one more
// than ReplayWindow needs, so the word being advanced into never holds
// bits still inside the window (RFC 6479).
const ringWords = ReplayWindow/64 + 1

// window is a sliding anti-replay window over 64-bit packet counters, as
// in RFC 6479: it accepts each counter at most once, and no counter
// ReplayWindow or more behind the highest accepted. The zero value
// accepts any counter, including 0.
type window struct {
	top  uint64 // highest counter accepted; meaningful once any is
	ring [ringWords]uint64
}

// check reports whether c may still be accepted, without recording it.
func (w *window) check(c uint64) error {
	if c > w.top {
		return nil
	}
	if w.top-c >= ReplayWindow {
		return fmt.Errorf("%w: counter %d is behind the window (highest %d)", ErrReplayedPacket, c, w.top)
	}
	if w.ring[(c/64)%ringWords]&(1<<(c%64)) != 0 {
		return fmt.Errorf("%w: counter %d already accepted", ErrReplayedPacket, c)
	}
	return nil
}

// accept records c as accepted, or fails as check would.
func (w *window) accept(c uint64) error {
	if err := w.check(c); err != nil {
		return err
	}
	if c > w.top {
		cur, next := w.top/64, c/64
		steps := next - cur
		if steps > ringWords {
			steps = ringWords
		}
		for i := uint64(1); i <= steps; i++ {
			w.ring[(cur+i)%ringWords] = 0
		}
		w.top = c
	}
	w.ring[(c/64)%ringWords] |= 1 << (c % 64)
	return nil
}
