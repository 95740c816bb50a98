package identity

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
)

// onionKeyInfo separates the onion key's derivation from any other use of
// the node key's seed.
const onionKeyInfo = "mycelium onion key v1"

// OnionKey returns the node's X25519 key pair for circuits (published in
// its registry record). It is derived from the Ed25519 seed with HKDF-SHA256
// under its own label, so it is stable across restarts without a second
// key file, and learning it reveals nothing about the signing key.
func (k *Key) OnionKey() *ecdh.PrivateKey {
	secret, err := hkdf.Key(sha256.New, k.priv.Seed(), nil, onionKeyInfo, 32)
	if err != nil {
		panic("identity: hkdf: " + err.Error()) // only for lengths HKDF cannot give
	}
	priv, err := ecdh.X25519().NewPrivateKey(secret)
	if err != nil {
		panic("identity: X25519 key: " + err.Error()) // any 32 bytes are a key
	}
	return priv
}
