package mycelium

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/mycelium-net/mycelium/broadcast"
	"github.com/mycelium-net/mycelium/circuit"
	"github.com/mycelium-net/mycelium/membership"
	"github.com/mycelium-net/mycelium/registry"
	"github.com/mycelium-net/mycelium/relay"
)

// Config configures a Node. Start from DefaultConfig; New calls Validate.
type Config struct {
	// Key is the node's identity. Required.
	Key *Key

	// ListenAddr is the UDP address the node binds, such as
	// "0.0.0.0:4433". Default "0.0.0.0:0" (any free port). Ignored when
	// PacketConn is set.
	ListenAddr string

	// PacketConn, when set, carries the node's traffic instead of a UDP
	// socket of its own: tests and the network lab run the real node over
	// simulated networks this way. Once New succeeds the node owns it and
	// closes it in Close (or when Start fails).
	PacketConn net.PacketConn

	// Bootstrap lists peers to connect to at Start. The node keeps a
	// connection to each: it waits 1 s between attempts, doubling to 30 s,
	// and resets the wait once a connection has stayed up for 30 s.
	Bootstrap []Peer

	// Relay announces the relay role in the node's record: nodes behind
	// NATs pick relays first as their home relays, through which circuits
	// to them run. Every node relays circuits whatever this says, within
	// RelayResources.
	Relay bool

	// HandshakeTimeout bounds a QUIC handshake, so dialing an address
	// where nobody answers fails after this long. Default 5 s (quic-go's
	// default HandshakeIdleTimeout).
	HandshakeTimeout time.Duration

	// IdleTimeout closes a connection that has heard nothing for this
	// long. Default 30 s (quic-go's default MaxIdleTimeout).
	IdleTimeout time.Duration

	// KeepAlive is the silence after which a ping is sent. Default 15 s:
	// under the 30 s Linux conntrack keeps an unreplied UDP mapping, and
	// under half of IdleTimeout.
	KeepAlive time.Duration

	// StreamHeaderTimeout bounds how long an inbound stream may take to
	// send its service header before it is refused. Default 10 s (guess).
	StreamHeaderTimeout time.Duration

	// PunchTTL is the IP time to live of the opener packets a hole punch
	// sends before its simultaneous dial: each side opens its own NAT
	// for the peer with packets that die before the peer's NAT, so that
	// neither router sees the peer's packet first. That ordering is what
	// Linux conntrack needs (DESIGN.md, "the conntrack race"). Default 2:
	// past the host's own router, dead at the next. 0 sends no openers.
	// Where it is too large for a path (the two NATs are one hop apart)
	// the peer counts the openers it receives (punch_openers_seen).
	PunchTTL int

	// CircuitRelays is the fewest relays a circuit this node builds has
	// (1 to circuit.MaxRelays). A longer path is taken only when the
	// target is not reachable with fewer. Default circuit.DefaultRelays,
	// 1: a circuit exists to reach a node no direct path reaches, one
	// relay holding a link to the target does that, and every further
	// relay costs a link of latency and about a quarter of the
	// throughput. Set 2 or more so that no single relay learns both ends
	// (see the threat model in package circuit).
	CircuitRelays int

	// Resources bounds what peers can make the node hold.
	Resources Resources

	// RelayResources bounds the circuits the node carries for others and
	// ends itself (relay.Resources: circuits in all and per peer, bytes
	// per second per circuit, idle timeout, memory, an allow-list).
	// Default relay.DefaultResources().
	RelayResources relay.Resources

	// Membership configures the HyParView overlay (view sizes, walk
	// lengths, shuffles). Default membership.DefaultConfig().
	Membership membership.Config

	// Broadcast configures Plumtree (timeouts, caches, payload limit).
	// Default broadcast.DefaultConfig().
	Broadcast broadcast.Config

	// Registry configures the registry of signed node records (record
	// lifetime and refresh, capacity, anti-entropy). Default
	// registry.DefaultConfig().
	Registry registry.Config

	// Logger receives the node's logs. Required; DefaultConfig discards.
	Logger *slog.Logger
}

// Resources are the node's limits on what peers may make it hold.
type Resources struct {
	// MaxPeers bounds the peers with an open connection. Inbound
	// connections past it are refused. Default 1024 (guess).
	MaxPeers int
	// MaxStreamsPerPeer bounds the streams one peer may have open to this
	// node at once (QUIC's MAX_STREAMS). Default 256 (guess).
	MaxStreamsPerPeer int64
	// AcceptBacklog bounds the streams waiting in one Listener's Accept
	// queue; streams past it are refused as overloaded. Default 64.
	AcceptBacklog int
	// MaxPendingStreams bounds, node-wide, the inbound streams whose
	// service header has not yet arrived (each holds a goroutine for up
	// to StreamHeaderTimeout); streams past it are reset. Default 1024
	// (guess).
	MaxPendingStreams int
	// MaxStreamReceiveWindow bounds, in bytes, what a peer may send on one
	// stream ahead of what the reader has read. Default 6 MiB (quic-go's
	// default).
	MaxStreamReceiveWindow uint64
	// MaxConnReceiveWindow bounds the same over a whole connection. With
	// MaxPeers it bounds the memory peers can fill with unread data:
	// MaxPeers × MaxConnReceiveWindow. Default 15 MiB (quic-go's default).
	MaxConnReceiveWindow uint64
}

