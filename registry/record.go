package registry

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Bounds on a record. Sign refuses a record beyond any of them and Parse
// refuses its encoding, so every record in circulation fits them.
const (
	// MaxRecordSize bounds an encoded, signed record. The largest record
	// Sign can produce (every list full, IPv6 addresses, the longest
	// names and metadata) is maxRecordLen, 3,957 bytes; a test holds it
	// under this bound.
	MaxRecordSize = 4096

	// MaxAddrs bounds each address list (Listen, Reflexive).
	MaxAddrs = 8
	// MaxHomeRelays bounds HomeRelays.
	MaxHomeRelays = 4
	// MaxServices bounds Services.
	MaxServices = 16
	// MaxServiceName bounds a service name, in bytes.
	MaxServiceName = 64
	// MaxServiceMeta bounds a service's metadata, in bytes.
	MaxServiceMeta = 128
	// MaxNeighbors bounds Neighbors.
	MaxNeighbors = 8

	// MaxLifetime bounds a record's lifetime.
	MaxLifetime = 24 * time.Hour
	// MaxClockSkew is how far in the future a record's Issued may lie
	// before CheckTime refuses it (ErrFarFuture).
	MaxClockSkew = 5 * time.Minute

	// reservedPrefix starts the service names kept for mycelium itself.
	reservedPrefix = "mycelium."
)

// Errors. Parse, Sign, CheckTime and New return them wrapped with %w.
var (
	ErrMalformed = errors.New("registry: malformed")
	ErrOversized = errors.New("registry: oversized")
	ErrForged    = errors.New("registry: bad signature")
	ErrExpired   = errors.New("registry: expired record")
	ErrFarFuture = errors.New("registry: record issued too far in the future")
	ErrStale     = errors.New("registry: stale record")
	ErrBadConfig = errors.New("registry: bad config")
)

// NATClass is one of the RFC 4787 behaviours, for mapping (section 4.1)
// or for filtering (section 5).
type NATClass uint8

// NAT classes. The values are the wire encoding.
const (
	NATUnknown                 NATClass = 0 // not measured
	NATEndpointIndependent     NATClass = 1
	NATAddressDependent        NATClass = 2
	NATAddressAndPortDependent NATClass = 3
)

func (c NATClass) String() string {
	switch c {
	case NATUnknown:
		return "unknown"
	case NATEndpointIndependent:
		return "endpoint-independent"
	case NATAddressDependent:
		return "address-dependent"
	case NATAddressAndPortDependent:
		return "address-and-port-dependent"
	default:
		return fmt.Sprintf("nat(%d)", uint8(c))
	}
}

// Service is one named service a node offers.
type Service struct {
	Name string // see ValidServiceName
	Meta []byte // opaque to the registry, at most MaxServiceMeta bytes
}

// Record is what one node says about itself. Sign encodes and signs it;
// Parse decodes and verifies it.
type Record struct {
	ID       identity.NodeID
	Seq      uint64        // higher replaces lower
	Issued   time.Time     // whole seconds since the Unix epoch on the wire
	Lifetime time.Duration // whole seconds, 1 s..MaxLifetime
	Leaving  bool          // tombstone: the node left; all fields below are zero

	Inbound            bool     // accepts inbound connections
	Mapping, Filtering NATClass // RFC 4787 classes of the node's NAT

	Listen    []netip.AddrPort // local addresses, at most MaxAddrs
	Reflexive []netip.AddrPort // addresses observers saw (STUN), at most MaxAddrs

	Relay                    bool // offers to relay circuits
	RelayCapacity, RelayLoad uint32
	HomeRelays               []identity.NodeID // at most MaxHomeRelays, unique

	OnionKey  [32]byte          // X25519 public key; zero means none
	Services  []Service         // sorted by name, unique, at most MaxServices
	Neighbors []identity.NodeID // at most MaxNeighbors, unique
}

// Expires is the first instant at which the record is no longer live.
func (r Record) Expires() time.Time { return r.Issued.Add(r.Lifetime) }

// CheckTime reports whether r may be accepted at now: ErrExpired if now
// is not before Expires, ErrFarFuture if Issued is more than
// MaxClockSkew after now.
func (r Record) CheckTime(now time.Time) error {
	if !now.Before(r.Expires()) {
		return fmt.Errorf("%w: %s expired at %v", ErrExpired, r.ID.Short(), r.Expires())
	}
	if r.Issued.After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: %s issued at %v", ErrFarFuture, r.ID.Short(), r.Issued)
	}
	return nil
}

// clone returns a copy of r that shares no memory with it.
func (r Record) clone() Record {
	r.Listen = slices.Clone(r.Listen)
	r.Reflexive = slices.Clone(r.Reflexive)
	r.HomeRelays = slices.Clone(r.HomeRelays)
	r.Neighbors = slices.Clone(r.Neighbors)
	if r.Services != nil {
		s := make([]Service, len(r.Services))
		for i, v := range r.Services {
			s[i] = Service{Name: v.Name, Meta: slices.Clone(v.Meta)}
		}
		r.Services = s
	}
	return r
}

// hasService reports whether r offers the service name.
func (r Record) hasService(name string) bool {
	_, ok := slices.BinarySearchFunc(r.Services, name, func(s Service, n string) int { return strings.Compare(s.Name, n) })
	return ok
}

