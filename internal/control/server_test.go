package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testServer(t *testing.T) *Server {
	t.Helper()
	s := NewServer(nil, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { s.Close() })
	return s
}

// TestGuard: requests a browser could send are refused before any
// handler runs; requests like the Client's pass.
func TestGuard(t *testing.T) {
	h := testServer(t).http.Handler
	tests := []struct {
		name, method, path, host, ctype, origin string
		status                                  int
		code                                    string
	}{
		// Passing the guard, a bad body is a 400 from the handler.
		{"client", "POST", "/v1/expose", "mycelium", "application/json", "", 400, CodeBadRequest},
		{"json_params", "POST", "/v1/expose", "mycelium", "application/json; charset=utf-8", "", 400, CodeBadRequest},
		{"ipv4_port", "POST", "/v1/expose", "127.0.0.1:4000", "application/json", "", 400, CodeBadRequest},
		{"ipv4", "POST", "/v1/expose", "127.0.0.1", "application/json", "", 400, CodeBadRequest},
		{"ipv4_loopback_net", "POST", "/v1/expose", "127.1.2.3:80", "application/json", "", 400, CodeBadRequest},
		{"ipv6_port", "POST", "/v1/expose", "[::1]:4000", "application/json", "", 400, CodeBadRequest},
		{"ipv6", "POST", "/v1/expose", "[::1]", "application/json", "", 400, CodeBadRequest},
		{"localhost_port", "POST", "/v1/expose", "localhost:4000", "application/json", "", 400, CodeBadRequest},
		{"localhost", "POST", "/v1/expose", "LocalHost", "application/json", "", 400, CodeBadRequest},
		{"get_no_ctype", "GET", "/v1/nope", "mycelium", "", "", 404, CodeNotFound},

		{"origin", "POST", "/v1/expose", "127.0.0.1:4000", "application/json", "http://evil.example", 403, CodeForbidden},
		{"origin_null", "POST", "/v1/expose", "mycelium", "application/json", "null", 403, CodeForbidden},
		{"origin_on_get", "GET", "/v1/nope", "mycelium", "", "http://127.0.0.1:4000", 403, CodeForbidden},
		{"rebound_host", "GET", "/v1/nope", "evil.example:4000", "", "", 403, CodeForbidden},
		{"rebound_host_no_port", "POST", "/v1/expose", "evil.example", "application/json", "", 403, CodeForbidden},
		{"localhost_suffix", "GET", "/v1/nope", "localhost.evil.example", "", "", 403, CodeForbidden},
		{"ip_suffix", "GET", "/v1/nope", "127.0.0.1.evil.example:80", "", "", 403, CodeForbidden},
		{"mycelium_port", "GET", "/v1/nope", "mycelium:80", "", "", 403, CodeForbidden},
		{"other_ip", "GET", "/v1/nope", "192.0.2.1:80", "", "", 403, CodeForbidden},
		{"empty_host", "GET", "/v1/nope", "", "", "", 403, CodeForbidden},
		{"text_plain", "POST", "/v1/expose", "127.0.0.1:4000", "text/plain", "", 415, CodeBadRequest},
		{"form", "POST", "/v1/forward", "mycelium", "application/x-www-form-urlencoded", "", 415, CodeBadRequest},
		{"no_ctype", "POST", "/v1/dial", "mycelium", "", "", 415, CodeBadRequest},
		{"json_prefix", "POST", "/v1/expose", "mycelium", "application/jsonx", "", 415, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "http://mycelium"+tt.path, strings.NewReader("{"))
			r.Host = tt.host
			if tt.ctype != "" {
				r.Header.Set("Content-Type", tt.ctype)
			}
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var e Error
			if err := decodeJSON(w.Body, &e); err != nil {
				t.Fatalf("answer %d is not an Error: %v", w.Code, err)
			}
			if w.Code != tt.status || e.Code != tt.code {
				t.Fatalf("answer %d %q (%s), want %d %q", w.Code, e.Code, e.Message, tt.status, tt.code)
			}
		})
	}
}

