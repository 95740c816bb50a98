package circuit

import (
	"crypto/ecdh"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"
)

// PeelResult is what a hop learns from its layer of a setup onion.
type PeelResult struct {
	// Terminal reports that the circuit ends at this hop.
	Terminal bool
	// Next is the hop to forward to; zero when Terminal.
	Next NodeID
	// Forward is the onion to send to Next (OnionSize bytes); nil when
	// Terminal.
	Forward []byte
	// Relay holds this relay's data keys; nil when Terminal.
	Relay *RelayKeys
	// Term holds the terminal's end of the circuit; nil unless Terminal.
	Term *Terminal
}

// Peel removes this hop's layer from a setup onion, using the hop's
// onion private key priv. In order it checks the MAC (ErrBadOnion),
// decrypts and parses the hop's routing block (ErrBadOnion), checks that
// the onion was created within SetupMaxAge of now (ErrExpired), and
// records its replay tag in replay (ErrReplay, ErrReplayCacheFull). Only
// then does it derive the hop's data keys. Peel does not modify onion.
func Peel(priv *ecdh.PrivateKey, onion []byte, now time.Time, replay *ReplayCache) (PeelResult, error) {
	if priv == nil || priv.Curve() != ecdh.X25519() {
		return PeelResult{}, fmt.Errorf("%w: need an X25519 private key", ErrBadArgument)
	}
	if replay == nil {
		return PeelResult{}, fmt.Errorf("%w: nil replay cache", ErrBadArgument)
	}
	if len(onion) != OnionSize {
		return PeelResult{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadOnion, len(onion), OnionSize)
	}
	ephBytes, mac, beta := onion[:keySize], onion[keySize:keySize+macSize], onion[keySize+macSize:]

	eph, err := ecdh.X25519().NewPublicKey(ephBytes)
	if err != nil {
		return PeelResult{}, fmt.Errorf("%w: ephemeral key: %v", ErrBadOnion, err)
	}
	shared, err := priv.ECDH(eph)
	if err != nil {
		return PeelResult{}, fmt.Errorf("%w: ephemeral key: %v", ErrBadOnion, err)
	}
	hs, err := deriveHop(shared, ephBytes, priv.PublicKey().Bytes())
	if err != nil {
		return PeelResult{}, err
	}
	want := onionMAC(&hs.mu, beta)
	if !hmac.Equal(want[:], mac) {
		return PeelResult{}, fmt.Errorf("%w: MAC does not verify", ErrBadOnion)
	}

	// gamma = (beta || 0^B) XOR S: our block, then the next hop's beta.
	gamma := make([]byte, betaSize+BlockSize)
	copy(gamma, beta)
	if err := xorStream(&hs.rho, zeroNonce[:], gamma); err != nil {
		return PeelResult{}, err
	}
	b, err := parseBlock(gamma[:BlockSize])
	if err != nil {
		return PeelResult{}, err
	}
	if err := checkCreated(b.created, now); err != nil {
		return PeelResult{}, err
	}
	if err := replay.insert(hs.tag, now); err != nil {
		if errors.Is(err, ErrReplay) {
			return PeelResult{}, fmt.Errorf("%w: tag already seen", ErrReplay)
		}
		return PeelResult{}, err
	}

	if b.typ == typeTerminal {
		keys, err := newEndKeys(hs.prk)
		if err != nil {
			return PeelResult{}, err
		}
		return PeelResult{Terminal: true, Term: &Terminal{keys: keys}}, nil
	}
	rk, err := newRelayKeys(hs.prk)
	if err != nil {
		return PeelResult{}, err
	}
	fwd := make([]byte, 0, OnionSize)
	fwd = append(fwd, b.eph[:]...)
	fwd = append(fwd, b.mac[:]...)
	fwd = append(fwd, gamma[BlockSize:]...)
	return PeelResult{Next: b.next, Forward: fwd, Relay: rk}, nil
}

// checkCreated fails with ErrExpired unless the creation time (Unix
// seconds) is within SetupMaxAge of now, either way. Times before 1970
// count as 0, as in NewOnion.
func checkCreated(created uint64, now time.Time) error {
	n := uint64(max(now.Unix(), 0))
	skew := n - created
	if created > n {
		skew = created - n
	}
	if skew > uint64(SetupMaxAge/time.Second) {
		return fmt.Errorf("%w: created %d, now %d", ErrExpired, created, n)
	}
	return nil
}
