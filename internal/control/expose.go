package control

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/internal/pipe"
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
		writeAPIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

// writeAPIError answers an error from Expose or Forward: an *Error keeps its
// code, anything else is mapped as a node error.
func writeAPIError(w http.ResponseWriter, err error) {
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
	if s.closing {
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
	s.spawnLocked(func() { s.runExpose(e) }) // not closing: checked above
	s.log.Info("exposing service", "service", e.service, "target", e.target)
	return nil
}

func (s *Server) runExpose(e *expose) {
	for {
		stream, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.count.Add(1)
		s.spawn(func() {
			untrackStream := s.track(stream)
			defer untrackStream()
			d := net.Dialer{Timeout: targetDialTimeout}
			target, err := d.DialContext(s.ctx, "tcp", e.target) // Close cancels s.ctx
			if err != nil {
				s.log.Warn("exposed service target unreachable", "service", e.service, "target", e.target, "err", err)
				// End the stream with an error, so the dialer does not
				// take the target's absence for an empty answer.
				if r, ok := stream.(interface{ Reset() error }); ok {
					r.Reset()
				} else {
					stream.Close()
				}
				return
			}
			untrack := s.track(target)
			defer untrack()
			pipe.Splice(stream, target)
		}, stream)
	}
}
