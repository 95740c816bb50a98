// Package wire holds mycelium's small binary codecs. Each codec is a pair of
// pure functions, AppendX and ParseX, with its size limits named as constants
// and a fuzz target beside it.
package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Every stream a node opens to a peer starts with a service header naming the
// service the stream is for. The accepting node answers with one status byte
// before any payload flows in either direction, so the dialer learns of a
// refusal at once instead of hanging.
//
//	 0               1               2
//	+---------------+---------------+-------------------------------+
//	| version (=1)  | name length N | service name (N bytes, 1..64) |
//	+---------------+---------------+-------------------------------+
//
//	reply:
//	+---------------+
//	| status        |
//	+---------------+
//
// A stream whose first byte is DrainedMarker instead of a version is not a
// service stream but a one-byte control message on a connection that lost a
// duplicate race: "I have no streams left on this connection and open none."
// It gets no reply.
//
//	+---------------+
//	| 0xD0          |
//	+---------------+
//
// A service name is 1 to 64 bytes of a-z, 0-9, '.', '_' and '-', starting
// with a letter or digit.

// ServiceHeaderVersion is the only header version this code speaks.
const ServiceHeaderVersion = 1

// DrainedMarker is the first and only byte of a drained control stream.
const DrainedMarker = 0xD0

// MaxServiceNameLen bounds a service name in bytes.
const MaxServiceNameLen = 64

// MaxServiceHeaderLen is the largest valid header: version, length, name.
const MaxServiceHeaderLen = 2 + MaxServiceNameLen

// Status is the accepting node's one-byte answer to a service header.
type Status byte

// Statuses. New ones may be added; an unknown status is a refusal.
const (
	StatusOK             Status = 0 // accepted: payload follows
	StatusUnknownService Status = 1 // nobody listens on that service here
	StatusBadHeader      Status = 2 // header malformed or of an unknown version
	StatusOverloaded     Status = 3 // the service's accept queue is full
	StatusRetry          Status = 4 // this connection is being replaced; use the other one
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusUnknownService:
		return "unknown service"
	case StatusBadHeader:
		return "bad stream header"
	case StatusOverloaded:
		return "service overloaded"
	case StatusRetry:
		return "connection being replaced"
	default:
		return fmt.Sprintf("status %d", byte(s))
	}
}

// Errors from the service header codec.
var (
	ErrBadServiceName = errors.New("wire: bad service name")
	ErrBadHeader      = errors.New("wire: bad service header")
)

// ValidateServiceName reports whether name may be used as a service name.
func ValidateServiceName(name string) error {
	if len(name) == 0 {
		return fmt.Errorf("%w: empty", ErrBadServiceName)
	}
	if len(name) > MaxServiceNameLen {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBadServiceName, len(name), MaxServiceNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("%w: %q: byte %d (%q) is not one of a-z 0-9 . _ - (names start with a letter or digit)", ErrBadServiceName, name, i, c)
		}
	}
	return nil
}

// AppendServiceHeader appends the header for service to b.
func AppendServiceHeader(b []byte, service string) ([]byte, error) {
	if err := ValidateServiceName(service); err != nil {
		return b, err
	}
	b = append(b, ServiceHeaderVersion, byte(len(service)))
	return append(b, service...), nil
}

// ParseServiceHeader decodes a complete header from b and returns the service
// name and the number of bytes used.
func ParseServiceHeader(b []byte) (service string, n int, err error) {
	if len(b) < 2 {
		return "", 0, fmt.Errorf("%w: %d bytes, need at least 2", ErrBadHeader, len(b))
	}
	if b[0] != ServiceHeaderVersion {
		return "", 0, fmt.Errorf("%w: version %d, want %d", ErrBadHeader, b[0], ServiceHeaderVersion)
	}
	l := int(b[1])
	if l == 0 || l > MaxServiceNameLen {
		return "", 0, fmt.Errorf("%w: name length %d, want 1..%d", ErrBadHeader, l, MaxServiceNameLen)
	}
	if len(b) < 2+l {
		return "", 0, fmt.Errorf("%w: truncated name (%d of %d bytes)", ErrBadHeader, len(b)-2, l)
	}
	name := string(b[2 : 2+l])
	if err := ValidateServiceName(name); err != nil {
		return "", 0, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	return name, 2 + l, nil
}

// StreamKind says what an inbound stream is for.
type StreamKind int

// Stream kinds.
const (
	KindService StreamKind = iota // a service stream: a service header follows
	KindDrained                   // a drained marker: nothing follows
)

// ReadStreamOpen reads the start of an inbound stream: either a drained
// marker or a service header, whose service name it returns. It reads no
// byte past either and at most MaxServiceHeaderLen bytes.
func ReadStreamOpen(r io.Reader) (StreamKind, string, error) {
	var first [1]byte
	if _, err := io.ReadFull(r, first[:]); err != nil {
		return 0, "", fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if first[0] == DrainedMarker {
		return KindDrained, "", nil
	}
	name, err := ReadServiceHeader(io.MultiReader(bytes.NewReader(first[:]), r))
	return KindService, name, err
}

// ReadServiceHeader reads one header from r, reading no byte past it and
// never more than MaxServiceHeaderLen bytes. The caller bounds the time.
func ReadServiceHeader(r io.Reader) (string, error) {
	var buf [MaxServiceHeaderLen]byte
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if buf[0] != ServiceHeaderVersion {
		return "", fmt.Errorf("%w: version %d, want %d", ErrBadHeader, buf[0], ServiceHeaderVersion)
	}
	l := int(buf[1])
	if l == 0 || l > MaxServiceNameLen {
		return "", fmt.Errorf("%w: name length %d, want 1..%d", ErrBadHeader, l, MaxServiceNameLen)
	}
	if _, err := io.ReadFull(r, buf[2:2+l]); err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	name, _, err := ParseServiceHeader(buf[:2+l])
	return name, err
}
