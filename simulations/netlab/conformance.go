package netlab

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"
)

// MakePair returns two UDP sockets that can reach each other at their
// LocalAddr. The suite closes both; anything else mk makes it should
// clean up with t.Cleanup.
type MakePair func(t *testing.T) (a, b net.PacketConn)

// TestPacketConn checks that the sockets mk makes behave as a
// *net.UDPConn does, one subtest per behaviour: source addresses,
// datagram boundaries, truncation into a short buffer, read and write
// deadlines (past, future, cleared, changed during a read), Close
// unblocking a read with net.ErrClosed, use after Close, and LocalAddr.
// The suite passes for real UDP sockets on 127.0.0.1 and for netlab.
func TestPacketConn(t *testing.T, mk MakePair) {
	t.Helper()
	TestPacketConnIn(t, mk, nil)
}

// TestPacketConnIn is TestPacketConn with each subtest's body run through
// run, such as synctest.Test, so that each gets a bubble of its own and
// mk runs inside it. A nil run calls the body directly.
func TestPacketConnIn(t *testing.T, mk MakePair, run func(*testing.T, func(*testing.T))) {
	t.Helper()
	for _, tc := range conformanceCases() {
		t.Run(tc.name, func(t *testing.T) {
			body := func(t *testing.T) {
				a, b := mk(t)
				defer a.Close()
				defer b.Close()
				tc.run(t, a, b)
			}
			if run == nil {
				body(t)
				return
			}
			run(t, body)
		})
	}
}

type conformanceCase struct {
	name string
	run  func(t *testing.T, a, b net.PacketConn)
}

// guard bounds every read the suite expects to succeed, so a lost
// datagram fails the test rather than hanging it.
const guard = 10 * time.Second

