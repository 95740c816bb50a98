package pipe

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// Two TCP connections joined by Splice carry bytes both ways, and a
// half-close on one end reaches the other.
func TestSplice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (client, server net.Conn) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	}
	left, leftInner := pair()
	rightInner, right := pair()
	done := make(chan [2]int64, 1)
	go func() { ab, ba := Splice(leftInner, rightInner); done <- [2]int64{ab, ba} }()

	want := bytes.Repeat([]byte("x"), 100_000)
	go func() { left.Write(want); left.(*net.TCPConn).CloseWrite() }()
	got, err := io.ReadAll(right)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("left->right: %d bytes, %v", len(got), err)
	}
	right.Write([]byte("back"))
	right.(*net.TCPConn).CloseWrite()
	back, err := io.ReadAll(left)
	if err != nil || string(back) != "back" {
		t.Fatalf("right->left: %q, %v", back, err)
	}
	if n := <-done; n != [2]int64{100_000, 4} {
		t.Fatalf("Splice counted %v", n)
	}
	left.Close()
	right.Close()
}
