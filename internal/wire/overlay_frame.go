package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Overlay protocol messages (membership and broadcast) travel between two
// nodes on one stream per direction, opened to the reserved service
// OverlayService. Each message is one frame:
//
//	 0               1               2               3
//	+---------------+---------------+---------------+-----------...
//	| layer         | length (2 bytes, big endian)  | message (length bytes)
//	+---------------+---------------+---------------+-----------...
//
// layer is LayerMembership, LayerBroadcast or LayerRegistry (anti-entropy;
// records themselves travel by broadcast); the message is that layer's own
// encoding. length is 1..MaxOverlayMessage.

// OverlayService is the service name overlay streams are opened to. Names
// starting with "mycelium." are reserved for the node's own services.
const OverlayService = "mycelium.overlay"

// ReservedServicePrefix marks service names a user may not Listen on.
const ReservedServicePrefix = "mycelium."

// Overlay layers.
const (
	LayerMembership = 1
	LayerBroadcast  = 2
	LayerRegistry   = 3
)

func knownLayer(l byte) bool { return l >= LayerMembership && l <= LayerRegistry }

// MaxOverlayMessage bounds one overlay message: a broadcast payload of up
// to 64 KiB plus its header fits.
const MaxOverlayMessage = 65535

// OverlayFrameHeaderLen is the frame header's size.
const OverlayFrameHeaderLen = 3

// ErrBadOverlayFrame is returned for a malformed overlay frame.
var ErrBadOverlayFrame = errors.New("wire: bad overlay frame")

// AppendOverlayFrame appends one frame carrying msg for layer.
func AppendOverlayFrame(b []byte, layer byte, msg []byte) ([]byte, error) {
	if !knownLayer(layer) {
		return b, fmt.Errorf("%w: layer %d", ErrBadOverlayFrame, layer)
	}
	if len(msg) == 0 || len(msg) > MaxOverlayMessage {
		return b, fmt.Errorf("%w: message of %d bytes, want 1..%d", ErrBadOverlayFrame, len(msg), MaxOverlayMessage)
	}
	b = append(b, layer)
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...), nil
}

// ReadOverlayFrame reads one frame from r into buf (which must hold
// MaxOverlayMessage bytes) and returns the layer and the message, a slice
// of buf. It reads no byte past the frame. io.EOF means r ended cleanly
// between frames.
func ReadOverlayFrame(r io.Reader, buf []byte) (layer byte, msg []byte, err error) {
	var h [OverlayFrameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:1]); err != nil {
		return 0, nil, err // io.EOF: clean end between frames
	}
	if _, err := io.ReadFull(r, h[1:]); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrBadOverlayFrame, err)
	}
	layer = h[0]
	n := int(binary.BigEndian.Uint16(h[1:]))
	if !knownLayer(layer) {
		return 0, nil, fmt.Errorf("%w: layer %d", ErrBadOverlayFrame, layer)
	}
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: empty message", ErrBadOverlayFrame)
	}
	if len(buf) < n {
		return 0, nil, fmt.Errorf("%w: buffer of %d bytes for a %d-byte message", ErrBadOverlayFrame, len(buf), n)
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrBadOverlayFrame, err)
	}
	return layer, buf[:n], nil
}
