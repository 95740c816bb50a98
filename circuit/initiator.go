package circuit

import (
	"bytes"
	"fmt"
	"sync/atomic"
)

// Initiator is the circuit's sending end: it holds every relay's keys
// and the end-to-end keys, so it can add and remove all layers. It is
// safe for concurrent use.
type Initiator struct {
	relays    []*RelayKeys // in path order
	keys      endKeys
	state     endState
	confirmed atomic.Bool
}

// Hops returns the path length, relays plus the terminal.
func (c *Initiator) Hops() int { return len(c.relays) + 1 }

// Confirmed reports whether Confirm has accepted the terminal's
// confirmation.
func (c *Initiator) Confirmed() bool { return c.confirmed.Load() }

// Seal appends to dst a forward packet carrying payload: | nu (16) |
// body (len(payload)+16) |, ready to send to the first hop. It picks the
// next counter, seals payload for the terminal, then sets nu and adds
// every relay's keystream so that each relay's Forward removes its own.
// payload must not overlap dst's spare capacity.
func (c *Initiator) Seal(dst, payload []byte) ([]byte, error) {
	if c == nil || c.keys.fwd == nil {
		return dst, fmt.Errorf("%w: nil initiator", ErrBadArgument)
	}
	if len(payload) > MaxPayload {
		return dst, fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, len(payload))
	}
	ctr, err := c.state.nextCounter()
	if err != nil {
		return dst, err
	}
	out, pkt := grow(dst, Overhead+len(payload))
	body := sealBody(c.keys.fwd, ctr, pkt, payload)
	// nu as the terminal receives it, then as each relay receives it,
	// walking back from the terminal.
	nu := counterBlock(ctr)
	c.keys.fwdPRP.Decrypt(nu[:], nu[:])
	for i := len(c.relays) - 1; i >= 0; i-- {
		r := c.relays[i]
		r.pf.Decrypt(nu[:], nu[:])
		xorCTR(r.sf, nu[:12], body)
	}
	copy(pkt, nu[:])
	return out, nil
}

// Open authenticates and decrypts a backward packet as it arrives from
// the first hop. It decrypts in place: pkt is overwritten and the
// plaintext returned aliases it. A forged, truncated or mis-layered
// packet gives ErrBadPacket, a repeat or one too far behind the window
// ErrReplayedPacket; the setup confirmation is refused here (use
// Confirm).
func (c *Initiator) Open(pkt []byte) ([]byte, error) {
	ctr, body, err := c.unwrap(pkt)
	if err != nil {
		return nil, err
	}
	if ctr == 0 {
		return nil, fmt.Errorf("%w: setup confirmation, not data", ErrBadPacket)
	}
	return c.state.open(c.keys.bwd, ctr, body)
}

// Confirm checks the terminal's setup confirmation (Terminal.Created) as
// it arrives from the first hop, which proves every hop derived the keys
// the initiator did. It overwrites pkt. A second confirmation gives
// ErrReplayedPacket.
func (c *Initiator) Confirm(pkt []byte) error {
	ctr, body, err := c.unwrap(pkt)
	if err != nil {
		return err
	}
	if ctr != 0 {
		return fmt.Errorf("%w: data packet, not a setup confirmation", ErrBadPacket)
	}
	pt, err := c.state.open(c.keys.bwd, 0, body)
	if err != nil {
		return err
	}
	if !bytes.Equal(pt, createdMarker) {
		return fmt.Errorf("%w: confirmation has the wrong marker", ErrBadPacket)
	}
	c.confirmed.Store(true)
	return nil
}

// unwrap removes every relay's backward layer from pkt in place and
// returns the terminal's counter and the AEAD ciphertext.
func (c *Initiator) unwrap(pkt []byte) (uint64, []byte, error) {
	if c == nil || c.keys.bwd == nil {
		return 0, nil, fmt.Errorf("%w: nil initiator", ErrBadArgument)
	}
	if err := checkPacketSize(pkt); err != nil {
		return 0, nil, err
	}
	var nu [nuSize]byte
	copy(nu[:], pkt)
	body := pkt[nuSize:]
	// Relay 0 permuted last; undo its permutation to get the nu it
	// received, which keyed its stream, then go on toward the terminal.
	for _, r := range c.relays {
		r.pb.Decrypt(nu[:], nu[:])
		xorCTR(r.sb, nu[:12], body)
	}
	c.keys.bwdPRP.Decrypt(nu[:], nu[:])
	ctr, err := parseCounterBlock(&nu)
	if err != nil {
		return 0, nil, err
	}
	return ctr, body, nil
}
