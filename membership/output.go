package membership

import (
	"fmt"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Output is one thing the driver must do, or one event it must pass on.
// Outputs come in a slice; the driver performs them in slice order. See
// the package doc for the full contract.
type Output interface{ isOutput() }

// Send asks the driver to deliver Msg, one encoded message, to To. The
// machine sends over a link it asked for (Connect, then HandleConnected),
// over an active peer's link, or in reply over the link a request came
// on. To.Addrs lets a driver with no link connect anyway; it may instead
// drop the message. Sends are best-effort: the protocol survives loss.
type Send struct {
	To  Peer
	Msg []byte
}

// Connect asks the driver for a transport link to Peer, reusing one that
// is already up. The driver answers, later, with exactly one
// HandleConnected or HandleConnectFailed.
type Connect struct{ Peer Peer }

// Disconnect asks the driver to close its link to Peer once the Sends
// before it in the same slice have gone out. The driver does not report
// HandleDisconnected for a link closed this way.
type Disconnect struct{ Peer identity.NodeID }

// SetTimer asks the driver to call HandleTimer(at, Timer) at At. Timers
// are never cancelled: one that is no longer wanted is ignored when it
// fires, so the driver need not track or dedupe them.
type SetTimer struct {
	At    time.Time
	Timer Timer
}

// NeighborUp reports that Peer entered the active view (Plumtree adds it
// as an eager peer).
type NeighborUp struct{ Peer Peer }

// NeighborDown reports that Peer left the active view.
type NeighborDown struct{ Peer identity.NodeID }

func (Send) isOutput()         {}
func (Connect) isOutput()      {}
func (Disconnect) isOutput()   {}
func (SetTimer) isOutput()     {}
func (NeighborUp) isOutput()   {}
func (NeighborDown) isOutput() {}

// TimerKind says what a timer is for.
type TimerKind uint8

// Timer kinds.
const (
	TimerShuffle  TimerKind = 1 // start a SHUFFLE, refill the active view
	TimerJoin     TimerKind = 2 // the JOIN to Timer.Peer went unanswered
	TimerNeighbor TimerKind = 3 // the NEIGHBOR request to Timer.Peer went unanswered
)

func (k TimerKind) String() string {
	switch k {
	case TimerShuffle:
		return "shuffle"
	case TimerJoin:
		return "join"
	case TimerNeighbor:
		return "neighbor"
	default:
		return fmt.Sprintf("timer(%d)", uint8(k))
	}
}

// Timer is opaque to the driver: it hands the same value back at the time
// asked. Kind and Peer are exported for logs and traces. Timer is
// comparable, so a driver may use it as a map key.
type Timer struct {
	Kind TimerKind
	Peer identity.NodeID // the peer of a join or neighbor timer
	seq  uint64          // which arming of the timer this is; stale ones are ignored
}

func (t Timer) String() string {
	if t.Peer.IsZero() {
		return fmt.Sprintf("%v#%d", t.Kind, t.seq)
	}
	return fmt.Sprintf("%v(%s)#%d", t.Kind, t.Peer.Short(), t.seq)
}
