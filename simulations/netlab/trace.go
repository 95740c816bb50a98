package netlab

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// EventKind says what happened to a datagram.
type EventKind int

// The kinds of Event.
const (
	// EventSend: a socket handed a datagram to the network.
	EventSend EventKind = iota + 1
	// EventTranslate: a NAT router rewrote the datagram's source
	// (outbound) or destination (inbound).
	EventTranslate
	// EventDrop: the datagram was lost; Event.Reason says why.
	EventDrop
	// EventDeliver: the datagram reached a socket's receive queue.
	EventDeliver
)

func (k EventKind) String() string {
	switch k {
	case EventSend:
		return "send"
	case EventTranslate:
		return "nat"
	case EventDrop:
		return "drop"
	case EventDeliver:
		return "deliver"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// DropReason says why a datagram was dropped.
type DropReason int

// The reasons for a drop.
const (
	// DropLoss: a link's random loss (Link.Loss).
	DropLoss DropReason = iota + 1
	// DropMTU: the datagram was larger than a link's MTU.
	DropMTU
	// DropQueueFull: the receiving socket's buffer was full.
	DropQueueFull
	// DropNoRoute: no host or NAT router holds the destination address.
	DropNoRoute
	// DropNoListener: the destination host has no socket on the port
	// (where a real host would answer ICMP port unreachable).
	DropNoListener
	// DropNoMapping: a datagram reached a NAT router's public address on
	// a port with no live mapping.
	DropNoMapping
	// DropFiltered: a NAT router's filtering refused an inbound datagram.
	DropFiltered
	// DropHairpin: a host sent to its own NAT router's public address and
	// the router does not hairpin.
	DropHairpin
	// DropNoFreePort: a NAT router had no free public port for a new
	// mapping.
	DropNoFreePort
	// DropClosed: the receiving socket closed, or the network closed while
	// the datagram was in flight.
	DropClosed
	// DropTTL: a router would have forwarded the datagram with a time to
	// live of 0 (Conn.WriteToTTL). A NAT router drops it before making a
	// mapping, as Linux does (its conntrack entry is never confirmed).
	DropTTL
	// DropBlocked: the internet carries nothing between the two
	// addresses (Network.Block).
	DropBlocked

	numDropReasons = iota + 1
)

func (r DropReason) String() string {
	switch r {
	case 0:
		return "none"
	case DropLoss:
		return "loss"
	case DropMTU:
		return "mtu"
	case DropQueueFull:
		return "queue-full"
	case DropNoRoute:
		return "no-route"
	case DropNoListener:
		return "no-listener"
	case DropNoMapping:
		return "no-mapping"
	case DropFiltered:
		return "filtered"
	case DropHairpin:
		return "no-hairpin"
	case DropNoFreePort:
		return "no-free-port"
	case DropClosed:
		return "closed"
	case DropTTL:
		return "ttl"
	case DropBlocked:
		return "blocked"
	}
	return fmt.Sprintf("DropReason(%d)", int(r))
}

// Event is one step of one datagram, as passed to Config.Trace.
type Event struct {
	// Time is when it happened (virtual time under testing/synctest).
	Time time.Time
	Kind EventKind
	// Node names where it happened: a host or NAT router, named by its
	// address and, behind NATs, the public addresses of the routers in
	// front of it ("198.51.100.1/192.168.1.10").
	Node string
	// Src and Dst are the datagram's addresses at this step; for
	// EventTranslate, after the rewrite.
	Src, Dst netip.AddrPort
	// PreSrc and PreDst are the addresses before the rewrite, for
	// EventTranslate only.
	PreSrc, PreDst netip.AddrPort
	// Size is the payload length in bytes.
	Size int
	// Reason is why, for EventDrop only.
	Reason DropReason
}

// String formats e on one line, its time in UTC, such as
// "10:00:00.020000 nat 198.51.100.1 192.168.1.10:5000>203.0.113.10:3478 => 198.51.100.1:5000>203.0.113.10:3478 len=5".
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s ", e.Time.UTC().Format("15:04:05.000000"), e.Kind, e.Node)
	if e.Kind == EventTranslate {
		fmt.Fprintf(&b, "%s>%s => ", e.PreSrc, e.PreDst)
	}
	fmt.Fprintf(&b, "%s>%s len=%d", e.Src, e.Dst, e.Size)
	if e.Kind == EventDrop {
		fmt.Fprintf(&b, " reason=%s", e.Reason)
	}
	return b.String()
}

// TraceTo returns a Config.Trace that writes each event to w, one line
// each. Write errors are ignored.
func TraceTo(w io.Writer) func(Event) {
	return func(e Event) {
		io.WriteString(w, e.String()+"\n")
	}
}

// Stats counts datagrams over the life of a Network.
type Stats struct {
	// Sent counts datagrams accepted by WriteTo.
	Sent uint64
	// Delivered counts datagrams that reached a receive queue.
	Delivered uint64
	// Translated counts NAT rewrites, each router and direction counted
	// once (a datagram through two NATs counts two).
	Translated uint64
	// Dropped counts lost datagrams by reason; reasons with no drops are
	// absent.
	Dropped map[DropReason]uint64
}

// counters are the network's running totals, guarded by Network.mu.
type counters struct {
	sent, delivered, translated uint64
	dropped                     [numDropReasons]uint64
}

func (c *counters) snapshot() Stats {
	s := Stats{Sent: c.sent, Delivered: c.delivered, Translated: c.translated, Dropped: make(map[DropReason]uint64)}
	for r, v := range c.dropped {
		if v != 0 {
			s.Dropped[DropReason(r)] = v
		}
	}
	return s
}
