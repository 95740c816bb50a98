package nat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"

	"github.com/pion/stun/v3"
)

// Sizes and bounds of the STUN codec (RFC 8489 section 5).
const (
	// MaxSTUNSize bounds inbound STUN messages, in bytes; larger packets
	// are dropped unread. 576 is the IPv4 minimum reassembly size, which
	// RFC 8489 section 6.1 advises STUN messages over UDP stay under.
	MaxSTUNSize = 576
	// MaxAttributes bounds the attributes of a message we read.
	MaxAttributes = 32
	// MaxAmplification is how many bytes longer than its request a
	// Server's answer may be.
	MaxAmplification = 32

	headerSize  = 20
	magicCookie = 0x2112A442

	attrMappedAddress    = 0x0001
	attrXORMappedAddress = 0x0020
	attrFingerprint      = 0x8028
	// attrXORMappedAddressOld is the pre-RFC 5389 code of
	// XOR-MAPPED-ADDRESS, which some old servers still send; pion reads it
	// as XOR-MAPPED-ADDRESS, and so do we.
	attrXORMappedAddressOld = 0x8020

	// Comprehension-required attributes a Binding response may carry that
	// we know and ignore: RFC 3489 SOURCE-ADDRESS and CHANGED-ADDRESS, and
	// the integrity attributes (we send no credentials, so we check none).
	attrSourceAddress          = 0x0004
	attrChangedAddress         = 0x0005
	attrMessageIntegrity       = 0x0008
	attrMessageIntegritySHA256 = 0x001C

	typeBindingRequest  = 0x0001
	typeBindingSuccess  = 0x0101
	typeBindingError    = 0x0111
	comprehensionOptMin = 0x8000
)

// Errors of the codec. Each error returned wraps one of them.
var (
	ErrNotSTUN     = errors.New("nat: not a STUN message")
	ErrTooLarge    = errors.New("nat: STUN message over MaxSTUNSize")
	ErrMalformed   = errors.New("nat: malformed STUN message")
	ErrUnexpected  = errors.New("nat: not a Binding success response")
	ErrUnsupported = errors.New("nat: unknown comprehension-required STUN attribute")
	ErrNoAddress   = errors.New("nat: no usable mapped address")
	ErrBadConfig   = errors.New("nat: bad config")
)

// TxID is a STUN transaction ID (RFC 8489 section 5).
type TxID [12]byte

// NewTxID draws a transaction ID from rng.
func NewTxID(rng *rand.Rand) TxID {
	var t TxID
	binary.LittleEndian.PutUint64(t[0:8], rng.Uint64())
	binary.LittleEndian.PutUint32(t[8:12], rng.Uint32())
	return t
}

