package mycelium

import (
	"errors"

	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/internal/transport"
	"github.com/mycelium-net/mycelium/internal/wire"
)

// Errors returned by a Node. Test for them with errors.Is.
var (
	// ErrIdentityMismatch: the node at the dialed address holds another key.
	ErrIdentityMismatch = transport.ErrIdentityMismatch
	// ErrUnknownService: the peer has no listener for the service.
	ErrUnknownService = errors.New("mycelium: unknown service")
	// ErrRefused: the peer refused the stream for another reason.
	ErrRefused = errors.New("mycelium: stream refused")
	// ErrOverloaded: the peer's service accept queue is full.
	ErrOverloaded = errors.New("mycelium: service overloaded")
	// ErrNoAddress: the node knows no address for the peer and has no connection to it.
	ErrNoAddress = errors.New("mycelium: no known address for node")
	// ErrServiceInUse: Listen on a service that already has a listener.
	ErrServiceInUse = errors.New("mycelium: service already has a listener")
	// ErrBadServiceName: the service name is not valid (see wire.ValidateServiceName).
	ErrBadServiceName = wire.ErrBadServiceName
	// ErrBadID: text that is not a node ID.
	ErrBadID = identity.ErrBadID
	// ErrStreamReset: the other end ended the stream with Reset, not a
	// clean close.
	ErrStreamReset = errors.New("mycelium: stream reset")
	// ErrSelf: the node was asked to dial itself.
	ErrSelf = errors.New("mycelium: node cannot dial itself")
	// ErrNotStarted: the node was used before Start.
	ErrNotStarted = errors.New("mycelium: node not started")
	// ErrTooManyPeers: the remote node refused our connection because it is
	// at its Resources.MaxPeers.
	ErrTooManyPeers = errors.New("mycelium: too many peers")
)
