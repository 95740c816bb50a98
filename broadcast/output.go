package broadcast

import (
	"fmt"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// Output is what a Machine asks its driver to do: Send, SetTimer or
// Deliver. Outputs of one call are to be carried out in order.
type Output interface{ isOutput() }

// Send asks the driver to send Msg to the neighbour To. Msg is an encoded
// Message (see ParseMessage). It may be shared between several Send
// outputs and must not be modified. Sends are best effort: the protocol
// repairs what is lost.
type Send struct {
	To  identity.NodeID
	Msg []byte
}

// SetTimer asks the driver to call HandleTimer(At or later, Timer) once.
// Timers are never cancelled; a Machine ignores one that is no longer
// wanted, so the driver may also drop timers when it drops the Machine.
type SetTimer struct {
	At    time.Time
	Timer Timer
}

// Deliver hands a message to the local subscribers of its topic, once per
// message ID (within CacheTTL and CacheSize). Payload must not be
// modified; it is shared with the Machine's cache.
type Deliver struct {
	ID      MessageID
	Topic   string
	Payload []byte
	// Origin is the node that broadcast the message, as the message says.
	// Nothing here authenticates it: sign the payload if it matters.
	Origin identity.NodeID
	// From is the neighbour the message came from, or this node itself at
	// the origin.
	From identity.NodeID
	// Hops is the number of overlay links the message crossed to get here:
	// 0 at the origin. The largest Hops over all receivers of a message
	// is the paper's LDH.
	Hops int
}

func (Send) isOutput()     {}
func (SetTimer) isOutput() {}
func (Deliver) isOutput()  {}

// timerKind says what a Timer is for.
type timerKind uint8

const (
	timerFlush   timerKind = iota + 1 // send queued IHAVE announcements
	timerMissing                      // timeout1/timeout2 for an announced, unreceived message
	timerSweep                        // sweep expired cache entries
)

// Timer is an opaque timer handle. The driver hands it back unchanged to
// HandleTimer. It is comparable, so a driver may use it as a map key.
type Timer struct {
	kind timerKind
	gen  uint64
	id   MessageID
}

// String names the timer, for traces and logs.
func (t Timer) String() string {
	switch t.kind {
	case timerFlush:
		return fmt.Sprintf("flush#%d", t.gen)
	case timerMissing:
		return fmt.Sprintf("missing(%s)#%d", t.id.Short(), t.gen)
	case timerSweep:
		return fmt.Sprintf("sweep#%d", t.gen)
	default:
		return fmt.Sprintf("timer(%d)#%d", t.kind, t.gen)
	}
}
