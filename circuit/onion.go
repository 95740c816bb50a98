package circuit

import (
	"crypto/ecdh"
	"crypto/subtle"
	"fmt"
	"io"
	"time"
)

// NewOnion builds the setup onion for path and returns it (OnionSize
// bytes, to send to path[0]) with the Initiator holding the circuit's
// keys. For each hop it draws a fresh ephemeral X25519 key from rand;
// now is the creation time every hop checks against SetupMaxAge.
//
// The construction is Sphinx's (Danezis and Goldberg, 2009, section 3.2)
// with one ephemeral key per hop carried in the previous hop's block
// instead of a blinded group element. See the package documentation.
func NewOnion(rand io.Reader, now time.Time, path []Hop) ([]byte, *Initiator, error) {
	n := len(path)
	if n < 1 || n > MaxHops {
		return nil, nil, fmt.Errorf("%w: %d hops, want 1 to %d", ErrBadPath, n, MaxHops)
	}
	if rand == nil {
		return nil, nil, fmt.Errorf("%w: nil random source", ErrBadArgument)
	}
	eph := make([][keySize]byte, n)
	secrets := make([]hopSecret, n)
	streams := make([][]byte, n)
	for i, h := range path {
		if h.OnionKey == nil || h.OnionKey.Curve() != ecdh.X25519() {
			return nil, nil, fmt.Errorf("%w: hop %d has no X25519 onion key", ErrBadPath, i)
		}
		hs, pub, err := initiatorSecret(rand, h.OnionKey)
		if err != nil {
			return nil, nil, fmt.Errorf("hop %d: %w", i, err)
		}
		eph[i], secrets[i] = pub, hs
		streams[i] = make([]byte, betaSize+BlockSize)
		if err := xorStream(&hs.rho, zeroNonce[:], streams[i]); err != nil {
			return nil, nil, err
		}
	}

	// The filler: what the hops before the terminal shift into the tail
	// of its beta. phi_0 is empty; phi_{i+1} = (phi_i || 0^B) XOR
	// S_i[L - i*B : L + B], where S_i is hop i's header stream and L the
	// length of beta.
	filler := make([]byte, 0, (n-1)*BlockSize)
	for i := range n - 1 {
		filler = append(filler, make([]byte, BlockSize)...)
		xorBytes(filler, streams[i][betaSize-i*BlockSize:])
	}

	created := uint64(max(now.Unix(), 0))

	// The terminal's beta: its block and random padding, encrypted with
	// its stream, followed by the filler.
	beta := make([]byte, betaSize)
	head := betaSize - len(filler)
	term := block{typ: typeTerminal, created: created}
	term.put(beta)
	if _, err := io.ReadFull(rand, beta[BlockSize:head]); err != nil {
		return nil, nil, fmt.Errorf("%w: random padding: %v", ErrCrypto, err)
	}
	xorBytes(beta[:head], streams[n-1])
	copy(beta[head:], filler)
	mac := onionMAC(&secrets[n-1].mu, beta)

	// Wrap outward: hop i's beta is its block followed by the first
	// L - B bytes of hop i+1's, encrypted with hop i's stream.
	for i := n - 2; i >= 0; i-- {
		b := block{typ: typeRelay, next: path[i+1].ID, eph: eph[i+1], mac: mac, created: created}
		next := beta
		beta = make([]byte, betaSize)
		b.put(beta)
		copy(beta[BlockSize:], next[:betaSize-BlockSize])
		xorBytes(beta, streams[i])
		mac = onionMAC(&secrets[i].mu, beta)
	}

	onion := make([]byte, 0, OnionSize)
	onion = append(onion, eph[0][:]...)
	onion = append(onion, mac[:]...)
	onion = append(onion, beta...)

	c, err := newInitiator(secrets)
	if err != nil {
		return nil, nil, err
	}
	return onion, c, nil
}

// initiatorSecret draws an ephemeral key from rand, agrees a secret with
// the hop's onion key and derives the hop's secrets. It returns them with
// the ephemeral public key.
func initiatorSecret(rand io.Reader, hop *ecdh.PublicKey) (hopSecret, [keySize]byte, error) {
	var pub [keySize]byte
	var seed [keySize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return hopSecret{}, pub, fmt.Errorf("%w: ephemeral key: %v", ErrCrypto, err)
	}
	// NewPrivateKey, not GenerateKey: since Go 1.26 GenerateKey ignores
	// its reader, and the caller's rand must be the only source.
	e, err := ecdh.X25519().NewPrivateKey(seed[:])
	if err != nil {
		return hopSecret{}, pub, fmt.Errorf("%w: ephemeral key: %v", ErrCrypto, err)
	}
	shared, err := e.ECDH(hop)
	if err != nil {
		return hopSecret{}, pub, fmt.Errorf("%w: onion key: %v", ErrBadPath, err)
	}
	copy(pub[:], e.PublicKey().Bytes())
	hs, err := deriveHop(shared, pub[:], hop.Bytes())
	return hs, pub, err
}

// newInitiator derives the relays' and the terminal's data keys.
func newInitiator(secrets []hopSecret) (*Initiator, error) {
	n := len(secrets)
	c := &Initiator{relays: make([]*RelayKeys, n-1)}
	for i := range n - 1 {
		k, err := newRelayKeys(secrets[i].prk)
		if err != nil {
			return nil, err
		}
		c.relays[i] = k
	}
	keys, err := newEndKeys(secrets[n-1].prk)
	if err != nil {
		return nil, err
	}
	c.keys = keys
	return c, nil
}

// xorBytes sets dst[i] ^= src[i] for every i < len(dst); src must be at
// least as long.
func xorBytes(dst, src []byte) {
	subtle.XORBytes(dst, dst, src[:len(dst)])
}
