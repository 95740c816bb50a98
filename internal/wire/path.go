package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// Path packets carry one end-to-end connection's packets over a direct UDP
// path, and validate that path, beside the node's own QUIC traffic on the
// same socket. Their first byte has the top two bits 0, so quic-go hands
// them to the non-QUIC reader, and it is none that STUN (0x00, 0x01) or a
// punch opener (0x00) starts with:
//
//	DATA  | 0x3d | session (8) | packet (1..MaxPathPayload) |
//	PING  | 0x3e | session (8) | nonce (8) | tag (16) |
//	PONG  | 0x3f | session (8) | nonce (8) | tag (16) |
//
// The session is the receiver's: the ID under which it knows the
// connection (both ends derive both IDs from the connection's TLS
// exporter). A DATA packet carries one packet of the end-to-end QUIC
// connection, which authenticates it; the receiver needs no tag to pass
// it on and learns nothing from its source address. A PING or PONG is
// authenticated: the tag is HMAC-SHA256, cut to 16 bytes, under the
// session's path key, over the type, the session and the nonce. A valid
// PING proves the sender holds the connection's keys and is reachable
// from where it came from; a PONG echoes a PING's nonce, so its arrival
// validates the path it was asked on. The same PING and PONG also travel
// inside a circuit, beside the QUIC packets (whose first byte has bit
// 0x40 set).
const (
	PathData = 0x3d
	PathPing = 0x3e
	PathPong = 0x3f
)

// Sizes of the path packets.
const (
	PathSessionLen  = 8
	PathHeaderLen   = 1 + PathSessionLen
	pathNonceLen    = 8
	pathTagLen      = 16
	PathProbeLen    = PathHeaderLen + pathNonceLen + pathTagLen // 33
	PathKeyLen      = 32
	MaxPathPayload  = 1452 // an IPv6 UDP payload in a 1500-byte MTU, less the header
	MaxPathPacket   = PathHeaderLen + MaxPathPayload
	pathMACInputLen = 1 + PathSessionLen + pathNonceLen
)

// PathSession names a connection to the node that receives a path packet.
type PathSession [PathSessionLen]byte

// PathPacket is a parsed path packet. Payload aliases the input.
type PathPacket struct {
	Type    byte
	Session PathSession
	Nonce   uint64 // PING and PONG
	tag     [pathTagLen]byte
	Payload []byte // DATA
}

// IsPathPacket reports whether b starts like a path packet (its type);
// ParsePathPacket says whether it is one.
func IsPathPacket(b []byte) bool {
	return len(b) > 0 && (b[0] == PathData || b[0] == PathPing || b[0] == PathPong)
}

// Errors of ParsePathPacket.
var (
	ErrPathType   = errors.New("wire: not a path packet")
	ErrPathLength = errors.New("wire: path packet of a wrong length")
)

// ParsePathPacket parses b. It checks the shape only; a PING or PONG is
// to be checked with Verify under the session's key.
func ParsePathPacket(b []byte) (PathPacket, error) {
	if !IsPathPacket(b) {
		return PathPacket{}, ErrPathType
	}
	if len(b) < PathHeaderLen {
		return PathPacket{}, ErrPathLength
	}
	p := PathPacket{Type: b[0]}
	copy(p.Session[:], b[1:PathHeaderLen])
	switch p.Type {
	case PathData:
		if len(b) == PathHeaderLen || len(b) > MaxPathPacket {
			return PathPacket{}, ErrPathLength
		}
		p.Payload = b[PathHeaderLen:]
	default:
		if len(b) != PathProbeLen {
			return PathPacket{}, ErrPathLength
		}
		p.Nonce = binary.BigEndian.Uint64(b[PathHeaderLen:])
		copy(p.tag[:], b[PathHeaderLen+pathNonceLen:])
	}
	return p, nil
}

// Verify reports whether a PING or PONG carries the tag key gives it.
func (p PathPacket) Verify(key *[PathKeyLen]byte) bool {
	if p.Type != PathPing && p.Type != PathPong {
		return false
	}
	want := pathTag(key, p.Type, p.Session, p.Nonce)
	return hmac.Equal(want[:], p.tag[:])
}

// AppendPathData appends a DATA header for session; the caller appends the
// packet.
func AppendPathData(dst []byte, session PathSession) []byte {
	dst = append(dst, PathData)
	return append(dst, session[:]...)
}

// AppendPathProbe appends a PING or PONG (typ) for session with nonce,
// tagged under key.
func AppendPathProbe(dst []byte, typ byte, session PathSession, nonce uint64, key *[PathKeyLen]byte) []byte {
	dst = append(dst, typ)
	dst = append(dst, session[:]...)
	dst = binary.BigEndian.AppendUint64(dst, nonce)
	tag := pathTag(key, typ, session, nonce)
	return append(dst, tag[:]...)
}

func pathTag(key *[PathKeyLen]byte, typ byte, session PathSession, nonce uint64) [pathTagLen]byte {
	var in [pathMACInputLen]byte
	in[0] = typ
	copy(in[1:], session[:])
	binary.BigEndian.PutUint64(in[1+PathSessionLen:], nonce)
	m := hmac.New(sha256.New, key[:])
	m.Write(in[:])
	var sum [sha256.Size]byte
	var tag [pathTagLen]byte
	copy(tag[:], m.Sum(sum[:0]))
	return tag
}
