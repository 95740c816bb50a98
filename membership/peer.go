package membership

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Peer is what is needed to reach a node.
type Peer struct {
	ID        identity.NodeID
	Addrs     []netip.AddrPort // at most MaxAddrs
	NoInbound bool             // cannot accept inbound connections (behind NAT); filled by a later NAT layer
}

// Size limits of a peer on the wire.
const (
	// MaxAddrs bounds the addresses one Peer carries.
	MaxAddrs = 4

	// peerFixedLen is a peer's ID, flags byte and address count.
	peerFixedLen = identity.IDLen + 2
	// addr4Len and addr6Len are one encoded address: family, IP, port.
	addr4Len = 1 + 4 + 2
	addr6Len = 1 + 16 + 2

	// MaxPeerLen is the largest encoded peer: MaxAddrs IPv6 addresses.
	MaxPeerLen = peerFixedLen + MaxAddrs*addr6Len
)

// Peer flags on the wire. Bits not named here must be zero.
const (
	flagNoInbound = 1 << 0
	knownFlags    = flagNoInbound
)

// Address families on the wire.
const (
	family4 = 4
	family6 = 6
)

// validate reports why p cannot be encoded, or nil.
func (p Peer) validate() error {
	if p.ID.IsZero() {
		return fmt.Errorf("%w: zero node ID", ErrBadPeer)
	}
	if len(p.Addrs) > MaxAddrs {
		return fmt.Errorf("%w: %s has %d addresses, at most %d", ErrBadPeer, p.ID.Short(), len(p.Addrs), MaxAddrs)
	}
	for _, a := range p.Addrs {
		if !a.Addr().IsValid() {
			return fmt.Errorf("%w: %s has an invalid address", ErrBadPeer, p.ID.Short())
		}
		if a.Addr().Zone() != "" {
			return fmt.Errorf("%w: %s: address %v has a zone, which means nothing to another host", ErrBadPeer, p.ID.Short(), a)
		}
	}
	return nil
}

// clone returns a copy of p that shares no memory with it.
func (p Peer) clone() Peer {
	p.Addrs = slices.Clone(p.Addrs)
	return p
}

// appendPeer appends p, which must be valid, to b:
//
//	+----------------------+-------+---------+------------------------+
//	| node ID (32 bytes)   | flags | n (0-4) | n addresses            |
//	+----------------------+-------+---------+------------------------+
//	address: | family (4 or 6) | IP (4 or 16 bytes) | port (2, big endian) |
func appendPeer(b []byte, p Peer) []byte {
	b = append(b, p.ID[:]...)
	var flags byte
	if p.NoInbound {
		flags |= flagNoInbound
	}
	b = append(b, flags, byte(len(p.Addrs)))
	for _, a := range p.Addrs {
		ip := a.Addr()
		if ip.Is4() {
			v := ip.As4()
			b = append(b, family4)
			b = append(b, v[:]...)
		} else {
			v := ip.As16()
			b = append(b, family6)
			b = append(b, v[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, a.Port())
	}
	return b
}

// parsePeer decodes one peer from the front of b and returns the bytes
// after it.
func parsePeer(b []byte) (Peer, []byte, error) {
	var p Peer
	if len(b) < peerFixedLen {
		return p, nil, fmt.Errorf("%w: truncated peer (%d bytes, need %d)", ErrMalformed, len(b), peerFixedLen)
	}
	copy(p.ID[:], b[:identity.IDLen])
	if p.ID.IsZero() {
		return Peer{}, nil, fmt.Errorf("%w: zero node ID", ErrMalformed)
	}
	flags, n := b[identity.IDLen], int(b[identity.IDLen+1])
	if flags&^knownFlags != 0 {
		return Peer{}, nil, fmt.Errorf("%w: unknown peer flags %#x", ErrMalformed, flags&^knownFlags)
	}
	p.NoInbound = flags&flagNoInbound != 0
	if n > MaxAddrs {
		return Peer{}, nil, fmt.Errorf("%w: peer has %d addresses, at most %d", ErrMalformed, n, MaxAddrs)
	}
	b = b[peerFixedLen:]
	if n > 0 {
		p.Addrs = make([]netip.AddrPort, 0, n)
	}
	for range n {
		if len(b) < 1 {
			return Peer{}, nil, fmt.Errorf("%w: truncated address", ErrMalformed)
		}
		var ip netip.Addr
		switch b[0] {
		case family4:
			if len(b) < addr4Len {
				return Peer{}, nil, fmt.Errorf("%w: truncated IPv4 address", ErrMalformed)
			}
			ip = netip.AddrFrom4([4]byte(b[1:5]))
			b = b[5:]
		case family6:
			if len(b) < addr6Len {
				return Peer{}, nil, fmt.Errorf("%w: truncated IPv6 address", ErrMalformed)
			}
			ip = netip.AddrFrom16([16]byte(b[1:17]))
			b = b[17:]
		default:
			return Peer{}, nil, fmt.Errorf("%w: address family %d, want %d or %d", ErrMalformed, b[0], family4, family6)
		}
		p.Addrs = append(p.Addrs, netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b)))
		b = b[2:]
	}
	return p, b, nil
}
