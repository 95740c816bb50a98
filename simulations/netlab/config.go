package netlab

import (
	"fmt"
	"time"
)

// Config configures a Network. Start from DefaultConfig; New calls
// Validate.
type Config struct {
	// Seed seeds every random decision: loss, jitter, random NAT ports
	// and ephemeral ports. Each decision draws from a stream of its own
	// (math/rand/v2 PCG) seeded by hashing Seed with what it is about:
	// loss and jitter from the flow's source and destination and the
	// link, a NAT's ports from the router and the internal endpoint,
	// ephemeral ports from the host. So, with the same seed, the n-th
	// datagram of a flow meets the same fate on every run, however
	// goroutines sending on other flows interleave with it; the n-th
	// ephemeral port of a host and the n-th mapping of an internal
	// endpoint are the same too.
	//
	// What is not reproducible: the order of datagrams in one flow sent
	// from several goroutines, and of sockets bound on one host from
	// several; the order in which datagrams of different flows due at
	// the same instant reach a socket, when they were sent concurrently;
	// the ports of mappings made concurrently at one router where they
	// depend on each other (PortSequential; two hosts wanting the same
	// port under PortPreserving; a random port another mapping took). And
	// real nodes under testing/synctest are not byte-for-byte
	// reproducible at all: quic-go and TLS draw keys, connection IDs and
	// nonces from crypto/rand, so their datagrams, and with them the
	// sends netlab sees, change from run to run. Default 1 (arbitrary).
	Seed uint64

	// Link is the link every new host and NAT router starts with (see
	// Host.SetLink and NAT.SetLink). Default DefaultLink(): no latency,
	// no loss, MTU 1500.
	Link Link

	// ReadBuffer bounds, in bytes, what a socket may hold unread, like
	// SO_RCVBUF; datagrams arriving past it are dropped and counted as
	// DropQueueFull. Each datagram costs its length plus 256 bytes of
	// bookkeeping (guess, after a kernel's sk_buff). Conn.SetReadBuffer
	// changes it per socket (quic-go asks for 7 MiB). Default 212,992
	// (Linux net.core.rmem_default).
	ReadBuffer int

	// Trace, when set, is called for every send, NAT translation, drop
	// and delivery, in order. It runs with the network's lock held: it
	// must return quickly and must not call into the network. TraceTo
	// writes the events as text. Default nil (off).
	Trace func(Event)
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Seed:       1,
		Link:       DefaultLink(),
		ReadBuffer: 212992,
	}
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	if err := c.Link.Validate(); err != nil {
		return fmt.Errorf("Link: %w", err)
	}
	if c.ReadBuffer <= 0 {
		return fmt.Errorf("%w: ReadBuffer must be positive, got %d", ErrBadConfig, c.ReadBuffer)
	}
	return nil
}

// Link is the wire between a host or NAT router and the network it sits
// on. Its properties apply to each datagram in each direction, so a
// datagram from a host behind a NAT to a public host crosses three links:
// the host's, the NAT's, and the public host's.
type Link struct {
	// Latency is the one-way delay of each datagram. Default 0.
	Latency time.Duration
	// Jitter adds a delay drawn uniformly from [0, Jitter] to each
	// datagram, so datagrams can overtake each other. Default 0.
	Jitter time.Duration
	// Loss is the probability, from 0 to 1, that the link drops a
	// datagram (DropLoss). Default 0.
	Loss float64
	// MTU is the largest IP packet the link carries, in bytes, counting
	// 28 bytes of IPv4 and UDP headers (48 for IPv6): at 1500 the largest
	// payload is 1472. Larger datagrams are dropped (DropMTU); there is no
	// fragmentation and no ICMP. Default 1500 (Ethernet).
	MTU int
}

// DefaultLink returns a link with no latency, no jitter, no loss and an
// MTU of 1500.
func DefaultLink() Link {
	return Link{MTU: 1500}
}

// Validate reports the first problem with l.
func (l Link) Validate() error {
	switch {
	case l.Latency < 0:
		return fmt.Errorf("%w: Latency must not be negative, got %v", ErrBadConfig, l.Latency)
	case l.Jitter < 0:
		return fmt.Errorf("%w: Jitter must not be negative, got %v", ErrBadConfig, l.Jitter)
	case !(l.Loss >= 0 && l.Loss <= 1): // also refuses NaN
		return fmt.Errorf("%w: Loss must be in [0, 1], got %v", ErrBadConfig, l.Loss)
	case l.MTU < minMTU:
		return fmt.Errorf("%w: MTU must be at least %d (RFC 791), got %d", ErrBadConfig, minMTU, l.MTU)
	}
	return nil
}