// TestClientPassesGuard: every request the Client makes, the upgrade of
// Dial included, gets through the guard.
func TestClientPassesGuard(t *testing.T) {
	path := filepath.Join(shortDir(t), "c.sock")
	ln, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	reached := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusTeapot, "reached", r.Method+" "+r.URL.Path)
	}
	srv := &http.Server{Handler: guard(http.HandlerFunc(reached))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, err := NewClient("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, errStatus := c.Status(ctx)
	errExpose := c.Expose(ctx, ExposeRequest{Service: "s", Target: "127.0.0.1:1"})
	_, errForward := c.Forward(ctx, ForwardRequest{Listen: "127.0.0.1:0", Peer: "p", Service: "s"})
	conn, errDial := c.Dial(ctx, DialRequest{Peer: "p", Service: "s"})
	if conn != nil {
		conn.Close()
	}
	for name, err := range map[string]error{"Status": errStatus, "Expose": errExpose, "Forward": errForward, "Dial": errDial} {
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Code != "reached" {
			t.Errorf("%s: %v, want the handler reached", name, err)
		}
	}
}

// gateListener hands out the conns sent on its channel, even after Close,
// which only reports that it was called: an Accept that returned just as
// Close began.
type gateListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *gateListener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}

func (l *gateListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *gateListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestCloseRefusesLateWork: a stream accepted once Close has begun starts
// nothing Close would have to wait for: it is closed, and Close returns.
func TestCloseRefusesLateWork(t *testing.T) {
	// A target that takes connections (in its backlog) and never answers.
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()

	s := NewServer(nil, slog.New(slog.DiscardHandler))
	gl := &gateListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	e := &expose{service: "svc", target: target.Addr().String(), ln: gl}
	s.mu.Lock()
	s.exposes[e.service] = e
	s.spawnLocked(func() { s.runExpose(e) })
	s.mu.Unlock()

	mine, theirs := net.Pipe()
	defer mine.Close()
	go func() {
		<-gl.closed // Close has begun
		gl.conns <- theirs
		close(gl.conns)
	}()
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close still waiting for a stream accepted after it began")
	}
	if _, err := mine.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("late stream: read = %v, want it closed (EOF)", err)
	}
	ran := make(chan struct{}, 1)
	if s.spawn(func() { ran <- struct{}{} }) {
		t.Fatal("spawn accepted work after Close")
	}
	a, b := net.Pipe()
	defer b.Close()
	s.track(a)
	if _, err := a.Write([]byte{1}); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("conn tracked after Close: write = %v, want it closed", err)
	}
	select {
	case <-ran:
		t.Fatal("spawn ran a function after Close")
	default:
	}
}

// TestForwardRemoveByName: a forward is removed by the address it was asked
// for, not only by the address it bound.
func TestForwardRemoveByName(t *testing.T) {
	s := testServer(t)
	add := func(listen string) (net.Listener, string) {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		s.forwards[ln.Addr().String()] = &forward{ln: ln, service: "s"}
		s.mu.Unlock()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		return ln, port
	}
	removed := func(ln net.Listener) bool {
		_, err := ln.Accept()
		return errors.Is(err, net.ErrClosed)
	}

	lnLocal, port := add("localhost:0")
	if _, err := s.Forward(ForwardRequest{Listen: "localhost:" + port, Remove: true}); err != nil {
		t.Fatalf("remove localhost:%s: %v", port, err)
	}
	if !removed(lnLocal) {
		t.Fatal("forward's listener still open")
	}

	lnAll, port := add(":0")
	var apiErr *Error
	if _, err := s.Forward(ForwardRequest{Listen: "127.0.0.1:" + port, Remove: true}); !errors.As(err, &apiErr) || apiErr.Code != CodeNotFound {
		t.Fatalf("remove 127.0.0.1:%s of a forward on all addresses: %v, want not_found", port, err)
	}
	if _, err := s.Forward(ForwardRequest{Listen: "0.0.0.0:" + port, Remove: true}); err != nil {
		t.Fatalf("remove 0.0.0.0:%s: %v", port, err)
	}
	if !removed(lnAll) {
		t.Fatal("forward's listener still open")
	}

	if _, err := s.Forward(ForwardRequest{Listen: "localhost:" + port, Remove: true}); !errors.As(err, &apiErr) || apiErr.Code != CodeNotFound {
		t.Fatalf("remove of a forward that is gone: %v, want not_found", err)
	}
	s.mu.Lock()
	n := len(s.forwards)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d forwards left, want 0", n)
	}
}
