package circuit

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
)

// RelayKeys are one relay's data-layer keys for one circuit: an AES-256
// stream key and an AES-256 permutation for each direction. A relay gets them
// from Peel and keeps them for the circuit's lifetime. They hold no
// state, so one RelayKeys may be used from several goroutines.
type RelayKeys struct {
	sf, sb cipher.Block // body stream keys (AES-256-CTR), forward and backward
	pf, pb cipher.Block // header permutations, forward and backward
}

// newRelayKeys expands a relay's data keys from its hop's HKDF
// pseudorandom key.
func newRelayKeys(prk []byte) (*RelayKeys, error) {
	k := &RelayKeys{}
	var sf, sb, pf, pb [keySize]byte
	for _, e := range []struct {
		label string
		out   []byte
	}{
		{"relay fwd stream", sf[:]},
		{"relay bwd stream", sb[:]},
		{"relay fwd prp", pf[:]},
		{"relay bwd prp", pb[:]},
	} {
		if err := expand(prk, e.label, e.out); err != nil {
			return nil, err
		}
	}
	var err error
	if k.sf, err = newPRP(sf[:]); err != nil {
		return nil, err
	}
	if k.sb, err = newPRP(sb[:]); err != nil {
		return nil, err
	}
	if k.pf, err = newPRP(pf[:]); err != nil {
		return nil, err
	}
	if k.pb, err = newPRP(pb[:]); err != nil {
		return nil, err
	}
	return k, nil
}

// newPRP returns AES-256 keyed with key, used as a permutation of the
// 16-byte header or as a CTR stream key.
func newPRP(key []byte) (cipher.Block, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: aes: %v", ErrCrypto, err)
	}
	return b, nil
}

// Forward applies this relay's layer to a packet going from the initiator
// to the target, in place: body ^= AES-256-CTR(sf, nu[:12] || 0^32), then nu = AES(pf, nu). It neither checks nor learns anything
// about the payload. A packet shorter than Overhead or longer than
// Overhead+MaxPayload is refused with ErrBadPacket and left unchanged.
func (k *RelayKeys) Forward(pkt []byte) error {
	if k == nil || k.pf == nil {
		return fmt.Errorf("%w: nil relay keys", ErrBadArgument)
	}
	return relayLayer(k.sf, k.pf, pkt)
}

// Backward applies this relay's layer to a packet going from the target
// to the initiator, in place: body ^= AES-256-CTR(sb, nu[:12] ||
// 0^32), then nu = AES(pb, nu). Sizes are checked as in Forward.
func (k *RelayKeys) Backward(pkt []byte) error {
	if k == nil || k.pb == nil {
		return fmt.Errorf("%w: nil relay keys", ErrBadArgument)
	}
	return relayLayer(k.sb, k.pb, pkt)
}

// relayLayer XORs the body with the stream for the incoming nu,
// then permutes nu with prp.
func relayLayer(stream, prp cipher.Block, pkt []byte) error {
	if err := checkPacketSize(pkt); err != nil {
		return err
	}
	nu := pkt[:nuSize]
	xorCTR(stream, nu[:12], pkt[nuSize:])
	prp.Encrypt(nu, nu)
	return nil
}

// checkPacketSize refuses a data packet outside [Overhead,
// Overhead+MaxPayload] bytes.
func checkPacketSize(pkt []byte) error {
	if len(pkt) < Overhead || len(pkt) > maxPkt {
		return fmt.Errorf("%w: %d bytes, want %d to %d", ErrBadPacket, len(pkt), Overhead, maxPkt)
	}
	return nil
}
