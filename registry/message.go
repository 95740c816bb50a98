package registry

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// MsgType is the first byte of every anti-entropy message.
type MsgType uint8

// Anti-entropy message types. The values are the wire encoding.
const (
	MsgDigest  MsgType = 1 // (id, seq) of every record held in an ID range
	MsgRecords MsgType = 2 // signed records the receiver lacks
)

func (t MsgType) String() string {
	switch t {
	case MsgDigest:
		return "DIGEST"
	case MsgRecords:
		return "RECORDS"
	default:
		return fmt.Sprintf("type(%d)", uint8(t))
	}
}

// Size limits of anti-entropy messages.
const (
	// MaxMessageSize bounds an encoded anti-entropy message, so that one
	// fits an overlay frame (whose length field is 16 bits). HandleMessage
	// drops anything longer unread.
	MaxMessageSize = 64<<10 - 1

	// MaxDigestEntries bounds the entries of one DIGEST, and so
	// Config.DigestChunk. A full DIGEST is 41,027 bytes.
	MaxDigestEntries = 1024

	// digestHeaderLen is type, From, To and the entry count.
	digestHeaderLen = 1 + 2*identity.IDLen + 2
	// digestEntryLen is one (id, seq).
	digestEntryLen = identity.IDLen + 8
	// recordsHeaderLen is type and record count.
	recordsHeaderLen = 1 + 2
)

// DigestEntry says a node holds the record of ID with sequence Seq.
type DigestEntry struct {
	ID  identity.NodeID
	Seq uint64
}

// Digest lists every record its sender holds with an ID in [From, To]
// (inclusive), sorted by ID.
type Digest struct {
	From, To identity.NodeID
	Entries  []DigestEntry
}

// AppendDigest appends d's encoding to b. It refuses, wrapping
// ErrMalformed, a digest that ParseMessage would refuse.
func AppendDigest(b []byte, d Digest) ([]byte, error) {
	if err := d.validate(); err != nil {
		return b, err
	}
	b = append(b, byte(MsgDigest))
	b = append(b, d.From[:]...)
	b = append(b, d.To[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.Entries)))
	for _, e := range d.Entries {
		b = append(b, e.ID[:]...)
		b = binary.BigEndian.AppendUint64(b, e.Seq)
	}
	return b, nil
}

// validate checks the range, the bound and the order of the entries.
func (d Digest) validate() error {
	if bytes.Compare(d.From[:], d.To[:]) > 0 {
		return fmt.Errorf("%w: digest range from %x above to %x", ErrMalformed, d.From[:4], d.To[:4])
	}
	if len(d.Entries) > MaxDigestEntries {
		return fmt.Errorf("%w: digest of %d entries, at most %d", ErrOversized, len(d.Entries), MaxDigestEntries)
	}
	for i, e := range d.Entries {
		if e.ID.IsZero() {
			return fmt.Errorf("%w: zero ID in digest", ErrMalformed)
		}
		if bytes.Compare(e.ID[:], d.From[:]) < 0 || bytes.Compare(e.ID[:], d.To[:]) > 0 {
			return fmt.Errorf("%w: digest entry %s outside its range", ErrMalformed, e.ID.Short())
		}
		if i > 0 && bytes.Compare(d.Entries[i-1].ID[:], e.ID[:]) >= 0 {
			return fmt.Errorf("%w: digest entries not in strictly increasing ID order", ErrMalformed)
		}
	}
	return nil
}

// AppendRecords appends a RECORDS message carrying recs, each a signed
// record, to b. It refuses, wrapping ErrOversized or ErrMalformed, a list
// that ParseMessage would refuse: empty, a record over MaxRecordSize, or
// a message over MaxMessageSize.
func AppendRecords(b []byte, recs [][]byte) ([]byte, error) {
	if len(recs) == 0 {
		return b, fmt.Errorf("%w: RECORDS with no records", ErrMalformed)
	}
	size := recordsHeaderLen
	for _, r := range recs {
		if len(r) == 0 {
			return b, fmt.Errorf("%w: empty record in RECORDS", ErrMalformed)
		}
		if len(r) > MaxRecordSize {
			return b, fmt.Errorf("%w: record of %d bytes in RECORDS", ErrOversized, len(r))
		}
		size += 2 + len(r)
	}
	if size > MaxMessageSize {
		return b, fmt.Errorf("%w: RECORDS of %d bytes, at most %d", ErrOversized, size, MaxMessageSize)
	}
	b = append(b, byte(MsgRecords))
	b = binary.BigEndian.AppendUint16(b, uint16(len(recs)))
	for _, r := range recs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
	}
	return b, nil
}

// Message is one decoded anti-entropy message: a Digest for MsgDigest,
// Records for MsgRecords.
type Message struct {
	Type    MsgType
	Digest  Digest
	Records [][]byte // each an undecoded signed record of 1..MaxRecordSize bytes; slices of the input
}

// ParseMessage decodes one anti-entropy message. It checks the framing
// strictly (unknown type, truncation, trailing bytes, counts and sizes
// over their bounds, a DIGEST out of order or outside its range) but
// leaves the records of a RECORDS message to Parse. Records alias b.
func ParseMessage(b []byte) (Message, error) {
	if len(b) > MaxMessageSize {
		return Message{}, fmt.Errorf("%w: message of %d bytes, at most %d", ErrOversized, len(b), MaxMessageSize)
	}
	if len(b) == 0 {
		return Message{}, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	d := &reader{b: b[1:]}
	m := Message{Type: MsgType(b[0])}
	switch m.Type {
	case MsgDigest:
		m.Digest.From, m.Digest.To = d.id(), d.id()
		n := int(d.u16())
		if d.err == nil && n > MaxDigestEntries {
			return Message{}, fmt.Errorf("%w: digest of %d entries, at most %d", ErrOversized, n, MaxDigestEntries)
		}
		if d.err == nil && len(d.b) != n*digestEntryLen {
			return Message{}, fmt.Errorf("%w: digest of %d entries in %d bytes", ErrMalformed, n, len(d.b))
		}
		if n > 0 {
			m.Digest.Entries = make([]DigestEntry, n)
		}
		for i := range m.Digest.Entries {
			m.Digest.Entries[i] = DigestEntry{ID: d.id(), Seq: d.u64()}
		}
		if d.err != nil {
			return Message{}, d.err
		}
		if err := m.Digest.validate(); err != nil {
			return Message{}, err
		}
	case MsgRecords:
		n := int(d.u16())
		if d.err == nil && n == 0 {
			return Message{}, fmt.Errorf("%w: RECORDS with no records", ErrMalformed)
		}
		// Each record takes at least 3 bytes, so n is bounded by len(b).
		if d.err == nil && n > len(d.b)/3 {
			return Message{}, fmt.Errorf("%w: RECORDS of %d records in %d bytes", ErrMalformed, n, len(d.b))
		}
		m.Records = make([][]byte, 0, n)
		for range n {
			l := int(d.u16())
			if d.err == nil && l == 0 {
				return Message{}, fmt.Errorf("%w: empty record in RECORDS", ErrMalformed)
			}
			if l > MaxRecordSize {
				return Message{}, fmt.Errorf("%w: record of %d bytes in RECORDS", ErrOversized, l)
			}
			r := d.take(l)
			if d.err != nil {
				return Message{}, d.err
			}
			m.Records = append(m.Records, r)
		}
		if d.err != nil {
			return Message{}, d.err
		}
	default:
		return Message{}, fmt.Errorf("%w: message type %d", ErrMalformed, b[0])
	}
	if len(d.b) != 0 {
		return Message{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return m, nil
}
