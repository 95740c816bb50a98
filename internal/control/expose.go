package control

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/mycelium-net/mycelium"
)

// expose hands every stream for a service to a local TCP address.
type expose struct {
	service, target string
	ln              net.Listener // the node's listener for service
	count           atomic.Uint64
}

func (s *Server) handleExpose(w http.ResponseWriter, r *http.Request) {
	var req ExposeRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.Expose(req); err != nil {
		writeExposeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func writeExposeError(w http.ResponseWriter, err error) {
	var apiErr *Error
	switch {
	case errors.As(err, &apiErr):
		status := http.StatusBadRequest
		if apiErr.Code == CodeConflict {
			status = http.StatusConflict
		} else if apiErr.Code == CodeNotFound {
			status = http.StatusNotFound
		}
		writeError(w, status, apiErr.Code, apiErr.Message)
	default:
		writeNodeError(w, err)
	}
}

// Expose starts (or with req.Remove, stops) handing streams for req.Service
// to req.Target. Streams already running go on after a remove.
func (s *Server) Expose(req ExposeRequest) error {
	if req.Remove {
		s.mu.Lock()
		e := s.exposes[req.Service]
		delete(s.exposes, req.Service)
		s.mu.Unlock()
		if e == nil {
			return &Error{Code: CodeNotFound, Message: fmt.Sprintf("service %q is not exposed", req.Service)}
		}
		e.ln.Close()
		return nil
	}
	if _, _, err := net.SplitHostPort(req.Target); err != nil {
		return &Error{Code: CodeBadRequest, Message: fmt.Sprintf("target %q is not HOST:PORT", req.Target)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return net.ErrClosed
	}
	if old := s.exposes[req.Service]; old != nil {
		return &Error{Code: CodeConflict, Message: fmt.Sprintf("service %q is already exposed to %s (remove it first)", req.Service, old.target)}
	}
	ln, err := s.node.Listen(req.Service)
	if err != nil {
		if errors.Is(err, mycelium.ErrServiceInUse) {
			return &Error{Code: CodeConflict, Message: err.Error()}
		}
		return err
	}
	e := &expose{service: req.Service, target: req.Target, ln: ln}
	s.exposes[req.Service] = e
	s.wg.Add(1)
	go s.runExpose(e)
	s.log.Info("exposing service", "service", e.service, "target", e.target)
	return nil
}

func (s *Server) runExpose(e *expose) {
	defer s.wg.Done()
	for {
		stream, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.count.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			target, err := net.DialTimeout("tcp", e.target, targetDialTimeout)
			if err != nil {
				s.log.Warn("exposed service target unreachable", "service", e.service, "target", e.target, "err", err)
				stream.Close()
				return
			}
			untrack := s.track(stream, target)
			defer untrack()
			splice(stream, target)
		}()
	}
}