// IsSTUN reports whether b looks like a STUN message: at least a header,
// the top two bits of the first byte clear (QUIC packets always have the
// 0x40 fixed bit set, long headers the 0x80 bit too), the magic cookie at
// bytes 4..8, and a length field that is a multiple of 4 and accounts
// exactly for the bytes after the header. It reads only the header.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|0 0|     STUN Message Type     |         Message Length        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Magic Cookie (0x2112A442)                    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  Transaction ID (96 bits)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
func IsSTUN(b []byte) bool {
	if len(b) < headerSize || b[0]&0xC0 != 0 {
		return false
	}
	if binary.BigEndian.Uint32(b[4:8]) != magicCookie {
		return false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	return n%4 == 0 && headerSize+n == len(b)
}

// AppendBindingRequest appends a Binding request with transaction ID tx
// and no attributes (20 bytes) to dst.
func AppendBindingRequest(dst []byte, tx TxID) []byte {
	m := stun.New()
	m.Type = stun.BindingRequest
	m.TransactionID = tx
	m.WriteHeader()
	return append(dst, m.Raw...)
}

// appendBindingSuccess appends a Binding success response with
// transaction ID tx and one attribute, XOR-MAPPED-ADDRESS = addr: 32
// bytes for IPv4, 44 for IPv6. addr must be valid and unmapped.
func appendBindingSuccess(dst []byte, tx TxID, addr netip.AddrPort) []byte {
	m := stun.New()
	m.Type = stun.BindingSuccess
	m.TransactionID = tx
	m.WriteHeader()
	xa := stun.XORMappedAddress{IP: net.IP(addr.Addr().AsSlice()), Port: int(addr.Port())}
	if err := xa.AddTo(m); err != nil {
		// Only a bad IP length fails, and AsSlice gives 4 or 16 bytes.
		panic(fmt.Sprintf("nat: encoding XOR-MAPPED-ADDRESS %v: %v", addr, err))
	}
	return append(dst, m.Raw...)
}

// header is the fixed part of a STUN message.
type header struct {
	typ uint16
	tx  TxID
}

// attrs are the attributes of a message we act on, each the first of
// its type, as value slices into the message.
type attrs struct {
	xorMapped, mapped []byte
	unknownRequired   bool // an unknown comprehension-required attribute
	others            int  // other attributes seen
}

// parseMessage checks b's framing and walks its attributes: at most
// MaxAttributes, each within the message, FINGERPRINT (if any) last and
// correct. known reports the comprehension-required types the caller
// understands besides the address attributes.
func parseMessage(b []byte, known func(uint16) bool) (header, attrs, error) {
	var h header
	var a attrs
	if len(b) > MaxSTUNSize {
		return h, a, ErrTooLarge
	}
	if !IsSTUN(b) {
		return h, a, ErrNotSTUN
	}
	h.typ = binary.BigEndian.Uint16(b[0:2])
	copy(h.tx[:], b[8:20])
	rest := b[headerSize:]
	for n := 0; len(rest) > 0; n++ {
		if n == MaxAttributes {
			return h, a, fmt.Errorf("%w: over %d attributes", ErrMalformed, MaxAttributes)
		}
		if len(rest) < 4 {
			return h, a, fmt.Errorf("%w: truncated attribute header", ErrMalformed)
		}
		typ := binary.BigEndian.Uint16(rest[0:2])
		l := int(binary.BigEndian.Uint16(rest[2:4]))
		padded := (l + 3) &^ 3
		if len(rest)-4 < padded {
			return h, a, fmt.Errorf("%w: attribute 0x%04x overruns the message", ErrMalformed, typ)
		}
		val := rest[4 : 4+l]
		rest = rest[4+padded:]
		switch {
		case typ == attrXORMappedAddress, typ == attrXORMappedAddressOld:
			if a.xorMapped == nil {
				a.xorMapped = val
			}
		case typ == attrMappedAddress:
			if a.mapped == nil {
				a.mapped = val
			}
		case typ == attrFingerprint:
			if len(rest) != 0 {
				return h, a, fmt.Errorf("%w: FINGERPRINT not last", ErrMalformed)
			}
			m := &stun.Message{Raw: b}
			if err := m.Decode(); err != nil {
				return h, a, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			if err := stun.Fingerprint.Check(m); err != nil {
				return h, a, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
		case typ < comprehensionOptMin && !known(typ):
			a.unknownRequired = true
		default:
			a.others++
		}
	}
	return h, a, nil
}

// knownInResponse lists the comprehension-required attributes other than
// the address ones that a Binding response may carry and we ignore.
func knownInResponse(t uint16) bool {
	switch t {
	case attrSourceAddress, attrChangedAddress, attrMessageIntegrity, attrMessageIntegritySHA256:
		return true
	}
	return false
}

// knownInRequest: a Binding request needs no comprehension-required
// attribute and we honour none (no credentials, no CHANGE-REQUEST).
func knownInRequest(uint16) bool { return false }

// ParseBindingResponse reads a Binding success response: its transaction
// ID and the reflexive address it reports, from XOR-MAPPED-ADDRESS if
// present, else from MAPPED-ADDRESS. The address value must be exactly 8
// (IPv4) or 20 (IPv6) bytes; IPv4-mapped IPv6 addresses are unmapped; an
// unspecified address or port 0 is refused. Messages over MaxSTUNSize or
// with more than MaxAttributes attributes, other message types, unknown
// comprehension-required attributes and a wrong FINGERPRINT are errors.
func ParseBindingResponse(b []byte) (TxID, netip.AddrPort, error) {
	h, a, err := parseMessage(b, knownInResponse)
	if err != nil {
		return TxID{}, netip.AddrPort{}, err
	}
	if h.typ != typeBindingSuccess {
		return h.tx, netip.AddrPort{}, fmt.Errorf("%w: type 0x%04x", ErrUnexpected, h.typ)
	}
	if a.unknownRequired {
		return h.tx, netip.AddrPort{}, ErrUnsupported
	}
	var ap netip.AddrPort
	switch {
	case a.xorMapped != nil:
		ap, err = decodeAddr(b, a.xorMapped, true)
	case a.mapped != nil:
		ap, err = decodeAddr(b, a.mapped, false)
	default:
		err = ErrNoAddress
	}
	if err != nil {
		return h.tx, netip.AddrPort{}, err
	}
	return h.tx, ap, nil
}

// decodeAddr decodes one (XOR-)MAPPED-ADDRESS value of message b with
// pion, after checking its exact length.
func decodeAddr(b, val []byte, xor bool) (netip.AddrPort, error) {
	if len(val) < 4 {
		return netip.AddrPort{}, fmt.Errorf("%w: address attribute of %d bytes", ErrNoAddress, len(val))
	}
	switch fam := binary.BigEndian.Uint16(val[0:2]); {
	case fam == 1 && len(val) == 8, fam == 2 && len(val) == 20:
	default:
		return netip.AddrPort{}, fmt.Errorf("%w: family %d with %d bytes", ErrNoAddress, fam, len(val))
	}
	m := &stun.Message{Raw: b}
	if err := m.Decode(); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var ip net.IP
	var port int
	if xor {
		var xa stun.XORMappedAddress
		if err := xa.GetFrom(m); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrNoAddress, err)
		}
		ip, port = xa.IP, xa.Port
	} else {
		var ma stun.MappedAddress
		if err := ma.GetFrom(m); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: %w", ErrNoAddress, err)
		}
		ip, port = ma.IP, ma.Port
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%w: IP of %d bytes", ErrNoAddress, len(ip))
	}
	addr = addr.Unmap()
	if addr.IsUnspecified() || port <= 0 || port > 0xFFFF {
		return netip.AddrPort{}, fmt.Errorf("%w: %v port %d", ErrNoAddress, addr, port)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// cleanAddr unmaps ap and drops any zone; ok is false if the result is
// not a usable unicast UDP endpoint (invalid, unspecified, port 0).
func cleanAddr(ap netip.AddrPort) (netip.AddrPort, bool) {
	a := ap.Addr().Unmap().WithZone("")
	if !a.IsValid() || a.IsUnspecified() || ap.Port() == 0 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, ap.Port()), true
}
