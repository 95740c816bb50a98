package identity

import (
	"bytes"
	"crypto/ecdh"
	"testing"
)

func TestOnionKey(t *testing.T) {
	a, _ := KeyFromSeed(bytes.Repeat([]byte{1}, 32))
	a2, _ := KeyFromSeed(bytes.Repeat([]byte{1}, 32))
	b, _ := KeyFromSeed(bytes.Repeat([]byte{2}, 32))
	ka, kb := a.OnionKey(), b.OnionKey()
	if !ka.Equal(a2.OnionKey()) {
		t.Fatal("the onion key is not stable for one node key")
	}
	if ka.Equal(kb) {
		t.Fatal("two node keys gave one onion key")
	}
	if bytes.Equal(ka.PublicKey().Bytes(), a.ID().PublicKey()) {
		t.Fatal("the onion key is the signing key")
	}
	// It does X25519: both sides of a key agreement get one secret.
	s1, err := ka.ECDH(kb.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := kb.ECDH(ka.PublicKey())
	if !bytes.Equal(s1, s2) || ka.Curve() != ecdh.X25519() {
		t.Fatal("X25519 agreement failed")
	}
}