// DefaultConfig returns a Config with every default filled in except Key.
func DefaultConfig() Config {
	return Config{
		ListenAddr:          "0.0.0.0:0",
		HandshakeTimeout:    5 * time.Second,
		IdleTimeout:         30 * time.Second,
		KeepAlive:           15 * time.Second,
		StreamHeaderTimeout: 10 * time.Second,
		PunchTTL:            2,
		CircuitRelays:       circuit.DefaultRelays,
		Resources:           DefaultResources(),
		RelayResources:      relay.DefaultResources(),
		Membership:          membership.DefaultConfig(),
		Broadcast:           broadcast.DefaultConfig(),
		Registry:            registry.DefaultConfig(),
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// DefaultResources returns the default limits.
func DefaultResources() Resources {
	return Resources{
		MaxPeers:               1024,
		MaxStreamsPerPeer:      256,
		AcceptBacklog:          64,
		MaxPendingStreams:      1024,
		MaxStreamReceiveWindow: 6 << 20,
		MaxConnReceiveWindow:   15 << 20,
	}
}

// ErrBadConfig wraps every Validate error.
var ErrBadConfig = errors.New("mycelium: bad config")

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, a...)...)
	}
	switch {
	case c.Key == nil:
		return bad("Key is required")
	case c.Logger == nil:
		return bad("Logger is required (DefaultConfig sets one that discards)")
	case c.PacketConn == nil && c.ListenAddr == "":
		return bad("ListenAddr or PacketConn is required")
	case c.HandshakeTimeout <= 0:
		return bad("HandshakeTimeout must be positive, got %v", c.HandshakeTimeout)
	case c.IdleTimeout <= 0:
		return bad("IdleTimeout must be positive, got %v", c.IdleTimeout)
	case c.KeepAlive <= 0 || c.KeepAlive >= c.IdleTimeout:
		return bad("KeepAlive must be positive and below IdleTimeout (%v), got %v", c.IdleTimeout, c.KeepAlive)
	case c.StreamHeaderTimeout <= 0:
		return bad("StreamHeaderTimeout must be positive, got %v", c.StreamHeaderTimeout)
	case c.PunchTTL < 0 || c.PunchTTL > 255:
		return bad("PunchTTL must be 0 (no openers) to 255, got %d", c.PunchTTL)
	case c.CircuitRelays < 1 || c.CircuitRelays > circuit.MaxRelays:
		return bad("CircuitRelays must be 1 to %d, got %d", circuit.MaxRelays, c.CircuitRelays)
	case c.Resources.MaxPeers <= 0:
		return bad("Resources.MaxPeers must be positive, got %d", c.Resources.MaxPeers)
	case c.Resources.MaxStreamsPerPeer <= 0:
		return bad("Resources.MaxStreamsPerPeer must be positive, got %d", c.Resources.MaxStreamsPerPeer)
	case c.Resources.AcceptBacklog <= 0:
		return bad("Resources.AcceptBacklog must be positive, got %d", c.Resources.AcceptBacklog)
	case c.Resources.MaxStreamReceiveWindow < 64<<10 || c.Resources.MaxConnReceiveWindow < c.Resources.MaxStreamReceiveWindow:
		return bad("Resources: MaxStreamReceiveWindow must be at least 64 KiB and MaxConnReceiveWindow at least that (got %d and %d)", c.Resources.MaxStreamReceiveWindow, c.Resources.MaxConnReceiveWindow)
	case c.Resources.MaxPendingStreams <= 0:
		return bad("Resources.MaxPendingStreams must be positive, got %d", c.Resources.MaxPendingStreams)
	}
	if err := c.Membership.Validate(); err != nil {
		return bad("Membership: %v", err)
	}
	if err := c.Broadcast.Validate(); err != nil {
		return bad("Broadcast: %v", err)
	}
	if err := c.Registry.Validate(); err != nil {
		return bad("Registry: %v", err)
	}
	if err := c.RelayResources.Validate(); err != nil {
		return bad("RelayResources: %v", err)
	}
	if c.PacketConn == nil {
		if _, err := net.ResolveUDPAddr("udp", c.ListenAddr); err != nil {
			return bad("ListenAddr %q: %v", c.ListenAddr, err)
		}
	}
	for _, p := range c.Bootstrap {
		if p.ID == c.Key.ID() {
			return bad("Bootstrap lists this node's own ID")
		}
		if p.Addr == nil {
			return bad("Bootstrap peer %s has no address", p.ID.Short())
		}
	}
	return nil
}
