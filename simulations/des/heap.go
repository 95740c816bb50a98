package des

import "time"

// kind is what an event does when it comes due.
type kind uint8

const (
	evCall         kind = iota + 1 // run a scheduled function (At)
	evTimer                        // a node's timer fires
	evDeliver                      // a message arrives
	evConnectOK                    // a connect's handshake completes
	evConnectFail                  // a connect attempt times out
	evDisconnected                 // a node learns a link broke
	evLost                         // trace only: a message lost on the way
	evDrop                         // trace only: a message dropped at arrival
)

var kindNames = [...]string{
	evCall:         "call",
	evTimer:        "timer",
	evDeliver:      "deliver",
	evConnectOK:    "connected",
	evConnectFail:  "connect-failed",
	evDisconnected: "disconnected",
	evLost:         "lost",
	evDrop:         "drop",
}

func (k kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// event is one pending event. Events are held by value in the heap: no
// allocation per event beyond the message the sender made.
type event struct {
	at    time.Duration
	seq   uint64
	msg   []byte
	token uint64 // timer token, call index
	node  int32  // the node the event happens at
	peer  int32  // the other end, or -1
	epoch uint32 // node's epoch when scheduled: a restart voids the event
	kind  kind
	layer Layer
}

// eventHeap is a binary min-heap ordered by (at, seq). seq is unique, so
// the order is total and does not depend on the heap's shape.
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *eventHeap) push(ev event) {
	*h = append(*h, ev)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

// pop removes and returns the earliest event. The heap must not be empty.
func (h *eventHeap) pop() event {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s[n] = event{} // drop the message reference
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
