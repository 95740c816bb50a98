package mycelium

import (
	"fmt"
	"net"
	"strings"

	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/internal/wire"
)

// NodeID is a node's Ed25519 public key. Its text form is 52 characters of
// lower-case base32 (RFC 4648, no padding); parsing accepts either case.
type NodeID = identity.NodeID

// Key is a node's long-term Ed25519 private key.
type Key = identity.Key

// ParseNodeID parses the text form of a node ID.
func ParseNodeID(s string) (NodeID, error) { return identity.ParseID(s) }

// GenerateKey returns a new random key.
func GenerateKey() (*Key, error) { return identity.NewKey(nil) }

// LoadKeyFile reads a key file, refusing one that is readable by others,
// malformed, or of the wrong size. See the identity package for the format.
func LoadKeyFile(path string) (*Key, error) { return identity.LoadKeyFile(path) }

// WriteKeyFile writes k to path with mode 0600, never overwriting a file.
func WriteKeyFile(path string, k *Key) error { return identity.WriteKeyFile(path, k) }

// LoadOrCreateKeyFile loads the key at path, creating it if the file does
// not exist. A file that exists but is bad is refused and left alone.
func LoadOrCreateKeyFile(path string) (k *Key, created bool, err error) {
	return identity.LoadOrCreateKeyFile(path)
}

// Peer names a node and an address where it may be reached.
type Peer struct {
	ID   NodeID
	Addr net.Addr // UDP address; nil when unknown
}

func (p Peer) String() string {
	if p.Addr == nil {
		return p.ID.String()
	}
	return p.ID.String() + "@" + p.Addr.String()
}

// ParsePeer parses "NODEID@HOST:PORT" (the address is resolved as UDP) or a
// bare "NODEID".
func ParsePeer(s string) (Peer, error) {
	idText, addrText, hasAddr := strings.Cut(s, "@")
	id, err := ParseNodeID(idText)
	if err != nil {
		return Peer{}, err
	}
	p := Peer{ID: id}
	if hasAddr {
		a, err := net.ResolveUDPAddr("udp", addrText)
		if err != nil {
			return Peer{}, fmt.Errorf("mycelium: peer %s: bad address %q: %w", id.Short(), addrText, err)
		}
		p.Addr = a
	}
	return p, nil
}

// Addr is the address of one end of a mycelium stream: a node and a service.
type Addr struct {
	ID      NodeID
	Service string
}

// Network returns "mycelium".
func (a Addr) Network() string { return "mycelium" }

// String returns "NODEID/SERVICE".
func (a Addr) String() string { return a.ID.String() + "/" + a.Service }

var _ net.Addr = Addr{}

// ValidateServiceName reports whether name may name a service: 1 to 64
// bytes of a-z, 0-9, '.', '_' and '-', starting with a letter or digit.
func ValidateServiceName(name string) error { return wire.ValidateServiceName(name) }
