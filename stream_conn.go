package mycelium

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// streamConn is a QUIC stream as a net.Conn with half-close.
type streamConn struct {
	s             *quic.Stream
	local, remote Addr

	// wmu serialises Write against the stream's Close: quic-go forbids
	// calling them concurrently.
	wmu sync.Mutex

	closeOnce sync.Once
	closed    chan struct{}
	release   func() // uncounts the stream on its connection
}

var _ net.Conn = (*streamConn)(nil)

func newStreamConn(s *quic.Stream, local, remote Addr, release func()) *streamConn {
	return &streamConn{s: s, local: local, remote: remote, closed: make(chan struct{}), release: release}
}

func (c *streamConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Read reads from the stream. After the peer's CloseWrite it returns io.EOF;
// after Close, net.ErrClosed; after the peer's Reset, ErrStreamReset.
func (c *streamConn) Read(b []byte) (int, error) {
	n, err := c.s.Read(b)
	return n, c.mapErr(err)
}

// Write writes to the stream. After Close or CloseWrite it fails; after the
// peer's Reset, with ErrStreamReset.
func (c *streamConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.s.Write(b)
	return n, c.mapErr(err)
}

func (c *streamConn) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if c.isClosed() {
		return net.ErrClosed
	}
	var serr *quic.StreamError
	if errors.As(err, &serr) && serr.Remote && serr.ErrorCode == streamCodeReset {
		return fmt.Errorf("%w by %s", ErrStreamReset, c.remote)
	}
	return err
}

// Reset ends the stream abruptly in both directions: data not yet sent is
// dropped, and the peer's Read and Write fail with ErrStreamReset instead
// of seeing a clean end. A service uses it when it cannot serve a stream it
// accepted (the control API's expose does when its TCP target is down).
func (c *streamConn) Reset() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.closed)
		c.s.SetWriteDeadline(time.Unix(1, 0))
		c.s.CancelRead(streamCodeReset)
		c.wmu.Lock()
		defer c.wmu.Unlock()
		c.s.CancelWrite(streamCodeReset)
		err = nil
		c.release()
	})
	return err
}

// CloseWrite ends the write direction: the peer reads io.EOF after the data
// already written. Reading goes on.
func (c *streamConn) CloseWrite() error {
	if c.isClosed() {
		return net.ErrClosed
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.s.Close()
}

// CloseRead tells the peer to stop sending. Writing goes on.
func (c *streamConn) CloseRead() error {
	if c.isClosed() {
		return net.ErrClosed
	}
	c.s.CancelRead(streamCodeClosed)
	return nil
}

// Close closes both directions. Data already written is still delivered;
// blocked Reads and Writes return net.ErrClosed. It is idempotent.
func (c *streamConn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() {
		close(c.closed)
		// Unblock a concurrent Write without discarding what it already
		// queued, then send FIN after the queued data.
		c.s.SetWriteDeadline(time.Unix(1, 0))
		c.s.CancelRead(streamCodeClosed)
		c.wmu.Lock()
		defer c.wmu.Unlock()
		// quic-go's Close fails only when the write side was already
		// reset, here by the peer's STOP_SENDING (it closed its end
		// first). Nothing is left to finish then, so closing succeeded.
		// (The error is a plain string, not a *quic.StreamError.)
		c.s.Close()
		err = nil
		c.release()
	})
	return err
}

func (c *streamConn) LocalAddr() net.Addr                { return c.local }
func (c *streamConn) RemoteAddr() net.Addr               { return c.remote }
func (c *streamConn) SetDeadline(t time.Time) error      { return c.s.SetDeadline(t) }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.s.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.s.SetWriteDeadline(t) }
