package relay

import (
	"errors"
	"fmt"
	"time"

	"github.com/mycelium-net/mycelium/internal/wire"
)

// NodeID is a node's 32-byte overlay identifier.
type NodeID = [32]byte

// Resources bound what circuits may make a relay hold. Start from
// DefaultResources; NewTable calls Validate. The package documentation
// explains each default.
type Resources struct {
	// MaxCircuits bounds the circuits carried at once, ends included.
	// Default 4096.
	MaxCircuits int
	// MaxCircuitsPerPeer bounds the circuits one previous hop may have
	// through us (relayed, or ending here). Default 64.
	MaxCircuitsPerPeer int
	// BytesPerSecond is the rate of each relayed circuit in each
	// direction, enforced by a token bucket. Default 4 MiB/s.
	BytesPerSecond int
	// Burst is the size of that bucket in bytes; it must hold one
	// whole datagram (wire.MaxCircuitData). Default 256 KiB.
	Burst int
	// IdleTimeout: a circuit with no packet either way for this long is
	// torn down by Sweep. Default 2 min.
	IdleTimeout time.Duration
	// MaxMemory bounds the estimated state all circuits hold, in bytes.
	// Default 64 MiB.
	MaxMemory int64
	// Allow, if not empty, lists the only previous hops that may open
	// relayed circuits. Circuits ending here are not affected.
	Allow []NodeID
	// DrainTimeout is how long existing circuits keep flowing after
	// Drain; 0 tears them down at the next Sweep. Default 30 s.
	DrainTimeout time.Duration
}

// Upper bounds that keep the token arithmetic (in nano-bytes) within
// int64.
const (
	maxBurst          = 1 << 30 // 1 GiB
	maxBytesPerSecond = 1 << 40 // 1 TiB/s
)

// DefaultResources returns the default limits, with no allow-list.
func DefaultResources() Resources {
	return Resources{
		MaxCircuits:        4096,
		MaxCircuitsPerPeer: 64,
		BytesPerSecond:     4 << 20,
		Burst:              256 << 10,
		IdleTimeout:        2 * time.Minute,
		MaxMemory:          64 << 20,
		DrainTimeout:       30 * time.Second,
	}
}

// ErrBadResources wraps every Validate error.
var ErrBadResources = errors.New("relay: bad resources")

// Validate reports the first problem with r, naming the field.
func (r Resources) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadResources}, a...)...)
	}
	switch {
	case r.MaxCircuits <= 0:
		return bad("MaxCircuits must be positive, got %d", r.MaxCircuits)
	case r.MaxCircuitsPerPeer <= 0 || r.MaxCircuitsPerPeer > r.MaxCircuits:
		return bad("MaxCircuitsPerPeer must be 1 to MaxCircuits (%d), got %d", r.MaxCircuits, r.MaxCircuitsPerPeer)
	case r.BytesPerSecond <= 0 || int64(r.BytesPerSecond) > maxBytesPerSecond:
		return bad("BytesPerSecond must be 1 to %d, got %d", int64(maxBytesPerSecond), r.BytesPerSecond)
	case r.Burst < wire.MaxCircuitData || r.Burst > maxBurst:
		return bad("Burst must be %d (one whole datagram) to %d, got %d", wire.MaxCircuitData, maxBurst, r.Burst)
	case r.IdleTimeout <= 0:
		return bad("IdleTimeout must be positive, got %v", r.IdleTimeout)
	case r.MaxMemory < relayCost:
		return bad("MaxMemory must hold at least one circuit (%d bytes), got %d", relayCost, r.MaxMemory)
	case r.DrainTimeout < 0:
		return bad("DrainTimeout must not be negative, got %v", r.DrainTimeout)
	}
	for i, id := range r.Allow {
		if id == (NodeID{}) {
			return bad("Allow[%d] is the zero node ID", i)
		}
	}
	return nil
}
