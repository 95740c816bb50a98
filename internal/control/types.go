package control

import (
	"github.com/mycelium-net/mycelium"
)

// MaxBodySize bounds a request body.
const MaxBodySize = 64 << 10

// UpgradeProtocol is the Upgrade token of /v1/dial.
const UpgradeProtocol = "mycelium-stream"

// Status is the answer to GET /v1/status. Its JSON keys are an interface:
// later versions add keys and never rename them.
type Status struct {
	mycelium.Stats
	Exposes  []ExposeInfo  `json:"exposes"`
	Forwards []ForwardInfo `json:"forwards"`
}

// ExposeRequest asks the node to hand streams for Service to the TCP address
// Target, or with Remove to stop doing so.
type ExposeRequest struct {
	Service string `json:"service"`
	Target  string `json:"target,omitempty"`
	Remove  bool   `json:"remove,omitempty"`
}

// ExposeInfo describes one exposed service.
type ExposeInfo struct {
	Service string `json:"service"`
	Target  string `json:"target"`
	Streams uint64 `json:"streams"` // streams handed to Target so far
}

// ForwardRequest asks the node to listen on the TCP address Listen and carry
// each connection to Service on node Peer ("ID" or "ID@HOST:PORT"), or with
// Remove to stop.
type ForwardRequest struct {
	Listen  string `json:"listen"`
	Peer    string `json:"peer,omitempty"`
	Service string `json:"service,omitempty"`
	Remove  bool   `json:"remove,omitempty"`
}

// ForwardInfo describes one forward. Listen is the bound address (the port
// is filled in when the request asked for port 0).
type ForwardInfo struct {
	Listen  string `json:"listen"`
	Peer    string `json:"peer"`
	Service string `json:"service"`
	Conns   uint64 `json:"conns"` // connections carried so far
}

// DialRequest opens a stream to Service on Peer ("ID" or "ID@HOST:PORT").
// TimeoutMS bounds connecting and the stream's setup (default 10000).
type DialRequest struct {
	Peer      string `json:"peer"`
	Service   string `json:"service"`
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
}

// Error is the body of every error answer.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeBadRequest       = "bad_request"
	CodeBadNodeID        = "bad_node_id"
	CodeBadService       = "bad_service"
	CodeIdentityMismatch = "identity_mismatch"
	CodeUnknownService   = "unknown_service"
	CodeNoAddress        = "no_address"
	CodeTimeout          = "timeout"
	CodeRefused          = "refused"
	CodeConflict         = "conflict"
	CodeNotFound         = "not_found"
	CodeForbidden        = "forbidden"
	CodeUnreachable      = "unreachable"
	CodeInternal         = "internal"
)
