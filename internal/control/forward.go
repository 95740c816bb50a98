package control

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/internal/pipe"
)

// forward carries each TCP connection accepted on a local port to a remote
// service.
type forward struct {
	ln      net.Listener
	peer    mycelium.NodeID
	peerArg string
	service string
	count   atomic.Uint64
}

func (f *forward) info() ForwardInfo {
	return ForwardInfo{Listen: f.ln.Addr().String(), Peer: f.peerArg, Service: f.service, Conns: f.count.Load()}
}

func (s *Server) handleForward(w http.ResponseWriter, r *http.Request) {
	var req ForwardRequest
	if !decode(w, r, &req) {
		return
	}
	info, err := s.Forward(req)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// Forward starts (or with req.Remove, stops) a forward. A remove names the
// forward by its listen address, as given ("localhost:8000") or as bound
// ("127.0.0.1:8000").
func (s *Server) Forward(req ForwardRequest) (ForwardInfo, error) {
	if req.Remove {
		// Resolve before taking the lock: a host name may need DNS.
		want, _ := net.ResolveTCPAddr("tcp", req.Listen)
		s.mu.Lock()
		key, f := s.findForwardLocked(req.Listen, want)
		if f != nil {
			delete(s.forwards, key)
		}
		s.mu.Unlock()
		if f == nil {
			return ForwardInfo{}, &Error{Code: CodeNotFound, Message: fmt.Sprintf("no forward listens on %s", req.Listen)}
		}
		f.ln.Close()
		return f.info(), nil
	}
	if err := mycelium.ValidateServiceName(req.Service); err != nil {
		return ForwardInfo{}, err
	}
	id, err := s.resolvePeer(req.Peer)
	if err != nil {
		return ForwardInfo{}, err
	}
	if id == s.node.ID() {
		return ForwardInfo{}, mycelium.ErrSelf
	}
	ln, err := net.Listen("tcp", req.Listen)
	if err != nil {
		return ForwardInfo{}, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("cannot listen on %q: %v", req.Listen, err)}
	}
	f := &forward{ln: ln, peer: id, peerArg: req.Peer, service: req.Service}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		ln.Close()
		return ForwardInfo{}, net.ErrClosed
	}
	s.forwards[ln.Addr().String()] = f
	s.spawnLocked(func() { s.runForward(f) }) // not closing: checked above
	s.log.Info("forwarding", "listen", ln.Addr().String(), "peer", id.Short(), "service", f.service)
	return f.info(), nil
}

// findForwardLocked finds the forward listening on listen: its bound
// address, or else the one bound to want's IP and port (want is listen
// resolved, nil if it does not resolve; an unspecified IP matches a forward
// bound to all addresses). s.mu must be held.
func (s *Server) findForwardLocked(listen string, want *net.TCPAddr) (key string, f *forward) {
	if f := s.forwards[listen]; f != nil {
		return listen, f
	}
	if want == nil {
		return "", nil
	}
	for k, f := range s.forwards {
		bound, ok := f.ln.Addr().(*net.TCPAddr)
		if !ok || bound.Port != want.Port {
			continue
		}
		if bound.IP.Equal(want.IP) || (unspecified(bound.IP) && unspecified(want.IP)) {
			return k, f
		}
	}
	return "", nil
}

func unspecified(ip net.IP) bool { return ip == nil || ip.IsUnspecified() }

func (s *Server) runForward(f *forward) {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.count.Add(1)
		s.spawn(func() {
			untrackClient := s.track(c)
			defer untrackClient()
			ctx, cancel := context.WithTimeout(s.ctx, DefaultDialTimeout)
			stream, err := s.node.Dial(ctx, f.peer, f.service)
			cancel()
			if err != nil {
				s.log.Warn("forward: dial failed", "peer", f.peer.Short(), "service", f.service, "err", err)
				c.Close()
				return
			}
			untrack := s.track(stream)
			defer untrack()
			pipe.Splice(c, stream)
		}, c)
	}
}
