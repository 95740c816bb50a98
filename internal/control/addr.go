// Package control is the local control API of a running node: HTTP with JSON
// bodies over a unix socket (or a loopback TCP port), through which the
// `mycelium` commands talk to a node started with `mycelium node`.
//
// Endpoints (all under /v1):
//
//	GET  /v1/status   node ID, listen addresses, peers, services, counters,
//	                  exposes and forwards (Status)
//	POST /v1/expose   ExposeRequest: forward streams for a service to a local
//	                  TCP address, or stop (Remove)
//	POST /v1/forward  ForwardRequest: listen on a local TCP port and carry each
//	                  connection to a remote service, or stop (Remove)
//	POST /v1/dial     DialRequest with "Upgrade: mycelium-stream": on success
//	                  the answer is 101 Switching Protocols and the HTTP
//	                  connection carries the stream: raw bytes towards the
//	                  node (half-closed at their end), framed bytes back, so
//	                  that the end can say clean or failed (frames.go)
//
// Errors come back as an Error object ({"error": "...", "code": "..."}) with
// a 4xx or 5xx status. Request bodies are limited to MaxBodySize and unknown
// JSON fields are refused.
//
// The API has no authentication: whoever can connect controls the node. A
// unix socket is created with mode 0600 in a 0700 folder; a TCP address
// must be on loopback. Because a web page can make a browser send requests
// to loopback (cross-site requests, DNS rebinding), every request must
// also look like one from the mycelium client rather than a browser:
//
//   - no Origin header (403, code "forbidden");
//   - a Host header of "mycelium", "localhost" or a loopback IP, with or
//     without a port (403, code "forbidden");
//   - on POST, Content-Type: application/json (415, code "bad_request").
//
// Client sends Host "mycelium" and Content-Type application/json.
package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// EnvControl names the environment variable holding the control address.
const EnvControl = "MYCELIUM_CONTROL"

// EnvHome names the environment variable holding the node's state folder
// (default ~/.mycelium).
const EnvHome = "MYCELIUM_HOME"

// Home returns the state folder: $MYCELIUM_HOME, else ~/.mycelium.
func Home() string {
	if h := os.Getenv(EnvHome); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".mycelium")
	}
	return ".mycelium"
}

// DefaultAddr is the control address used when none is given:
// $MYCELIUM_CONTROL, else unix:<Home>/control.sock.
func DefaultAddr() string {
	if a := os.Getenv(EnvControl); a != "" {
		return a
	}
	return "unix:" + filepath.Join(Home(), "control.sock")
}

// ErrBadAddr is returned for a control address that cannot be used.
var ErrBadAddr = errors.New("control: bad control address")

// ParseAddr splits a control address into a network and an address:
// "unix:PATH" or "HOST:PORT". A TCP address must be on loopback: the API
// has no authentication, so it must not be reachable from other machines.
func ParseAddr(s string) (network, address string, err error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if path == "" {
			return "", "", fmt.Errorf("%w: %q has an empty path", ErrBadAddr, s)
		}
		return "unix", path, nil
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("%w: %q is neither unix:PATH nor HOST:PORT", ErrBadAddr, s)
	}
	if host == "localhost" {
		return "tcp", s, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", "", fmt.Errorf("%w: %q: a TCP control address must be on loopback (127.0.0.1, [::1] or localhost)", ErrBadAddr, s)
	}
	return "tcp", s, nil
}

// Listen opens the control listener.
//
// A unix socket is created with mode 0600 (never, even for an instant,
// accessible to group or others) in a folder created with mode 0700. A
// socket file left by a node that died (nothing answers on it) is replaced;
// a live one is an error, and so is any other file at the path, which is
// left alone.
//
// To create the socket with mode 0600, Listen sets the process's umask to
// 0177 around the bind and then restores it (on unix systems). The umask is process-wide:
// files created meanwhile by other goroutines get the restrictive mask too,
// so Listen is meant to be called once, at startup.
func Listen(addr string) (net.Listener, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if network != "unix" {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, fmt.Errorf("control: listen %s: %w", addr, err)
		}
		return ln, nil
	}
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := removeStaleSocket(address); err != nil {
		return nil, err
	}
	old := setUmask(0o177)
	ln, err := net.Listen("unix", address)
	setUmask(old)
	if err != nil {
		return nil, fmt.Errorf("control: listen %s: %w", addr, err)
	}
	if !haveUmask {
		if err := os.Chmod(address, 0o600); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control: %w", err)
		}
	}
	return ln, nil
}

// removeStaleSocket clears the way for a socket at path: nothing there is
// fine, a socket nothing answers on is removed, a live socket or any other
// kind of file is an error.
func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if st.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("control: %s exists and is not a socket; refusing to replace it (choose another --control path)", path)
	}
	c, err := net.Dial("unix", path)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("control: another node is already running at unix:%s", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		// Stale: left by a node that died.
	case errors.Is(err, syscall.ENOENT):
		return nil // gone meanwhile
	default:
		return fmt.Errorf("control: socket %s exists and cannot be checked: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control: removing stale socket: %w", err)
	}
	return nil
}
