// Package identity holds a node's long-term Ed25519 key and the node ID derived
// from it.
//
// A node ID is the node's 32-byte Ed25519 public key. Its one text form is
// RFC 4648 base32, lower case, without padding: 52 characters such as
//
//	7u4sbl5kqxrn4fj6a2w3lr2ylgmyh2sxyzkgb4qkvf6gvcm3k7qa
//
// Why base32: it is case-insensitive (people read IDs aloud, paste them into
// DNS labels and shell arguments), it is 12 characters shorter than hex, it
// fits in one DNS label (at most 63 characters), and it has no characters that
// need quoting in a shell or a URL. iroh made the same choice. Parsing accepts
// upper or lower case and refuses any other length, alphabet or non-zero
// trailing bits, so every ID has exactly one spelling that parses to it.
//
// The eight small-order points (and their non-canonical encodings) are not
// node IDs: anyone can make a signature that verifies under them, so they
// prove nothing. IDFromPublicKey and ParseID refuse them.
package identity

import (
	"crypto/ed25519"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// IDLen is the length of a node ID in bytes (an Ed25519 public key).
const IDLen = ed25519.PublicKeySize

// TextLen is the length of a node ID's text form: ceil(32*8/5) base32 characters.
const TextLen = 52

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// ErrBadID is returned for text that is not a node ID.
var ErrBadID = errors.New("identity: malformed node ID")

// NodeID is a node's Ed25519 public key. The zero value is not a valid ID.
type NodeID [IDLen]byte

// IDFromPublicKey returns the node ID of an Ed25519 public key. It refuses
// small-order points (see smallOrder), for which anyone can forge signatures.
func IDFromPublicKey(pub ed25519.PublicKey) (NodeID, error) {
	var id NodeID
	if len(pub) != IDLen {
		return id, fmt.Errorf("%w: public key has %d bytes, want %d", ErrBadID, len(pub), IDLen)
	}
	if smallOrder(pub) {
		return id, fmt.Errorf("%w: public key %x is a small-order point, for which anyone can forge signatures", ErrBadID, []byte(pub))
	}
	copy(id[:], pub)
	return id, nil
}

// smallOrderEncodings are the encodings, with the sign bit (the top bit of
// byte 31) cleared, of the eight Ed25519 points of small order, as in
// libsodium's blocklist (ge25519_has_small_order). For such a public key A,
// the signature R = identity, S = 0 satisfies [S]B = R + [k]A for every
// message, so holding that "key" proves nothing. The list covers the
// non-canonical encodings y = p and y = p+1 too, which decoders that accept
// non-canonical y (as crypto/ed25519 does) read as y = 0 and y = 1.
//
// Each was checked against filippo.io/edwards25519: every encoding below,
// with the sign bit clear or set, that decodes at all decodes to a point P
// with [8]P = identity, and the eight points of the 8-torsion subgroup all
// encode to an entry (with sign bit clear or set).
var smallOrderEncodings = [...][IDLen]byte{
	// 0: y = 0, a point of order 4 (and, with the sign bit, its negation).
	{},
	// 1: y = 1, the identity point (order 1).
	{0x01},
	// The two y of the points of order 8.
	{
		0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
	},
	{
		0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
	},
	// p-1: y = -1, the point of order 2.
	{
		0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	},
	// p: a non-canonical y = 0.
	{
		0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	},
	// p+1: a non-canonical y = 1.
	{
		0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	},
}

// smallOrder reports whether the 32-byte encoding b is a small-order point
// in any of its encodings. Public keys are public, so the comparison need
// not be constant-time.
func smallOrder(b []byte) bool {
	var c [IDLen]byte
	copy(c[:], b)
	c[IDLen-1] &= 0x7f
	for _, e := range smallOrderEncodings {
		if c == e {
			return true
		}
	}
	return false
}

// ParseID parses the text form of a node ID, in either case.
func ParseID(s string) (NodeID, error) {
	var id NodeID
	if len(s) != TextLen {
		return id, fmt.Errorf("%w: %q has %d characters, want %d", ErrBadID, truncate(s), len(s), TextLen)
	}
	upper := strings.ToUpper(s)
	n, err := enc.Decode(id[:], []byte(upper))
	if err != nil || n != IDLen {
		return NodeID{}, fmt.Errorf("%w: %q is not base32", ErrBadID, truncate(s))
	}
	// 52 characters carry 260 bits; the last 4 must be zero for the
	// spelling to be canonical.
	if enc.EncodeToString(id[:]) != upper {
		return NodeID{}, fmt.Errorf("%w: %q has non-zero trailing bits", ErrBadID, truncate(s))
	}
	if id.IsZero() {
		return NodeID{}, fmt.Errorf("%w: the all-zero ID is not a key", ErrBadID)
	}
	if smallOrder(id[:]) {
		return NodeID{}, fmt.Errorf("%w: %q is a small-order point, for which anyone can forge signatures", ErrBadID, truncate(s))
	}
	return id, nil
}

// String returns the canonical lower-case text form.
func (id NodeID) String() string {
	return strings.ToLower(enc.EncodeToString(id[:]))
}

// Short returns the first 8 characters of the text form, for logs.
func (id NodeID) Short() string { return id.String()[:8] }

// IsZero reports whether id is the zero value.
func (id NodeID) IsZero() bool { return id == NodeID{} }

// PublicKey returns the Ed25519 public key that id is.
func (id NodeID) PublicKey() ed25519.PublicKey {
	return ed25519.PublicKey(append([]byte(nil), id[:]...))
}

// Less orders node IDs byte-wise. Roles that need a tie-break (who keeps a
// connection when both dialed) use it.
func (id NodeID) Less(other NodeID) bool {
	for i := range id {
		if id[i] != other[i] {
			return id[i] < other[i]
		}
	}
	return false
}

// MarshalText implements encoding.TextMarshaler.
func (id NodeID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *NodeID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
