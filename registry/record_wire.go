package registry

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Record encoding constants. The layout is drawn in the package doc.
const (
	// recordVersion is the first byte of every record.
	recordVersion = 1

	// signContext is prepended to the body before signing, so that a
	// record signature can never be taken for a signature over anything
	// else the node's key signs.
	signContext = "mycelium registry record v1\x00"

	// recordFixedLen is version, flags, ID, seq, issued, lifetime,
	// mapping, filtering, relay capacity, relay load and onion key.
	recordFixedLen = 1 + 1 + identity.IDLen + 8 + 8 + 4 + 1 + 1 + 4 + 4 + 32
	// addr4Len and addr6Len are one encoded address: family, IP, port.
	addr4Len = 1 + 4 + 2
	addr6Len = 1 + 16 + 2
	// minRecordLen is a record with every list empty.
	minRecordLen = recordFixedLen + 5 + ed25519.SignatureSize
	// maxRecordLen is a record with every list full of its largest items.
	maxRecordLen = recordFixedLen +
		2*(1+MaxAddrs*addr6Len) +
		1 + MaxHomeRelays*identity.IDLen +
		1 + MaxServices*(1+MaxServiceName+1+MaxServiceMeta) +
		1 + MaxNeighbors*identity.IDLen +
		ed25519.SignatureSize
)

// Record flags. Bits not named here must be zero.
const (
	flagLeaving = 1 << 0
	flagInbound = 1 << 1
	flagRelay   = 1 << 2
	knownFlags  = flagLeaving | flagInbound | flagRelay
)

// Address families on the wire.
const (
	family4 = 4
	family6 = 6
)

// Sign validates r, encodes it and signs it with key, whose public key
// must be r.ID. It returns the wire encoding: body, then a 64-byte
// Ed25519 signature over signContext followed by the body.
func Sign(r Record, key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key of %d bytes", ErrMalformed, len(key))
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	if pub := key.Public().(ed25519.PublicKey); identity.NodeID(pub) != r.ID {
		return nil, fmt.Errorf("%w: key does not belong to %s", ErrForged, r.ID.Short())
	}
	b := appendBody(make([]byte, 0, 512), r)
	sig := ed25519.Sign(key, signedMessage(b))
	return append(b, sig...), nil
}

// signedMessage is what the signature covers.
func signedMessage(body []byte) []byte {
	m := make([]byte, 0, len(signContext)+len(body))
	return append(append(m, signContext...), body...)
}

// appendBody appends r, which must be valid, without its signature.
func appendBody(b []byte, r Record) []byte {
	var flags byte
	if r.Leaving {
		flags |= flagLeaving
	}
	if r.Inbound {
		flags |= flagInbound
	}
	if r.Relay {
		flags |= flagRelay
	}
	b = append(b, recordVersion, flags)
	b = append(b, r.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Issued.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(r.Lifetime/time.Second))
	b = append(b, byte(r.Mapping), byte(r.Filtering))
	b = binary.BigEndian.AppendUint32(b, r.RelayCapacity)
	b = binary.BigEndian.AppendUint32(b, r.RelayLoad)
	b = append(b, r.OnionKey[:]...)
	b = appendAddrs(b, r.Listen)
	b = appendAddrs(b, r.Reflexive)
	b = appendIDs(b, r.HomeRelays)
	b = append(b, byte(len(r.Services)))
	for _, s := range r.Services {
		b = append(b, byte(len(s.Name)))
		b = append(b, s.Name...)
		b = append(b, byte(len(s.Meta)))
		b = append(b, s.Meta...)
	}
	return appendIDs(b, r.Neighbors)
}

