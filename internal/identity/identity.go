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

// IDFromPublicKey returns the node ID of an Ed25519 public key.
func IDFromPublicKey(pub ed25519.PublicKey) (NodeID, error) {
	var id NodeID
	if len(pub) != IDLen {
		return id, fmt.Errorf("%w: public key has %d bytes, want %d", ErrBadID, len(pub), IDLen)
	}
	copy(id[:], pub)
	return id, nil
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
