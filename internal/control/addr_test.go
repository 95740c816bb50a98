package control

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestParseAddr(t *testing.T) {
	good := map[string][2]string{
		"unix:/tmp/x.sock": {"unix", "/tmp/x.sock"},
		"127.0.0.1:9000":   {"tcp", "127.0.0.1:9000"},
		"[::1]:9000":       {"tcp", "[::1]:9000"},
		"localhost:9000":   {"tcp", "localhost:9000"},
	}
	for in, want := range good {
		n, a, err := ParseAddr(in)
		if err != nil || n != want[0] || a != want[1] {
			t.Errorf("ParseAddr(%q) = %q, %q, %v; want %q, %q", in, n, a, err, want[0], want[1])
		}
	}
	for _, in := range []string{"", "unix:", "0.0.0.0:9000", "192.0.2.1:80", "example.com:80", "nocolon"} {
		if _, _, err := ParseAddr(in); !errors.Is(err, ErrBadAddr) {
			t.Errorf("ParseAddr(%q): err = %v, want ErrBadAddr", in, err)
		}
	}
}

func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestListenUnix(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "sub", "c.sock")
	ln, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v (%v), want 0600", st.Mode().Perm(), err)
	}
	dst, _ := os.Stat(filepath.Dir(path))
	if dst.Mode().Perm()&0o077 != 0 {
		t.Fatalf("socket folder mode = %v, want no group or other access", dst.Mode().Perm())
	}

	t.Run("live_socket_refused", func(t *testing.T) {
		if l2, err := Listen("unix:" + path); err == nil {
			l2.Close()
			t.Fatal("a second listener took over a live control socket")
		}
	})

	t.Run("stale_socket_replaced", func(t *testing.T) {
		stale := filepath.Join(dir, "stale.sock")
		// A socket file with no listener behind it, as a killed node leaves.
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		if _, err := os.Stat(stale); err != nil {
			t.Fatalf("stale socket file missing: %v", err)
		}
		l2, err := Listen("unix:" + stale)
		if err != nil {
			t.Fatalf("stale socket not replaced: %v", err)
		}
		l2.Close()
	})
	ln.Close()
}
