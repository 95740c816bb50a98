package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mycelium-net/mycelium"
)

// DefaultDialTimeout bounds a dial through the API when the request gives
// no timeout.
const DefaultDialTimeout = 10 * time.Second

// targetDialTimeout bounds connecting to an exposed service's TCP target.
const targetDialTimeout = 10 * time.Second

// Server serves the control API for one node, and runs the exposes and
// forwards it was asked for.
type Server struct {
	node *mycelium.Node
	log  *slog.Logger
	http *http.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines started by spawn

	mu       sync.Mutex
	closing  bool                // Close has begun: no more wg.Add, no more tracking
	exposes  map[string]*expose  // by service
	forwards map[string]*forward // by bound listen address
	conns    map[net.Conn]struct{}
}

// NewServer returns a control server for node.
func NewServer(node *mycelium.Node, log *slog.Logger) *Server {
	s := &Server{
		node:     node,
		log:      log,
		exposes:  make(map[string]*expose),
		forwards: make(map[string]*forward),
		conns:    make(map[net.Conn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.handleStatus)
	mux.HandleFunc("POST /v1/expose", s.handleExpose)
	mux.HandleFunc("POST /v1/forward", s.handleForward)
	mux.HandleFunc("POST /v1/dial", s.handleDial)
	mux.HandleFunc("GET /v1/lookup", s.handleLookup)
	mux.HandleFunc("GET /v1/peers", s.handlePeers)
	mux.HandleFunc("GET /v1/circuits", s.handleCircuits)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	s.http = &http.Server{
		Handler:           guard(mux),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// Serve answers requests on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the API, every expose and forward, and every stream they
// carry, and waits for them. Handlers still running (http.Server.Close does
// not wait for them) can start nothing once Close has begun: see spawn.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	err := s.http.Close()
	s.mu.Lock()
	for _, e := range s.exposes {
		e.ln.Close()
	}
	for _, f := range s.forwards {
		f.ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// spawn runs f in a goroutine that Close waits for, unless Close has begun:
// then it runs nothing, closes cs (the connections f would have carried)
// and returns false. Every goroutine of the server starts here, so that no
// wg.Add can race with Close's wg.Wait.
func (s *Server) spawn(f func(), cs ...net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spawnLocked(f, cs...)
}

// spawnLocked is spawn with s.mu held.
func (s *Server) spawnLocked(f func(), cs ...net.Conn) bool {
	if s.closing {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// track registers a connection to close at shutdown; the returned func
// forgets it. Once Close has begun, the connections are closed at once.
func (s *Server) track(cs ...net.Conn) (untrack func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		for _, c := range cs {
			c.Close()
		}
		return func() {}
	}
	for _, c := range cs {
		s.conns[c] = struct{}{}
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range cs {
			delete(s.conns, c)
		}
	}
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := Status{Stats: s.node.Stats(), Exposes: []ExposeInfo{}, Forwards: []ForwardInfo{}}
	s.mu.Lock()
	for _, e := range s.exposes {
		st.Exposes = append(st.Exposes, ExposeInfo{Service: e.service, Target: e.target, Streams: e.count.Load()})
	}
	for _, f := range s.forwards {
		st.Forwards = append(st.Forwards, f.info())
	}
	s.mu.Unlock()
	slices.SortFunc(st.Exposes, func(a, b ExposeInfo) int { return strings.Compare(a.Service, b.Service) })
	slices.SortFunc(st.Forwards, func(a, b ForwardInfo) int { return strings.Compare(a.Listen, b.Listen) })
	writeJSON(w, http.StatusOK, st)
}

// guard refuses requests a web browser could have sent, before they reach
// h: the API has no authentication, and a page on any site can make a
// browser send requests to a loopback port (cross-site requests, and DNS
// rebinding, where the page's own host name comes to resolve to 127.0.0.1).
//
//   - A request with an Origin header is refused (403, CodeForbidden):
//     browsers set it on cross-origin requests and on every POST; the
//     mycelium client never sends it.
//   - The Host header must be "mycelium" (what Client sends) or a loopback
//     name: localhost or a loopback IP literal, with or without a port
//     (403, CodeForbidden). A rebound host name never passes.
//   - A POST must have Content-Type application/json (parameters allowed),
//     which a page cannot send cross-site without a CORS preflight that
//     this API never answers (415, CodeBadRequest).
func guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Origin"]; ok {
			writeError(w, http.StatusForbidden, CodeForbidden, "requests from web pages (with an Origin header) are refused")
			return
		}
		if !allowedHost(r.Host) {
			writeError(w, http.StatusForbidden, CodeForbidden, fmt.Sprintf("Host %q refused: want mycelium, localhost or a loopback address", r.Host))
			return
		}
		if r.Method == http.MethodPost {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, CodeBadRequest, "POST needs Content-Type: application/json")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// allowedHost reports whether a Host header names this machine's control
// API: "mycelium", or localhost or a loopback IP with an optional port.
func allowedHost(host string) bool {
	if host == "mycelium" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// decode reads a bounded JSON body into v, answering 400 if it is bad.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := decodeJSON(http.MaxBytesReader(w, r.Body, MaxBodySize), v); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "bad JSON request body: "+err.Error())
		return false
	}
	return true
}

// decodeJSON decodes one JSON object from r into v, refusing unknown
// fields and anything after the object.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, &Error{Message: msg, Code: code})
}

// writeNodeError maps a node error to a status and an error code.
func writeNodeError(w http.ResponseWriter, err error) {
	status, code := http.StatusBadGateway, CodeUnreachable
	switch {
	case errors.Is(err, mycelium.ErrBadID):
		status, code = http.StatusBadRequest, CodeBadNodeID
	case errors.Is(err, mycelium.ErrBadServiceName):
		status, code = http.StatusBadRequest, CodeBadService
	case errors.Is(err, mycelium.ErrSelf):
		status, code = http.StatusBadRequest, CodeBadRequest
	case errors.Is(err, mycelium.ErrIdentityMismatch):
		code = CodeIdentityMismatch
	case errors.Is(err, mycelium.ErrUnknownService):
		status, code = http.StatusNotFound, CodeUnknownService
	case errors.Is(err, mycelium.ErrRefused), errors.Is(err, mycelium.ErrOverloaded):
		code = CodeRefused
	case errors.Is(err, mycelium.ErrNoAddress):
		status, code = http.StatusNotFound, CodeNoAddress
	case errors.Is(err, context.DeadlineExceeded):
		status, code = http.StatusGatewayTimeout, CodeTimeout
	}
	writeError(w, status, code, err.Error())
}

// resolvePeer parses "ID" or "ID@HOST:PORT" and teaches the node the address.
func (s *Server) resolvePeer(text string) (mycelium.NodeID, error) {
	p, err := mycelium.ParsePeer(text)
	if err != nil {
		return mycelium.NodeID{}, err
	}
	if p.Addr != nil {
		if err := s.node.AddPeerAddr(p.ID, p.Addr); err != nil {
			return mycelium.NodeID{}, err
		}
	}
	return p.ID, nil
}

func (s *Server) handleDial(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), UpgradeProtocol) {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "POST /v1/dial needs the header Upgrade: "+UpgradeProtocol)
		return
	}
	var req DialRequest
	if !decode(w, r, &req) {
		return
	}
	if req.TimeoutMS < 0 {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "timeout_ms must not be negative")
		return
	}
	id, err := s.resolvePeer(req.Peer)
	if err != nil {
		writeNodeError(w, err)
		return
	}
	timeout := DefaultDialTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	stream, err := s.node.Dial(ctx, id, req.Service)
	if err != nil {
		writeNodeError(w, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		stream.Close()
		writeError(w, http.StatusInternalServerError, CodeInternal, "connection cannot be upgraded")
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		stream.Close()
		return
	}
	fmt.Fprintf(buf, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", UpgradeProtocol)
	if err := buf.Flush(); err != nil {
		conn.Close()
		stream.Close()
		return
	}
	client := &bufferedConn{Conn: conn, r: buf.Reader}
	s.spawn(func() {
		untrack := s.track(client, stream)
		defer untrack()
		spliceFramed(client, stream)
	}, client, stream)
}

// bufferedConn reads first what the HTTP server had buffered.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

var _ io.Reader = (*bufferedConn)(nil)
