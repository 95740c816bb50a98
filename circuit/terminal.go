package circuit

import "fmt"

// Terminal is the circuit's target end. It holds only the end-to-end
// keys and applies its own header permutation, so the last relay sees
// the same random-looking headers as every other. It is safe for
// concurrent use.
type Terminal struct {
	keys  endKeys
	state endState
}

// Seal appends to dst a backward packet carrying payload, ready to send
// to the previous hop: the AEAD ciphertext under the next counter, with
// nu = AES(terminal's backward PRP key, counter block). payload must not
// overlap dst's spare capacity.
func (t *Terminal) Seal(dst, payload []byte) ([]byte, error) {
	if t == nil || t.keys.bwd == nil {
		return dst, fmt.Errorf("%w: nil terminal", ErrBadArgument)
	}
	if len(payload) > MaxPayload {
		return dst, fmt.Errorf("%w: %d bytes", ErrPayloadTooLarge, len(payload))
	}
	ctr, err := t.state.nextCounter()
	if err != nil {
		return dst, err
	}
	return t.seal(dst, ctr, payload), nil
}

// Created returns the setup confirmation: a backward packet with the
// reserved counter 0 carrying a fixed marker. The relays pass it back
// with Backward like any other packet and the initiator checks it with
// Confirm. Each call returns the same bytes, so it may be resent.
func (t *Terminal) Created() []byte {
	if t == nil || t.keys.bwd == nil {
		return nil
	}
	return t.seal(nil, 0, createdMarker)
}

// seal appends the backward packet for payload under counter ctr.
func (t *Terminal) seal(dst []byte, ctr uint64, payload []byte) []byte {
	out, pkt := grow(dst, Overhead+len(payload))
	sealBody(t.keys.bwd, ctr, pkt, payload)
	nu := counterBlock(ctr)
	t.keys.bwdPRP.Encrypt(pkt[:nuSize], nu[:])
	return out
}

// Open authenticates and decrypts a forward packet as it arrives from
// the previous hop. It decrypts in place: the plaintext returned aliases
// pkt. A forged, truncated or mis-layered packet gives ErrBadPacket, a
// repeat or one too far behind the window ErrReplayedPacket.
func (t *Terminal) Open(pkt []byte) ([]byte, error) {
	if t == nil || t.keys.fwd == nil {
		return nil, fmt.Errorf("%w: nil terminal", ErrBadArgument)
	}
	if err := checkPacketSize(pkt); err != nil {
		return nil, err
	}
	var cb [nuSize]byte
	t.keys.fwdPRP.Encrypt(cb[:], pkt[:nuSize])
	ctr, err := parseCounterBlock(&cb)
	if err != nil {
		return nil, err
	}
	if ctr == 0 {
		return nil, fmt.Errorf("%w: counter 0 is not a data packet", ErrBadPacket)
	}
	return t.state.open(t.keys.fwd, ctr, pkt[nuSize:])
}