func appendAddrs(b []byte, addrs []netip.AddrPort) []byte {
	b = append(b, byte(len(addrs)))
	for _, a := range addrs {
		ip := a.Addr()
		if ip.Is4() {
			v := ip.As4()
			b = append(append(b, family4), v[:]...)
		} else {
			v := ip.As16()
			b = append(append(b, family6), v[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, a.Port())
	}
	return b
}

func appendIDs(b []byte, ids []identity.NodeID) []byte {
	b = append(b, byte(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

// Parse decodes and verifies one signed record. It refuses, wrapping
// ErrOversized, an encoding over MaxRecordSize or a list over its bound;
// wrapping ErrMalformed, an unknown version or flag, truncation, trailing
// bytes, or any field Sign would refuse (so each record has one
// encoding); and wrapping ErrForged, a signature that does not verify
// under the record's ID. It does not look at the time: see CheckTime.
func Parse(b []byte) (Record, error) {
	if len(b) > MaxRecordSize {
		return Record{}, fmt.Errorf("%w: record of %d bytes, at most %d", ErrOversized, len(b), MaxRecordSize)
	}
	if len(b) < minRecordLen {
		return Record{}, fmt.Errorf("%w: record of %d bytes, at least %d", ErrMalformed, len(b), minRecordLen)
	}
	body, sig := b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
	r, err := parseBody(body)
	if err != nil {
		return Record{}, err
	}
	if err := r.validate(); err != nil {
		return Record{}, err
	}
	if !ed25519.Verify(r.ID.PublicKey(), signedMessage(body), sig) {
		return Record{}, fmt.Errorf("%w: record of %s", ErrForged, r.ID.Short())
	}
	return r, nil
}

// reader takes bytes off the front of a buffer; the first shortfall
// sticks in err.
type reader struct {
	b   []byte
	err error
}

func (d *reader) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%w: truncated", ErrMalformed)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *reader) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *reader) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *reader) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *reader) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *reader) id() (id identity.NodeID) {
	if v := d.take(identity.IDLen); v != nil {
		copy(id[:], v)
	}
	return id
}

// count reads a list length and refuses one above max.
func (d *reader) count(max int, what string) int {
	n := int(d.u8())
	if d.err == nil && n > max {
		d.err = fmt.Errorf("%w: %d %s, at most %d", ErrOversized, n, what, max)
	}
	if d.err != nil {
		return 0
	}
	return n
}

func (d *reader) addrs(what string) []netip.AddrPort {
	n := d.count(MaxAddrs, what)
	if n == 0 {
		return nil
	}
	out := make([]netip.AddrPort, 0, n)
	for range n {
		var ip netip.Addr
		switch d.u8() {
		case family4:
			if v := d.take(4); v != nil {
				ip = netip.AddrFrom4([4]byte(v))
			}
		case family6:
			if v := d.take(16); v != nil {
				ip = netip.AddrFrom16([16]byte(v))
			}
		default:
			if d.err == nil {
				d.err = fmt.Errorf("%w: unknown address family", ErrMalformed)
			}
		}
		port := d.u16()
		if d.err != nil {
			return nil
		}
		out = append(out, netip.AddrPortFrom(ip, port))
	}
	return out
}

func (d *reader) ids(max int, what string) []identity.NodeID {
	n := d.count(max, what)
	if n == 0 {
		return nil
	}
	out := make([]identity.NodeID, n)
	for i := range out {
		out[i] = d.id()
	}
	if d.err != nil {
		return nil
	}
	return out
}

// parseBody decodes a record body; validate checks the fields after.
func parseBody(b []byte) (Record, error) {
	d := &reader{b: b}
	var r Record
	if v := d.u8(); v != recordVersion {
		return Record{}, fmt.Errorf("%w: record version %d, want %d", ErrMalformed, v, recordVersion)
	}
	flags := d.u8()
	if flags&^knownFlags != 0 {
		return Record{}, fmt.Errorf("%w: unknown record flags %#x", ErrMalformed, flags&^knownFlags)
	}
	r.Leaving = flags&flagLeaving != 0
	r.Inbound = flags&flagInbound != 0
	r.Relay = flags&flagRelay != 0
	r.ID = d.id()
	r.Seq = d.u64()
	issued := d.u64()
	if issued > 1<<62 {
		return Record{}, fmt.Errorf("%w: Issued %d s", ErrMalformed, issued)
	}
	r.Issued = time.Unix(int64(issued), 0).UTC()
	r.Lifetime = time.Duration(d.u32()) * time.Second
	r.Mapping, r.Filtering = NATClass(d.u8()), NATClass(d.u8())
	r.RelayCapacity, r.RelayLoad = d.u32(), d.u32()
	copy(r.OnionKey[:], d.take(32))
	r.Listen = d.addrs("Listen addresses")
	r.Reflexive = d.addrs("Reflexive addresses")
	r.HomeRelays = d.ids(MaxHomeRelays, "home relays")
	if n := d.count(MaxServices, "services"); n > 0 {
		r.Services = make([]Service, n)
		for i := range r.Services {
			name := d.take(int(d.u8()))
			meta := d.take(int(d.u8()))
			r.Services[i] = Service{Name: string(name)}
			if len(meta) > 0 {
				r.Services[i].Meta = append([]byte(nil), meta...)
			}
		}
	}
	r.Neighbors = d.ids(MaxNeighbors, "neighbours")
	if d.err != nil {
		return Record{}, d.err
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return r, nil
}
