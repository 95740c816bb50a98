package registry

import (
	"fmt"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Output is one thing the driver must do, or one event it must pass on.
// The driver performs a call's outputs in slice order.
type Output interface{ isOutput() }

// Publish asks the driver to broadcast Payload, one signed record, on the
// registry topic (Plumtree). Other nodes hand it to HandleBroadcast.
type Publish struct{ Payload []byte }

// Send asks the driver to deliver Msg, one anti-entropy message, to the
// neighbour To, which hands it to HandleMessage. Best-effort: a lost
// message is repaired at the next neighbour-up.
type Send struct {
	To  identity.NodeID
	Msg []byte
}

// SetTimer asks the driver to call HandleTimer(At, Timer) at At. Timers
// are never cancelled; stale ones are ignored.
type SetTimer struct {
	At    time.Time
	Timer Timer
}

// Changed reports that the record of ID was added or updated (Removed
// false), or that the node is gone: expired, tombstoned or evicted
// (Removed true). Lookup gives the current record.
type Changed struct {
	ID      identity.NodeID
	Removed bool
}

func (Publish) isOutput()  {}
func (Send) isOutput()     {}
func (SetTimer) isOutput() {}
func (Changed) isOutput()  {}

// TimerKind says what a timer is for.
type TimerKind uint8

// Timer kinds.
const (
	TimerSweep   TimerKind = 1 // remove expired records
	TimerRefresh TimerKind = 2 // sign and publish our record again
)

func (k TimerKind) String() string {
	switch k {
	case TimerSweep:
		return "sweep"
	case TimerRefresh:
		return "refresh"
	default:
		return fmt.Sprintf("timer(%d)", uint8(k))
	}
}

// Timer is opaque to the driver, which hands the same value back at the
// time asked. It is comparable.
type Timer struct {
	Kind TimerKind
	gen  uint64 // which arming this is; stale ones are ignored
}

func (t Timer) String() string { return fmt.Sprintf("%v#%d", t.Kind, t.gen) }
