package broadcast

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// MessageIDLen is the length of a MessageID in bytes.
const MessageIDLen = 16

// MessageID names one broadcast message. It is derived from the message's
// content, never chosen by a sender:
//
//	ID = SHA-256( "mycelium/broadcast/id/v1" 0x00
//	              || origin (32 bytes)
//	              || seq    (8 bytes, big endian)
//	              || len(topic) (1 byte) || topic
//	              || payload )[:16]
//
// Every receiver recomputes it from the GOSSIP it got, so a peer cannot
// answer a GRAFT, or poison a cache, with a different payload under an
// existing ID without a SHA-256 second preimage. The topic is length-prefixed
// and the payload comes last, so no two (origin, seq, topic, payload)
// tuples share an encoding. 128 bits leaves 2^64 work for a birthday
// collision, which an attacker could use only to make two of its own
// messages deduplicate each other.
type MessageID [MessageIDLen]byte

// idDomain separates message IDs from every other SHA-256 use.
const idDomain = "mycelium/broadcast/id/v1\x00"

// ComputeMessageID returns the ID of the message with these fields.
func ComputeMessageID(origin identity.NodeID, seq uint64, topic string, payload []byte) MessageID {
	h := sha256.New()
	var hdr [len(idDomain) + identity.IDLen + 8 + 1]byte
	n := copy(hdr[:], idDomain)
	n += copy(hdr[n:], origin[:])
	binary.BigEndian.PutUint64(hdr[n:], seq)
	n += 8
	hdr[n] = byte(len(topic))
	h.Write(hdr[:])
	h.Write([]byte(topic))
	h.Write(payload)
	var sum [sha256.Size]byte
	var id MessageID
	copy(id[:], h.Sum(sum[:0]))
	return id
}

// String returns the ID in hex.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex characters, for logs and traces.
func (id MessageID) Short() string { return id.String()[:8] }
