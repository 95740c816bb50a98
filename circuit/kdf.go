package circuit

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/chacha20"
)

// infoPrefix starts every HKDF info string; the label after it names the
// key.
const infoPrefix = "mycelium circuit v1 "

// hopSecret is what the initiator and one hop both derive from their
// X25519 shared secret s: the header keys, the replay tag, and the HKDF
// pseudorandom key the data keys are expanded from.
type hopSecret struct {
	prk []byte              // HKDF-Extract(salt = E || H, s)
	rho [keySize]byte       // ChaCha20 key for the routing blocks
	mu  [keySize]byte       // HMAC-SHA256 key for the onion MAC
	tag [replayTagSize]byte // SHA-256(s || "replay")[:16]
}

const replayTagSize = 16

// deriveHop derives a hopSecret from the shared secret, the ephemeral
// public key and the hop's onion public key.
func deriveHop(shared, ephPub, hopPub []byte) (hopSecret, error) {
	var h hopSecret
	salt := make([]byte, 0, 2*keySize)
	salt = append(salt, ephPub...)
	salt = append(salt, hopPub...)
	prk, err := hkdf.Extract(sha256.New, shared, salt)
	if err != nil {
		return h, fmt.Errorf("%w: hkdf extract: %v", ErrCrypto, err)
	}
	h.prk = prk
	if err := expand(prk, "header stream", h.rho[:]); err != nil {
		return h, err
	}
	if err := expand(prk, "header mac", h.mu[:]); err != nil {
		return h, err
	}
	d := sha256.New()
	d.Write(shared)
	d.Write([]byte("replay"))
	copy(h.tag[:], d.Sum(nil))
	return h, nil
}

// expand fills out with HKDF-Expand(prk, infoPrefix + label).
func expand(prk []byte, label string, out []byte) error {
	k, err := hkdf.Expand(sha256.New, prk, infoPrefix+label, len(out))
	if err != nil {
		return fmt.Errorf("%w: hkdf expand %q: %v", ErrCrypto, label, err)
	}
	copy(out, k)
	return nil
}

// onionMAC returns the first macSize bytes of HMAC-SHA256(mu, beta).
func onionMAC(mu *[keySize]byte, beta []byte) [macSize]byte {
	m := hmac.New(sha256.New, mu[:])
	m.Write(beta)
	var out [macSize]byte
	copy(out[:], m.Sum(nil))
	return out
}

// xorStream XORs buf in place with the ChaCha20 keystream for key and the
// 12-byte nonce, starting at block counter 0.
func xorStream(key *[keySize]byte, nonce []byte, buf []byte) error {
	c, err := chacha20.NewUnauthenticatedCipher(key[:], nonce)
	if err != nil {
		return fmt.Errorf("%w: chacha20: %v", ErrCrypto, err)
	}
	c.XORKeyStream(buf, buf)
	return nil
}

// xorCTR XORs body in place with the AES-256-CTR keystream of block,
// starting from the counter block | nonce (12) | 0 (4) |. A data packet's
// body is at most maxPkt bytes, so the 32-bit block counter never wraps
// into the nonce. The data layer uses AES because crypto/aes runs on
// AES-NI, where x/crypto's plain ChaCha20 has no amd64 assembly and cost
// a fifth of a relay's CPU.
func xorCTR(block cipher.Block, nonce []byte, body []byte) {
	var iv [aes.BlockSize]byte
	copy(iv[:12], nonce)
	cipher.NewCTR(block, iv[:]).XORKeyStream(body, body)
}

// zeroNonce is the ChaCha20 nonce of the header stream; each rho is used
// for one onion only.
var zeroNonce [chacha20.NonceSize]byte
