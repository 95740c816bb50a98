package echo

import (
	"net"
	"strings"
	"testing"
)

func TestRoundTripOverTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { Serve(l); close(done) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := RoundTrip(c, 1<<20); err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.Close()
	<-done
}

// A server that answers with other bytes is caught.
func TestRoundTripCatchesCorruption(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		buf := make([]byte, 10)
		n, _ := b.Read(buf)
		b.Write([]byte(strings.Repeat("x", n)))
		b.Close()
	}()
	if err := RoundTrip(halfCloser{a}, 10); err == nil {
		t.Fatal("corrupted echo passed")
	}
}

type halfCloser struct{ net.Conn }

func (h halfCloser) CloseWrite() error { return nil }

// Exchange checks each batch and leaves the stream open for the next;
// the last RoundTrip half-closes it.
func TestExchangeOverTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { Serve(l); close(done) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := Exchange(c, 64<<10); err != nil {
			t.Fatal(err)
		}
	}
	if err := RoundTrip(c, 1<<10); err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.Close()
	<-done
}

// Exchange catches a server that answers with other bytes.
func TestExchangeCatchesCorruption(t *testing.T) {
	a, b := net.Pipe()
	go func() {
		buf := make([]byte, 10)
		n, _ := b.Read(buf)
		b.Write([]byte(strings.Repeat("x", n)))
	}()
	if err := Exchange(a, 10); err == nil {
		t.Fatal("corrupted echo passed")
	}
	a.Close()
	b.Close()
}
