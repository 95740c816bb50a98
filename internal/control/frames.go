package control

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"unicode/utf8"
)

// After the 101 answer to /v1/dial, the client→node direction carries the
// stream's raw bytes (half-closed at its end), and the node→client direction
// is framed, so that its end can say whether the stream ended cleanly or
// with an error (a reset, a failed connection):
//
//	+-----------+-------------------+---------------------------+
//	| type (1B) | length (2B, BE)   | payload (length bytes)    |
//	+-----------+-------------------+---------------------------+
//
//	type 0 data:  1..65535 bytes of the stream
//	type 1 end:   length 0; the stream ended cleanly (EOF)
//	type 2 error: 1..1024 bytes of UTF-8, why the stream failed
//
// Nothing follows an end or error frame.

const (
	frameData  = 0
	frameEnd   = 1
	frameError = 2

	frameHeaderLen     = 3
	maxDataFrame       = 65535
	maxErrorFrame      = 1024
	errorFrameTruncate = "…"
)

// ErrBadFrame is returned for a malformed frame from the node.
var ErrBadFrame = errors.New("control: bad stream frame")

// RemoteError is a stream failure the node reported in an error frame.
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return e.Message }

func appendFrame(b []byte, typ byte, payload []byte) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(b, payload...)
}

// parseFrameHeader checks a frame header and returns its type and length.
func parseFrameHeader(h [frameHeaderLen]byte) (typ byte, n int, err error) {
	typ, n = h[0], int(binary.BigEndian.Uint16(h[1:]))
	switch {
	case typ == frameData && n == 0:
		return 0, 0, fmt.Errorf("%w: empty data frame", ErrBadFrame)
	case typ == frameEnd && n != 0:
		return 0, 0, fmt.Errorf("%w: end frame with %d bytes", ErrBadFrame, n)
	case typ == frameError && (n == 0 || n > maxErrorFrame):
		return 0, 0, fmt.Errorf("%w: error frame of %d bytes", ErrBadFrame, n)
	case typ > frameError:
		return 0, 0, fmt.Errorf("%w: type %d", ErrBadFrame, typ)
	}
	return typ, n, nil
}

// frameReader turns the framed node→client direction back into bytes.
type frameReader struct {
	r    io.Reader
	left int   // bytes left in the current data frame
	err  error // sticky: io.EOF after an end frame, else the failure
}

func (f *frameReader) Read(p []byte) (int, error) {
	for f.left == 0 {
		if f.err != nil {
			return 0, f.err
		}
		var h [frameHeaderLen]byte
		if _, err := io.ReadFull(f.r, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the node went away mid-stream
			}
			f.err = fmt.Errorf("control: stream cut: %w", err)
			return 0, f.err
		}
		typ, n, err := parseFrameHeader(h)
		if err != nil {
			f.err = err
			return 0, err
		}
		switch typ {
		case frameData:
			f.left = n
		case frameEnd:
			f.err = io.EOF
		case frameError:
			msg := make([]byte, n)
			if _, err := io.ReadFull(f.r, msg); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				f.err = fmt.Errorf("control: stream cut: %w", err)
				return 0, f.err
			}
			if !utf8.Valid(msg) {
				f.err = fmt.Errorf("%w: error message is not UTF-8", ErrBadFrame)
			} else {
				f.err = &RemoteError{Message: string(msg)}
			}
		}
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= n
	if err != nil && f.left > 0 {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		f.err = fmt.Errorf("control: stream cut: %w", err)
		return n, f.err
	}
	return n, nil
}

// writeFramed copies src to dst as data frames, then ends with an end
// frame on a clean EOF or an error frame, and half-closes dst.
func writeFramed(dst net.Conn, src io.Reader) error {
	buf := make([]byte, frameHeaderLen+32<<10)
	for {
		n, rerr := src.Read(buf[frameHeaderLen:])
		if n > 0 {
			buf[0] = frameData
			binary.BigEndian.PutUint16(buf[1:], uint16(n))
			if _, err := dst.Write(buf[:frameHeaderLen+n]); err != nil {
				return err
			}
		}
		if rerr == nil {
			continue
		}
		var last []byte
		if errors.Is(rerr, io.EOF) {
			last = appendFrame(nil, frameEnd, nil)
		} else {
			last = appendFrame(nil, frameError, []byte(truncateMessage(rerr.Error())))
		}
		_, err := dst.Write(last)
		if cw, ok := dst.(closeWriter); ok {
			cw.CloseWrite()
		}
		return err
	}
}

func truncateMessage(s string) string {
	if s == "" {
		s = "stream failed"
	}
	if len(s) <= maxErrorFrame {
		return s
	}
	cut := maxErrorFrame - len(errorFrameTruncate)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + errorFrameTruncate
}

// framedConn is the client's end of a dial: raw writes, framed reads.
type framedConn struct {
	net.Conn
	fr *frameReader
}

func (c *framedConn) Read(b []byte) (int, error) { return c.fr.Read(b) }

func (c *framedConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