func conformanceCases() []conformanceCase {
	return []conformanceCase{
		{"local_addr", func(t *testing.T, a, b net.PacketConn) {
			for _, c := range []net.PacketConn{a, b} {
				ua, ok := c.LocalAddr().(*net.UDPAddr)
				if !ok {
					t.Fatalf("LocalAddr is %T, want *net.UDPAddr", c.LocalAddr())
				}
				if ua.Network() != "udp" || ua.Port == 0 || ua.IP == nil || ua.IP.IsUnspecified() {
					t.Fatalf("LocalAddr %v (network %q): want a udp address with an IP and a port", ua, ua.Network())
				}
			}
			if sameAddr(a.LocalAddr(), b.LocalAddr()) {
				t.Fatalf("both sockets have address %v", a.LocalAddr())
			}
		}},
		{"source_address", func(t *testing.T, a, b net.PacketConn) {
			ctSend(t, a, b.LocalAddr(), "ping")
			got, from := ctRecv(t, b, 100)
			if got != "ping" || !sameAddr(from, a.LocalAddr()) {
				t.Fatalf("b read %q from %v, want %q from %v", got, from, "ping", a.LocalAddr())
			}
			if _, ok := from.(*net.UDPAddr); !ok {
				t.Fatalf("ReadFrom returned a %T, want *net.UDPAddr", from)
			}
			ctSend(t, b, from, "pong") // answer the address as returned
			got, from = ctRecv(t, a, 100)
			if got != "pong" || !sameAddr(from, b.LocalAddr()) {
				t.Fatalf("a read %q from %v, want %q from %v", got, from, "pong", b.LocalAddr())
			}
		}},
		{"datagram_boundaries", func(t *testing.T, a, b net.PacketConn) {
			msgs := []string{"one", "", string(bytes.Repeat([]byte{0xa5}, 1000)), "four"}
			for _, m := range msgs {
				ctSend(t, a, b.LocalAddr(), m)
			}
			for i, want := range msgs {
				if got, _ := ctRecv(t, b, 2048); got != want {
					t.Fatalf("datagram %d: read %d bytes, want %d (%.10q)", i, len(got), len(want), want)
				}
			}
		}},
		{"short_buffer_truncates", func(t *testing.T, a, b net.PacketConn) {
			long := make([]byte, 100)
			for i := range long {
				long[i] = byte(i)
			}
			ctSend(t, a, b.LocalAddr(), string(long))
			buf := make([]byte, 10)
			guardRead(t, b)
			n, from, err := b.ReadFrom(buf)
			// Linux and the BSDs truncate silently; Windows reports
			// WSAEMSGSIZE with the truncated datagram.
			if err != nil && runtime.GOOS != "windows" {
				t.Fatalf("ReadFrom into a short buffer: %v, want the datagram truncated and no error", err)
			}
			if n != len(buf) || !bytes.Equal(buf, long[:len(buf)]) || !sameAddr(from, a.LocalAddr()) {
				t.Fatalf("ReadFrom into %d bytes: n=%d %v from %v, want the first %d bytes from %v", len(buf), n, buf[:n], from, len(buf), a.LocalAddr())
			}
			ctSend(t, a, b.LocalAddr(), "next")
			if got, _ := ctRecv(t, b, 100); got != "next" {
				t.Fatalf("after a truncated read, read %q, want %q: the rest of a datagram must be discarded", got, "next")
			}
		}},
		{"read_deadline_past_then_cleared", func(t *testing.T, a, b net.PacketConn) {
			ctSend(t, a, b.LocalAddr(), "queued")
			mustSet(t, b.SetReadDeadline(time.Now().Add(-time.Second)))
			n, from, err := b.ReadFrom(make([]byte, 100))
			mustTimeout(t, "ReadFrom with a deadline in the past", n, from, err)
			mustSet(t, b.SetReadDeadline(time.Time{}))
			if got, _ := ctRecv(t, b, 100); got != "queued" {
				t.Fatalf("after clearing the deadline, read %q, want %q", got, "queued")
			}
		}},
		{"read_deadline_future_expires", func(t *testing.T, a, b net.PacketConn) {
			deadline := time.Now().Add(50 * time.Millisecond)
			mustSet(t, b.SetReadDeadline(deadline))
			n, from, err := b.ReadFrom(make([]byte, 100))
			mustTimeout(t, "ReadFrom with a 50 ms deadline", n, from, err)
			if now := time.Now(); now.Before(deadline) {
				t.Fatalf("ReadFrom timed out %v before its deadline", deadline.Sub(now))
			}
		}},
		{"read_deadline_future_data_first", func(t *testing.T, a, b net.PacketConn) {
			mustSet(t, b.SetReadDeadline(time.Now().Add(guard)))
			ctSend(t, a, b.LocalAddr(), "in time")
			n, _, err := b.ReadFrom(make([]byte, 100))
			if err != nil || n != len("in time") {
				t.Fatalf("ReadFrom before its deadline: n=%d err=%v, want %d bytes", n, err, len("in time"))
			}
		}},
		{"deadline_set_during_read", func(t *testing.T, a, b net.PacketConn) {
			done := readAsync(b)
			mustSet(t, b.SetReadDeadline(time.Now()))
			r := <-done
			mustTimeout(t, "ReadFrom blocked when the deadline passed", r.n, r.from, r.err)
			mustSet(t, b.SetReadDeadline(time.Time{}))
			ctSend(t, a, b.LocalAddr(), "still works")
			if got, _ := ctRecv(t, b, 100); got != "still works" {
				t.Fatalf("after the timeout, read %q", got)
			}
		}},
		{"close_unblocks_read", func(t *testing.T, a, b net.PacketConn) {
			done := readAsync(b)
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			r := <-done
			if r.n != 0 || r.from != nil || !errors.Is(r.err, net.ErrClosed) {
				t.Fatalf("ReadFrom during Close: n=%d from=%v err=%v, want net.ErrClosed", r.n, r.from, r.err)
			}
		}},
		{"use_after_close", func(t *testing.T, a, b net.PacketConn) {
			if err := a.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := a.WriteTo([]byte("x"), b.LocalAddr()); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("WriteTo after Close: %v, want net.ErrClosed", err)
			}
			if _, _, err := a.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("ReadFrom after Close: %v, want net.ErrClosed", err)
			}
			if err := a.SetReadDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("SetReadDeadline after Close: %v, want net.ErrClosed", err)
			}
			if err := a.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("second Close: %v, want net.ErrClosed", err)
			}
		}},
		{"write_deadline", func(t *testing.T, a, b net.PacketConn) {
			mustSet(t, a.SetWriteDeadline(time.Now().Add(-time.Second)))
			_, err := a.WriteTo([]byte("late"), b.LocalAddr())
			mustTimeout(t, "WriteTo with a deadline in the past", 0, nil, err)
			mustSet(t, a.SetWriteDeadline(time.Time{}))
			ctSend(t, a, b.LocalAddr(), "on time")
			if got, _ := ctRecv(t, b, 100); got != "on time" {
				t.Fatalf("read %q, want %q (the timed-out write must send nothing)", got, "on time")
			}
		}},
		{"set_deadline_sets_both", func(t *testing.T, a, b net.PacketConn) {
			mustSet(t, a.SetDeadline(time.Now().Add(-time.Second)))
			n, from, err := a.ReadFrom(make([]byte, 10))
			mustTimeout(t, "ReadFrom after SetDeadline in the past", n, from, err)
			_, err = a.WriteTo([]byte("x"), b.LocalAddr())
			mustTimeout(t, "WriteTo after SetDeadline in the past", 0, nil, err)
			mustSet(t, a.SetDeadline(time.Time{}))
			ctSend(t, a, b.LocalAddr(), "cleared")
			if got, _ := ctRecv(t, b, 100); got != "cleared" {
				t.Fatalf("read %q, want %q", got, "cleared")
			}
		}},
		{"concurrent_readers", func(t *testing.T, a, b net.PacketConn) {
			mustSet(t, b.SetReadDeadline(time.Now().Add(guard)))
			d1, d2 := readAsync(b), readAsync(b)
			ctSend(t, a, b.LocalAddr(), "x")
			ctSend(t, a, b.LocalAddr(), "y")
			r1, r2 := <-d1, <-d2
			if r1.err != nil || r2.err != nil {
				t.Fatalf("concurrent reads: %v, %v", r1.err, r2.err)
			}
			got := []string{r1.data, r2.data}
			slices.Sort(got)
			if !slices.Equal(got, []string{"x", "y"}) {
				t.Fatalf("two readers got %q, want x and y once each", got)
			}
		}},
		{"write_to_non_udp_addr", func(t *testing.T, a, b net.PacketConn) {
			if _, err := a.WriteTo([]byte("x"), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err == nil {
				t.Fatal("WriteTo a *net.TCPAddr succeeded, want an error")
			}
		}},
	}
}

