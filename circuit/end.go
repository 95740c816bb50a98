package circuit

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"
)

// The end-to-end layer. Each end (initiator, terminal) seals with one
// ChaCha20-Poly1305 key and opens with the other. A packet's counter
// lives in its "counter block", the 16 bytes | counter (8, big-endian) |
// 8 zero bytes |, which is nu as the terminal sees it after applying its
// own header permutation. The AEAD nonce is the first 12 bytes of the
// counter block (counter || 4 zero bytes); the additional data is empty.
// Counter 0 of the backward direction is the setup confirmation
// (Terminal.Created); data packets use counters from 1 in both
// directions.

// createdMarker is the plaintext of the setup confirmation.
var createdMarker = []byte("mycelium circuit v1 created")

// endKeys are the terminal hop's data keys, held by both ends.
type endKeys struct {
	fwd, bwd       cipher.AEAD  // initiator -> terminal, terminal -> initiator
	fwdPRP, bwdPRP cipher.Block // the terminal's header permutations
}

// newEndKeys expands the end-to-end keys from the terminal hop's HKDF
// pseudorandom key.
func newEndKeys(prk []byte) (endKeys, error) {
	var k endKeys
	var fa, ba, fp, bp [keySize]byte
	for _, e := range []struct {
		label string
		out   []byte
	}{
		{"end fwd aead", fa[:]},
		{"end bwd aead", ba[:]},
		{"end fwd prp", fp[:]},
		{"end bwd prp", bp[:]},
	} {
		if err := expand(prk, e.label, e.out); err != nil {
			return k, err
		}
	}
	var err error
	if k.fwd, err = chacha20poly1305.New(fa[:]); err != nil {
		return k, fmt.Errorf("%w: chacha20poly1305: %v", ErrCrypto, err)
	}
	if k.bwd, err = chacha20poly1305.New(ba[:]); err != nil {
		return k, fmt.Errorf("%w: chacha20poly1305: %v", ErrCrypto, err)
	}
	if k.fwdPRP, err = newPRP(fp[:]); err != nil {
		return k, err
	}
	if k.bwdPRP, err = newPRP(bp[:]); err != nil {
		return k, err
	}
	return k, nil
}

// endState is one end's sending counter and receiving replay window. It
// is safe for concurrent use.
type endState struct {
	sent atomic.Uint64 // the last counter sealed
	mu   sync.Mutex
	win  window
}

// maxCounter is the last counter an end seals.
const maxCounter = math.MaxUint64 - 1

// nextCounter returns the next unused sending counter, from 1.
func (e *endState) nextCounter() (uint64, error) {
	for {
		c := e.sent.Load()
		if c >= maxCounter {
			return 0, ErrExhausted
		}
		if e.sent.CompareAndSwap(c, c+1) {
			return c + 1, nil
		}
	}
}

// open authenticates and decrypts body in place with counter c, which
// must not have been accepted before: it checks the window first, opens,
// and only then records c, so forged packets cannot move the window.
func (e *endState) open(aead cipher.AEAD, c uint64, body []byte) ([]byte, error) {
	e.mu.Lock()
	err := e.win.check(c)
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var nonce [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(nonce[:8], c)
	pt, err := aead.Open(body[:0], nonce[:], body, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrBadPacket)
	}
	e.mu.Lock()
	err = e.win.accept(c)
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return pt, nil
}

// counterBlock returns | c (8, big-endian) | 8 zero bytes |.
func counterBlock(c uint64) [nuSize]byte {
	var b [nuSize]byte
	binary.BigEndian.PutUint64(b[:8], c)
	return b
}

// parseCounterBlock returns the counter of a counter block, or
// ErrBadPacket if its last 8 bytes are not zero (a wrong key, a missing
// or extra layer, or a tampered header).
func parseCounterBlock(b *[nuSize]byte) (uint64, error) {
	if binary.BigEndian.Uint64(b[8:]) != 0 {
		return 0, fmt.Errorf("%w: header does not decode", ErrBadPacket)
	}
	return binary.BigEndian.Uint64(b[:8]), nil
}

// sealBody writes into pkt (len Overhead+len(payload)) the AEAD
// ciphertext of payload under counter c, after the header. The
// caller fills nu.
func sealBody(aead cipher.AEAD, c uint64, pkt, payload []byte) []byte {
	cb := counterBlock(c)
	return aead.Seal(pkt[nuSize:nuSize], cb[:chacha20poly1305.NonceSize], payload, nil)
}

// grow returns dst extended by n bytes, and those n bytes.
func grow(dst []byte, n int) (whole, tail []byte) {
	total := len(dst) + n
	if cap(dst) >= total {
		whole = dst[:total]
	} else {
		whole = make([]byte, total)
		copy(whole, dst)
	}
	return whole, whole[len(dst):]
}
