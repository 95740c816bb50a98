package control

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/mycelium-net/mycelium"
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
		writeExposeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// Forward starts (or with req.Remove, stops) a forward.
func (s *Server) Forward(req ForwardRequest) (ForwardInfo, error) {
	if req.Remove {
		s.mu.Lock()
		f := s.forwards[req.Listen]
		delete(s.forwards, req.Listen)
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
	if s.ctx.Err() != nil {
		ln.Close()
		return ForwardInfo{}, net.ErrClosed
	}
	s.forwards[ln.Addr().String()] = f
	s.wg.Add(1)
	go s.runForward(f)
	s.log.Info("forwarding", "listen", ln.Addr().String(), "peer", id.Short(), "service", f.service)
	return f.info(), nil
}

func (s *Server) runForward(f *forward) {
	defer s.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.count.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
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
			splice(c, stream)
		}()
	}
}