type readResult struct {
	n    int
	data string
	from net.Addr
	err  error
}

// readAsync reads one datagram in a goroutine of its own.
func readAsync(c net.PacketConn) <-chan readResult {
	done := make(chan readResult, 1)
	go func() {
		buf := make([]byte, 2048)
		n, from, err := c.ReadFrom(buf)
		done <- readResult{n, string(buf[:n]), from, err}
	}()
	return done
}

func ctSend(t *testing.T, from net.PacketConn, to net.Addr, msg string) {
	t.Helper()
	if n, err := from.WriteTo([]byte(msg), to); err != nil || n != len(msg) {
		t.Fatalf("WriteTo %v: n=%d err=%v, want %d bytes", to, n, err, len(msg))
	}
}

// ctRecv reads one datagram of at most size bytes, within guard.
func ctRecv(t *testing.T, c net.PacketConn, size int) (string, net.Addr) {
	t.Helper()
	guardRead(t, c)
	buf := make([]byte, size)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("ReadFrom on %v: %v", c.LocalAddr(), err)
	}
	mustSet(t, c.SetReadDeadline(time.Time{}))
	return string(buf[:n]), from
}

func guardRead(t *testing.T, c net.PacketConn) {
	t.Helper()
	mustSet(t, c.SetReadDeadline(time.Now().Add(guard)))
}

func mustSet(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("setting a deadline: %v", err)
	}
}

func mustTimeout(t *testing.T, what string, n int, from net.Addr, err error) {
	t.Helper()
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: err=%v, want os.ErrDeadlineExceeded and a net.Error whose Timeout is true", what, err)
	}
	if n != 0 || from != nil {
		t.Fatalf("%s: n=%d from=%v with the timeout, want 0 and nil", what, n, from)
	}
}

// sameAddr compares UDP addresses as address and port, so that an IPv4
// address in its 16-byte form matches its 4-byte form.
func sameAddr(x, y net.Addr) bool {
	ux, ok1 := x.(*net.UDPAddr)
	uy, ok2 := y.(*net.UDPAddr)
	if !ok1 || !ok2 {
		return false
	}
	return unmap(ux.AddrPort()) == unmap(uy.AddrPort())
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
