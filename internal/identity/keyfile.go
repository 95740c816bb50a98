package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Key file format: one PEM block of type "PRIVATE KEY" holding a PKCS #8
// Ed25519 private key (RFC 8410), the form `openssl genpkey -algorithm
// ed25519` writes, so standard tools can read it:
//
//	openssl pkey -in node.key -pubout
//
// The file must be mode 0600 or stricter; anything else is refused, as ssh
// refuses a readable private key.

// MaxKeyFileSize bounds how much of a key file is read. A PKCS #8 Ed25519
// PEM file is 119 bytes; 4 KiB leaves room for comments and CRLFs.
const MaxKeyFileSize = 4096

const pemType = "PRIVATE KEY"

// Errors returned for key files. Each message names the file.
var (
	ErrKeyExists      = errors.New("identity: key file already exists")
	ErrKeyPermissions = errors.New("identity: key file permissions too open")
	ErrKeyFormat      = errors.New("identity: key file is not a mycelium key")
)

// Key is a node's long-term private key.
type Key struct {
	priv ed25519.PrivateKey
	id   NodeID
}

// NewKey returns a fresh key from r (crypto/rand when r is nil).
func NewKey(r io.Reader) (*Key, error) {
	if r == nil {
		r = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	return KeyFromPrivate(priv), nil
}

// KeyFromSeed derives a key from a 32-byte seed. Tests and simulations use it
// for reproducible identities.
func KeyFromSeed(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("identity: seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return KeyFromPrivate(ed25519.NewKeyFromSeed(seed)), nil
}

// KeyFromPrivate wraps an Ed25519 private key. The key is rebuilt from its
// seed, so the ID is always the public key the seed derives: the second half
// of priv, which ed25519.PrivateKey merely caches, is not trusted. (A crafted
// priv whose second half is a small-order point would otherwise yield an ID
// that anyone can forge signatures for, and signatures that do not verify.)
// priv is not retained.
func KeyFromPrivate(priv ed25519.PrivateKey) *Key {
	k := &Key{priv: ed25519.NewKeyFromSeed(priv.Seed())}
	copy(k.id[:], k.priv.Public().(ed25519.PublicKey))
	return k
}

// ID returns the node ID of the key.
func (k *Key) ID() NodeID { return k.id }

// Private returns the Ed25519 private key.
func (k *Key) Private() ed25519.PrivateKey { return k.priv }

// MarshalPEM returns the key file contents.
func (k *Key) MarshalPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		// Only fails for key types x509 does not know; Ed25519 is known.
		panic(fmt.Sprintf("identity: marshal ed25519 key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})
}

// ParseKey decodes key file contents. It never panics on any input.
func ParseKey(b []byte) (*Key, error) {
	if len(b) > MaxKeyFileSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrKeyFormat, len(b), MaxKeyFileSize)
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrKeyFormat)
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("%w: PEM block is %q, want %q", ErrKeyFormat, block.Type, pemType)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the PEM block", ErrKeyFormat)
	}
	var outer asn1.RawValue
	if rest, err := asn1.Unmarshal(block.Bytes, &outer); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: not one DER value", ErrKeyFormat)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFormat, err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: key is %T, want Ed25519", ErrKeyFormat, parsed)
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: wrong key size %d", ErrKeyFormat, len(priv))
	}
	k := KeyFromPrivate(priv)
	// Unreachable while KeyFromPrivate derives the public key from the seed
	// (a clamped scalar times the base point never has small order), but
	// a key file must never yield an ID that IDFromPublicKey refuses.
	if _, err := IDFromPublicKey(k.id[:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFormat, err)
	}
	return k, nil
}

// LoadKeyFile reads a key file, refusing one whose permissions let anyone
// but the owner read it, one of the wrong size, or one that does not parse.
func LoadKeyFile(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKeyFormat, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 (run: chmod 600 %s)", ErrKeyPermissions, path, perm, path)
	}
	if st.Size() > MaxKeyFileSize {
		return nil, fmt.Errorf("%w: %s has %d bytes, at most %d", ErrKeyFormat, path, st.Size(), MaxKeyFileSize)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("identity: read %s: %w", path, err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// WriteKeyFile writes k to path with mode 0600, creating parent folders with
// mode 0700. It never overwrites: an existing file gives ErrKeyExists.
func WriteKeyFile(path string, k *Key) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s (refusing to overwrite)", ErrKeyExists, path)
	}
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if _, err := f.Write(k.MarshalPEM()); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("identity: write %s: %w", path, err)
	}
	return nil
}

// LoadOrCreateKeyFile loads the key at path, or creates a new one there if
// no file exists. A file that exists but is bad is refused, never replaced.
func LoadOrCreateKeyFile(path string) (k *Key, created bool, err error) {
	k, err = LoadKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	k, err = NewKey(nil)
	if err != nil {
		return nil, false, err
	}
	if err := WriteKeyFile(path, k); err != nil {
		if errors.Is(err, ErrKeyExists) { // lost a race with another process
			k, err = LoadKeyFile(path)
			return k, false, err
		}
		return nil, false, err
	}
	return k, true, nil
}
