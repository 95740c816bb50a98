// Package echo is the echo service the demo and the tests use: a server that
// writes back what it reads, and a client check that sends random bytes and
// compares what comes back.
package echo

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"sync"
)

type closeWriter interface{ CloseWrite() error }

// Serve echoes every connection accepted on l until l is closed, then waits
// for the connections it is serving to end.
func Serve(l net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		wg.Go(func() { Handle(c) })
	}
}

// Handle echoes one connection: it copies until the peer half-closes, then
// half-closes its own side, then closes.
func Handle(c net.Conn) {
	defer c.Close()
	io.Copy(c, c)
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
	}
}

// RoundTrip sends size random bytes on c (which must support CloseWrite),
// half-closes, reads the echo to EOF and checks it byte for byte.
func RoundTrip(c net.Conn, size int) error {
	cw, ok := c.(closeWriter)
	if !ok {
		return fmt.Errorf("echo: %T cannot half-close", c)
	}
	want := make([]byte, size)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = cw.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-errc; werr != nil && err == nil {
		err = fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("echo: after %d of %d echoed bytes: %w", len(got), size, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("echo: reply differs: got %d bytes, sent %d", len(got), size)
	}
	return nil
}

// Exchange sends size random bytes on c, reads size bytes back and checks
// them byte for byte, and leaves c open for more.
func Exchange(c net.Conn, size int) error {
	want := make([]byte, size)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		errc <- err
	}()
	got := make([]byte, size)
	n, err := io.ReadFull(c, got)
	if werr := <-errc; werr != nil && err == nil {
		err = fmt.Errorf("write: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("echo: after %d of %d echoed bytes: %w", n, size, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("echo: reply differs in %d bytes", size)
	}
	return nil
}
