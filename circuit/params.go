package circuit

import (
	"crypto/ecdh"
	"time"
)

// NodeID is a node's 32-byte overlay identifier.
type NodeID = [32]byte

// Hop is one node on a circuit's path: its ID and its published X25519
// onion key.
type Hop struct {
	ID       NodeID
	OnionKey *ecdh.PublicKey
}

// Sizes and limits of the setup onion.
const (
	// MaxHops is the longest path, relays plus the terminal.
	MaxHops = 5
	// BlockSize is the size of one hop's routing block in the onion. The
	// block uses 89 bytes; the rest is reserved and must be zero.
	BlockSize = 128
	// OnionSize is the size of every setup onion on every link:
	// ephemeral key (32) | MAC (16) | MaxHops routing blocks.
	OnionSize = keySize + macSize + betaSize
	// SetupMaxAge is how far an onion's creation time may be from a
	// hop's clock, either way.
	SetupMaxAge = 2 * time.Minute
)

// Sizes and limits of the data layer.
const (
	// Overhead is what a data packet adds to its payload: the 16-byte
	// header nu and the 16-byte AEAD tag.
	Overhead = nuSize + tagSize
	// MaxPayload is the largest payload Seal accepts.
	MaxPayload = 1400
	// ReplayWindow is how many counters behind the highest one accepted
	// an end still accepts (once each).
	ReplayWindow = 2048
)

const (
	keySize  = 32                  // X25519 public key and symmetric keys
	macSize  = 16                  // truncated HMAC-SHA256
	betaSize = MaxHops * BlockSize // the routing blocks of an onion
	nuSize   = 16                  // data header, one AES block
	tagSize  = 16                  // ChaCha20-Poly1305 tag
	maxPkt   = Overhead + MaxPayload
)
