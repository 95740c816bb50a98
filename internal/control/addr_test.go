package control

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
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
	umask := setUmask(0o022)
	setUmask(umask)
	ln, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	if after := setUmask(umask); after != umask {
		t.Fatalf("umask after Listen = %#o, want %#o restored", after, umask)
	}
	// Where the umask is used, Listen never chmods: this mode is the one
	// the socket was born with, so there is no moment when group or
	// others may connect.
	st, err := os.Lstat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v (%v), want a socket with mode 0600", st.Mode(), err)
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

	t.Run("other_file_refused", func(t *testing.T) {
		key := filepath.Join(dir, "node.key")
		content := []byte("secret key\n")
		if err := os.WriteFile(key, content, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Listen("unix:" + key)
		if err == nil {
			l.Close()
			t.Fatal("Listen replaced a regular file")
		}
		if !strings.Contains(err.Error(), key) {
			t.Fatalf("error %q does not name %s", err, key)
		}
		if got, err := os.ReadFile(key); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("file at the path changed: %q, %v", got, err)
		}
		// Nor through a symlink to it, nor a folder.
		link := filepath.Join(dir, "link.sock")
		if err := os.Symlink(key, link); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{link, filepath.Join(dir, "sub")} {
			if l, err := Listen("unix:" + p); err == nil {
				l.Close()
				t.Fatalf("Listen replaced %s", p)
			}
			if _, err := os.Lstat(p); err != nil {
				t.Fatalf("%s gone: %v", p, err)
			}
		}
		if got, _ := os.ReadFile(key); !bytes.Equal(got, content) {
			t.Fatalf("file behind the symlink changed: %q", got)
		}
	})
	ln.Close()
}
