package control

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/mycelium-net/mycelium"
	"github.com/mycelium-net/mycelium/registry"
)

// LookupResult answers GET /v1/lookup?service=NAME: the nodes whose
// registry records offer the service, sorted.
type LookupResult struct {
	Service string            `json:"service"`
	Nodes   []mycelium.NodeID `json:"nodes"`
}

// PeerRecord is one node the registry knows, for GET /v1/peers.
type PeerRecord struct {
	ID        mycelium.NodeID  `json:"id"`
	Self      bool             `json:"self"`
	Role      string           `json:"role"` // "node" or "relay"
	NAT       NATClass         `json:"nat"`
	Inbound   bool             `json:"inbound"` // accepts inbound connections
	Listen    []netip.AddrPort `json:"listen"`
	Reflexive []netip.AddrPort `json:"reflexive"`
	Services  []string         `json:"services"`
	Seq       uint64           `json:"seq"`
	// AgeSeconds is how long ago the node signed this version of its
	// record; ExpiresInSeconds how long it stays valid unless refreshed.
	AgeSeconds       float64 `json:"age_seconds"`
	ExpiresInSeconds float64 `json:"expires_in_seconds"`
}

// NATClass is a node's NAT behaviour in RFC 4787 terms.
type NATClass struct {
	Mapping   string `json:"mapping"`
	Filtering string `json:"filtering"`
}

// PeersResult answers GET /v1/peers.
type PeersResult struct {
	Peers []PeerRecord `json:"peers"`
}

func peerRecord(self mycelium.NodeID, r registry.Record, now time.Time) PeerRecord {
	p := PeerRecord{
		ID: r.ID, Self: r.ID == self, Role: "node", Inbound: r.Inbound,
		NAT:              NATClass{Mapping: r.Mapping.String(), Filtering: r.Filtering.String()},
		Listen:           append([]netip.AddrPort{}, r.Listen...),
		Reflexive:        append([]netip.AddrPort{}, r.Reflexive...),
		Services:         []string{},
		Seq:              r.Seq,
		AgeSeconds:       now.Sub(r.Issued).Seconds(),
		ExpiresInSeconds: r.Expires().Sub(now).Seconds(),
	}
	if r.Relay {
		p.Role = "relay"
	}
	for _, s := range r.Services {
		p.Services = append(p.Services, s.Name)
	}
	return p
}

// MaxWait bounds the wait a lookup or peers request may ask for.
const MaxWait = time.Minute

// waitParam reads the optional "wait" query parameter (a Go duration,
// 0..MaxWait).
func waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > MaxWait {
		return 0, fmt.Errorf("wait %q: want a duration from 0 to %v", v, MaxWait)
	}
	return d, nil
}

// waitUntil re-evaluates done on every registry change until it holds, the
// wait ends or the client goes away.
func (s *Server) waitUntil(r *http.Request, wait time.Duration, done func() bool) {
	if done() || wait == 0 {
		return
	}
	watch := s.node.WatchRegistry()
	defer watch.Close()
	t := time.NewTimer(wait)
	defer t.Stop()
	for !done() { // re-checked after the watch exists: no change is missed
		select {
		case _, ok := <-watch.C:
			if !ok {
				return
			}
		case <-t.C:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	service := r.URL.Query().Get("service")
	if err := registry.ValidServiceName(service); err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	wait, err := waitParam(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	var ids []mycelium.NodeID
	s.waitUntil(r, wait, func() bool {
		ids = s.node.LookupService(service)
		return len(ids) > 0
	})
	if ids == nil {
		ids = []mycelium.NodeID{}
	}
	writeJSON(w, http.StatusOK, LookupResult{Service: service, Nodes: ids})
}

func (s *Server) handlePeers(w http.ResponseWriter, r *http.Request) {
	wait, err := waitParam(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	min := 0
	if v := r.URL.Query().Get("min"); v != "" {
		if min, err = strconv.Atoi(v); err != nil || min < 0 {
			writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("min %q: want a count", v))
			return
		}
	}
	var recs []registry.Record
	s.waitUntil(r, wait, func() bool {
		recs = s.node.Records()
		return len(recs) >= min
	})
	now := time.Now()
	res := PeersResult{Peers: []PeerRecord{}}
	for _, rec := range recs {
		res.Peers = append(res.Peers, peerRecord(s.node.ID(), rec, now))
	}
	writeJSON(w, http.StatusOK, res)
}

// Lookup asks which nodes offer service; with wait > 0 the node answers
// once one is known or the wait is over.
func (c *Client) Lookup(ctx context.Context, service string, wait time.Duration) (*LookupResult, error) {
	var res LookupResult
	q := url.Values{"service": {service}, "wait": {wait.String()}}
	if err := c.do(ctx, http.MethodGet, "/v1/lookup?"+q.Encode(), nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Peers lists the nodes the registry knows; with wait > 0 the node answers
// once it knows at least min nodes or the wait is over.
func (c *Client) Peers(ctx context.Context, min int, wait time.Duration) (*PeersResult, error) {
	var res PeersResult
	q := url.Values{"min": {strconv.Itoa(min)}, "wait": {wait.String()}}
	if err := c.do(ctx, http.MethodGet, "/v1/peers?"+q.Encode(), nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// CircuitsResult answers GET /v1/circuits.
type CircuitsResult struct {
	Circuits []mycelium.CircuitStats `json:"circuits"`
}

func (s *Server) handleCircuits(w http.ResponseWriter, r *http.Request) {
	res := CircuitsResult{Circuits: s.node.Circuits()}
	if res.Circuits == nil {
		res.Circuits = []mycelium.CircuitStats{}
	}
	writeJSON(w, http.StatusOK, res)
}

// Circuits lists the circuits the node builds, carries or ends.
func (c *Client) Circuits(ctx context.Context) (*CircuitsResult, error) {
	var res CircuitsResult
	if err := c.do(ctx, http.MethodGet, "/v1/circuits", nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
