package mycelium

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

// startNode starts a loopback node that the caller must Close. Unlike
// newTestNode it registers no cleanup, so a nettest pipe can own it.
func startNode(mutate ...func(*Config)) (*Node, error) {
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	cfg := DefaultConfig()
	cfg.Key = key
	cfg.ListenAddr = "127.0.0.1:0"
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	return n, nil
}

// makeStreamPipe is a nettest.MakePipe over two fresh nodes: c1 is the
// dialed side of a mycelium stream, c2 the accepted side. stop closes both
// ends, the listener and both nodes.
func makeStreamPipe() (c1, c2 net.Conn, stop func(), err error) {
	var closers []func()
	stop = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	cleanup := stop
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	a, err := startNode()
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, func() { a.Close() })
	b, err := startNode()
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, func() { b.Close() })
	l, err := b.Listen("pipe")
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, func() { l.Close() })
	if err := a.AddPeerAddr(b.ID(), b.LocalAddr()); err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Dial returns once b has queued the stream for Accept, so Accept
	// below does not block.
	c1, err = a.Dial(ctx, b.ID(), "pipe")
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, func() { c1.Close() })
	c2, err = l.Accept()
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, func() { c2.Close() })
	return c1, c2, stop, nil
}

// TestStreamConnConformance runs x/net's net.Conn conformance suite on a
// mycelium stream. (The suite names its own subtests in CamelCase.)
func TestStreamConnConformance(t *testing.T) {
	leakcheck.Check(t)
	nettest.TestConn(t, makeStreamPipe)
}

// The suite checks only that Close ends blocked calls. These check what
// they return, and the half-close the suite cannot see.
func TestStreamConnCloseSemantics(t *testing.T) {
	leakcheck.Check(t)
	pipe := func(t *testing.T) (c1, c2 net.Conn) {
		c1, c2, stop, err := makeStreamPipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return c1, c2
	}

	t.Run("close_unblocks_read_with_err_closed", func(t *testing.T) {
		c1, _ := pipe(t)
		errc := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			close(started)
			_, err := c1.Read(make([]byte, 16))
			errc <- err
		}()
		<-started
		// Read may not have blocked yet; either way it must end with
		// net.ErrClosed, never hang or report success.
		if err := c1.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after Close: err = %v, want net.ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Read still blocked 10s after Close")
		}
	})

	t.Run("close_unblocks_write_with_err_closed", func(t *testing.T) {
		c1, _ := pipe(t) // nobody reads c2, so flow control blocks Write
		errc := make(chan error, 1)
		go func() {
			buf := make([]byte, 64<<10)
			var err error
			for err == nil {
				_, err = c1.Write(buf)
			}
			errc <- err
		}()
		if err := c1.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Write after Close: err = %v, want net.ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Write still blocked 10s after Close")
		}
	})

	t.Run("deadline_error_is_timeout", func(t *testing.T) {
		c1, _ := pipe(t)
		c1.SetReadDeadline(time.Now().Add(-time.Second))
		_, err := c1.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read past deadline: err = %v (%T), want a net.Error with Timeout() matching os.ErrDeadlineExceeded", err, err)
		}
	})

	t.Run("close_after_peer_closed_is_nil", func(t *testing.T) {
		c1, c2 := pipe(t)
		if err := c2.Close(); err != nil {
			t.Fatal(err)
		}
		// c2's Close stops c1's sending (STOP_SENDING). Write until
		// that arrives, so c1's Close below meets a reset write side.
		c1.SetWriteDeadline(time.Now().Add(replyTimeout))
		var err error
		for err == nil {
			_, err = c1.Write(make([]byte, 1024))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the peer's Close never reached c1")
		}
		if err := c1.Close(); err != nil {
			t.Fatalf("Close after the peer closed: %v, want nil", err)
		}
		if err := c1.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close: %v, want net.ErrClosed", err)
		}
	})

	t.Run("close_write_then_peer_reads_eof_and_replies", func(t *testing.T) {
		c1, c2 := pipe(t)
		if _, err := c1.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if err := c1.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 8)
		n, err := readAllInto(c2, got)
		if err != nil || string(got[:n]) != "ping" {
			t.Fatalf("c2 read %q, %v; want \"ping\", EOF", got[:n], err)
		}
		if _, err := c2.Write([]byte("pong")); err != nil {
			t.Fatalf("c2 reply after c1's CloseWrite: %v", err)
		}
		c2.Close()
		n, err = readAllInto(c1, got)
		if err != nil || string(got[:n]) != "pong" {
			t.Fatalf("c1 read %q, %v; want \"pong\", EOF", got[:n], err)
		}
		if _, err := c1.Write([]byte("x")); err == nil {
			t.Fatal("Write after CloseWrite succeeded")
		}
	})
}

// readAllInto reads r to EOF into buf and returns the count; EOF is not an
// error. It fails if buf fills before EOF.
func readAllInto(r io.Reader, buf []byte) (int, error) {
	n := 0
	for {
		if n == len(buf) {
			return n, errors.New("buffer full before EOF")
		}
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