// ValidServiceName reports why name cannot name a service, or nil. A
// name is 1..MaxServiceName bytes of [a-z0-9._-] and does not start with
// "mycelium." (kept for mycelium's own services).
func ValidServiceName(name string) error {
	if len(name) == 0 || len(name) > MaxServiceName {
		return fmt.Errorf("%w: service name of %d bytes, want 1..%d", ErrMalformed, len(name), MaxServiceName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: service name %q has byte %#x, want [a-z0-9._-]", ErrMalformed, name, c)
		}
	}
	if strings.HasPrefix(name, reservedPrefix) {
		return fmt.Errorf("%w: service name %q is reserved", ErrMalformed, name)
	}
	return nil
}

// validate reports the first field of r that cannot be encoded, or nil.
// Errors wrap ErrOversized for a list or field over its bound and
// ErrMalformed for anything else, so Parse, which calls it after
// decoding, refuses exactly what Sign refuses.
func (r Record) validate() error {
	if r.ID.IsZero() {
		return fmt.Errorf("%w: zero node ID", ErrMalformed)
	}
	if _, err := identity.IDFromPublicKey(r.ID[:]); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if sec := r.Issued.Unix(); sec < 0 || !r.Issued.Equal(time.Unix(sec, 0)) {
		return fmt.Errorf("%w: Issued %v is not a whole second after 1970", ErrMalformed, r.Issued)
	}
	if r.Lifetime < time.Second || r.Lifetime > MaxLifetime || r.Lifetime%time.Second != 0 {
		return fmt.Errorf("%w: Lifetime %v, want whole seconds in 1s..%v", ErrMalformed, r.Lifetime, MaxLifetime)
	}
	if r.Leaving {
		if !r.isBareTombstone() {
			return fmt.Errorf("%w: a Leaving record carries only ID, Seq, Issued and Lifetime", ErrMalformed)
		}
		return nil
	}
	if r.Mapping > NATAddressAndPortDependent || r.Filtering > NATAddressAndPortDependent {
		return fmt.Errorf("%w: NAT class %d/%d", ErrMalformed, r.Mapping, r.Filtering)
	}
	for _, l := range []struct {
		name  string
		addrs []netip.AddrPort
	}{{"Listen", r.Listen}, {"Reflexive", r.Reflexive}} {
		if len(l.addrs) > MaxAddrs {
			return fmt.Errorf("%w: %d %s addresses, at most %d", ErrOversized, len(l.addrs), l.name, MaxAddrs)
		}
		for _, a := range l.addrs {
			if !a.Addr().IsValid() || a.Addr().Zone() != "" {
				return fmt.Errorf("%w: %s address %v (invalid, or has a zone)", ErrMalformed, l.name, a)
			}
		}
	}
	if len(r.HomeRelays) > MaxHomeRelays {
		return fmt.Errorf("%w: %d home relays, at most %d", ErrOversized, len(r.HomeRelays), MaxHomeRelays)
	}
	if err := checkIDs("HomeRelays", r.HomeRelays); err != nil {
		return err
	}
	if len(r.Neighbors) > MaxNeighbors {
		return fmt.Errorf("%w: %d neighbours, at most %d", ErrOversized, len(r.Neighbors), MaxNeighbors)
	}
	if err := checkIDs("Neighbors", r.Neighbors); err != nil {
		return err
	}
	if len(r.Services) > MaxServices {
		return fmt.Errorf("%w: %d services, at most %d", ErrOversized, len(r.Services), MaxServices)
	}
	for i, s := range r.Services {
		if len(s.Name) > MaxServiceName {
			return fmt.Errorf("%w: service name of %d bytes, at most %d", ErrOversized, len(s.Name), MaxServiceName)
		}
		if err := ValidServiceName(s.Name); err != nil {
			return err
		}
		if len(s.Meta) > MaxServiceMeta {
			return fmt.Errorf("%w: service %q has %d bytes of metadata, at most %d", ErrOversized, s.Name, len(s.Meta), MaxServiceMeta)
		}
		if i > 0 && r.Services[i-1].Name >= s.Name {
			return fmt.Errorf("%w: services not sorted by name, or %q twice", ErrMalformed, s.Name)
		}
	}
	return nil
}

// isBareTombstone reports whether every field after Leaving is zero.
func (r Record) isBareTombstone() bool {
	return !r.Inbound && r.Mapping == 0 && r.Filtering == 0 &&
		len(r.Listen) == 0 && len(r.Reflexive) == 0 &&
		!r.Relay && r.RelayCapacity == 0 && r.RelayLoad == 0 &&
		len(r.HomeRelays) == 0 && r.OnionKey == [32]byte{} &&
		len(r.Services) == 0 && len(r.Neighbors) == 0
}

// checkIDs refuses zero and repeated IDs in a list.
func checkIDs(name string, ids []identity.NodeID) error {
	for i, id := range ids {
		if id.IsZero() {
			return fmt.Errorf("%w: zero ID in %s", ErrMalformed, name)
		}
		if slices.Contains(ids[:i], id) {
			return fmt.Errorf("%w: %s names %s twice", ErrMalformed, name, id.Short())
		}
	}
	return nil
}
