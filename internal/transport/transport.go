// Package transport owns a node's one UDP socket. On it run one quic.Transport
// that both listens and dials, and a reader for non-QUIC packets (STUN and
// punch packets, whose first two bits are 0). Peers authenticate each other
// with TLS 1.3 against their Ed25519 node keys.
//
// It is the only package that opens sockets.
package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-reuseport"
	"github.com/quic-go/quic-go"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// ConnectionIDLength is fixed for every Transport of a node: RFC 9000
// migration onto another Transport (quic-go's AddPath) requires the same
// length on both.
const ConnectionIDLength = 8

// LinkPacketSize is the QUIC packet size a link connection starts every
// path at (quic-go's default for a new connection): a 1280-byte IPv6
// minimum MTU path. Its datagrams carry about 1243 bytes of payload.
const LinkPacketSize = 1280

// MaxNonQUICPacket is the largest non-QUIC packet handed to the handler;
// longer ones are truncated by the read. STUN messages are far smaller.
const MaxNonQUICPacket = 1500

// Config configures a Transport.
type Config struct {
	// Key is the node's identity. Required.
	Key *identity.Key
	// ListenAddr is the UDP address to bind when PacketConn is nil, such as
	// "0.0.0.0:4242" or "127.0.0.1:0".
	ListenAddr string
	// PacketConn, when set, is used instead of opening a socket. Open takes
	// ownership: Transport.Close closes it, and so does Open if it fails.
	PacketConn net.PacketConn
	// HandshakeTimeout bounds a QUIC handshake.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection with no traffic for this long.
	IdleTimeout time.Duration
	// KeepAlive sends a ping after this much silence; keep it under the
	// 30 s that Linux conntrack gives unreplied UDP mappings.
	KeepAlive time.Duration
	// MaxIncomingStreams bounds the streams a peer may have open at once.
	MaxIncomingStreams int64
	// MaxStreamReceiveWindow and MaxConnReceiveWindow bound the bytes a
	// peer may send ahead of what is read, per stream and per connection.
	// Zero keeps quic-go's defaults (6 MiB and 15 MiB).
	MaxStreamReceiveWindow, MaxConnReceiveWindow uint64
	// NonQUIC receives each non-QUIC packet. It runs on the reader
	// goroutine and must not keep b. Nil drops them.
	NonQUIC func(b []byte, from net.Addr)
	// Logger receives transport logs. Required.
	Logger *slog.Logger
	// FixedPacketSize, when set, is the size of every QUIC packet sent, with
	// path MTU discovery off: a transport that runs inside a circuit must
	// fit its packets in the datagrams of the links beneath. 0 keeps
	// LinkPacketSize, growing by path MTU discovery.
	FixedPacketSize uint16
}

// Transport is a node's socket, its QUIC transport, and its listener.
type Transport struct {
	cfg   Config
	cert  tls.Certificate
	pconn net.PacketConn
	qt    *quic.Transport
	ln    *quic.Listener
	qconf *quic.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Open binds the socket (unless cfg.PacketConn is given), starts the
// non-QUIC reader, and starts listening for QUIC connections.
//
// Open owns cfg.PacketConn from the moment it is called: if Open fails, it
// has closed it.
func Open(cfg Config) (_ *Transport, err error) {
	// pconn is closed on every error path until the Transport holds it;
	// from then on Transport.Close owns it.
	pconn := cfg.PacketConn
	defer func() {
		if err != nil && pconn != nil {
			pconn.Close()
		}
	}()
	if cfg.Key == nil || cfg.Logger == nil {
		return nil, errors.New("transport: Config.Key and Config.Logger are required")
	}
	if len(cfg.Key.Private()) != ed25519.PrivateKeySize {
		return nil, errors.New("transport: Config.Key holds no key (use identity.NewKey or identity.LoadKeyFile)")
	}
	cert, err := selfSignedCert(cfg.Key)
	if err != nil {
		return nil, err
	}
	resetKey, err := statelessResetKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	if pconn == nil {
		pconn, err = listenUDP(cfg.ListenAddr)
		if err != nil {
			return nil, err
		}
	}
	tr := &Transport{
		cfg:   cfg,
		cert:  cert,
		pconn: pconn,
		qt: &quic.Transport{
			Conn:               pconn,
			ConnectionIDLength: ConnectionIDLength,
			StatelessResetKey:  &resetKey,
		},
		qconf: &quic.Config{
			HandshakeIdleTimeout:       cfg.HandshakeTimeout,
			MaxIdleTimeout:             cfg.IdleTimeout,
			KeepAlivePeriod:            cfg.KeepAlive,
			MaxIncomingStreams:         cfg.MaxIncomingStreams,
			MaxStreamReceiveWindow:     cfg.MaxStreamReceiveWindow,
			MaxConnectionReceiveWindow: cfg.MaxConnReceiveWindow,
			// Uni streams are not used yet; refuse them.
			MaxIncomingUniStreams: -1,
			EnableDatagrams:       true,
		},
	}
	if cfg.FixedPacketSize != 0 {
		tr.qconf.InitialPacketSize = cfg.FixedPacketSize
		tr.qconf.DisablePathMTUDiscovery = true
	} else {
		// quic-go starts a connection at 1280 bytes when this is 0, but
		// starts a path it migrates to (a peer's NAT rebinding) at 1200,
		// and grows it only where it can set DF on the socket. Datagrams
		// then shrink from about 1243 bytes of payload to about 1163,
		// too small for a circuit's packets (wire.MaxCircuitData): every
		// circuit over the link would lose every full-size packet from
		// then on. Saying 1280 keeps both at 1280.
		tr.qconf.InitialPacketSize = LinkPacketSize
	}
	tr.ctx, tr.cancel = context.WithCancel(context.Background())
	// ReadNonQUICPacket queues packets only after its first call, so make
	// that call before anything is sent or received. With a cancelled
	// context it sets up the queue and returns at once.
	primed, prime := context.WithCancel(tr.ctx)
	prime()
	_, _, _ = tr.qt.ReadNonQUICPacket(primed, nil)
	tr.wg.Add(1)
	go tr.readNonQUIC()
	ln, err := tr.qt.Listen(serverTLS(cert, cfg.Key.ID()), tr.qconf)
	if err != nil {
		pconn = nil // tr.Close closes it
		tr.Close()
		return nil, fmt.Errorf("transport: listen: %w", err)
	}
	tr.ln = ln
	return tr, nil
}

// listenUDP binds addr with SO_REUSEPORT (go-reuseport), so that a second
// socket can later share the port (for migration and hole punching), but
// refuses an address another socket already holds: with SO_REUSEPORT set on
// both, two nodes could bind the same port and the kernel would split the
// traffic between them.
//
// So it first binds addr with a plain socket, which fails with EADDRINUSE if
// anything holds the port, notes the port (the kernel's choice when addr's
// port is 0), closes that probe and binds the same address and port with
// reuseport. A small race remains: between the probe's close and the
// reuseport bind, another process that also sets SO_REUSEPORT (under the
// same user) could take the port and both would succeed. Another node
// starting on the same explicit port in that instant is the only such case;
// a plain socket taking the port makes the reuseport bind fail instead.
func listenUDP(addr string) (net.PacketConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	probe, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, listenError(addr, err)
	}
	bound := *ua
	bound.Port = probe.LocalAddr().(*net.UDPAddr).Port
	if err := probe.Close(); err != nil {
		return nil, fmt.Errorf("transport: listen %s: close probe socket: %w", addr, err)
	}
	pconn, err := reuseport.ListenPacket("udp", bound.String())
	if err != nil {
		return nil, listenError(addr, err)
	}
	return pconn, nil
}

func listenError(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return &addrInUseError{addr: addr, err: err}
	}
	return fmt.Errorf("transport: listen %s: %w", addr, err)
}

// addrInUseError says plainly that the port is taken, while still
// unwrapping to the *net.OpError and syscall.EADDRINUSE.
type addrInUseError struct {
	addr string
	err  error
}

func (e *addrInUseError) Error() string {
	return fmt.Sprintf("transport: listen %s: address already in use (is another node running?)", e.addr)
}

func (e *addrInUseError) Unwrap() error { return e.err }

// statelessResetKey derives the RFC 9000 §10.3 stateless reset key from the
// node key, so that it survives restarts: a peer that kept a connection to a
// restarted node learns at once that the connection is gone.
func statelessResetKey(k *identity.Key) (quic.StatelessResetKey, error) {
	var key quic.StatelessResetKey
	b, err := hkdf.Key(sha256.New, k.Private().Seed(), nil, "mycelium stateless reset key v1", len(key))
	if err != nil {
		return key, fmt.Errorf("transport: derive reset key: %w", err)
	}
	copy(key[:], b)
	return key, nil
}

func (t *Transport) readNonQUIC() {
	defer t.wg.Done()
	buf := make([]byte, MaxNonQUICPacket)
	for {
		n, from, err := t.qt.ReadNonQUICPacket(t.ctx, buf)
		if err != nil {
			return
		}
		if t.cfg.NonQUIC != nil {
			t.cfg.NonQUIC(buf[:n], from)
		}
	}
}

// LocalAddr is the socket's address.
func (t *Transport) LocalAddr() net.Addr { return t.pconn.LocalAddr() }

// Accept waits for the next authenticated inbound connection.
func (t *Transport) Accept(ctx context.Context) (*quic.Conn, identity.NodeID, error) {
	for {
		c, err := t.ln.Accept(ctx)
		if err != nil {
			if t.ctx.Err() != nil {
				return nil, identity.NodeID{}, net.ErrClosed
			}
			return nil, identity.NodeID{}, err
		}
		id, err := PeerID(c.ConnectionState().TLS.PeerCertificates)
		if err != nil {
			// Unreachable: VerifyConnection already checked it.
			c.CloseWithError(0, "bad certificate")
			continue
		}
		return c, id, nil
	}
}

// Dial opens a connection to addr and checks that the peer proves key want.
// A different key fails with ErrIdentityMismatch before any stream opens.
func (t *Transport) Dial(ctx context.Context, addr net.Addr, want identity.NodeID) (*quic.Conn, error) {
	if want == t.cfg.Key.ID() {
		return nil, errors.New("transport: refusing to dial our own node ID")
	}
	var got identity.NodeID
	c, err := t.qt.Dial(ctx, addr, clientTLS(t.cert, want, &got), t.qconf)
	if err != nil {
		if !got.IsZero() {
			return nil, fmt.Errorf("%w: dialed %s at %s, but the node there presented key %s", ErrIdentityMismatch, want, addr, got)
		}
		if t.ctx.Err() != nil {
			return nil, net.ErrClosed
		}
		return nil, fmt.Errorf("transport: dial %s at %s: %w", want.Short(), addr, err)
	}
	return c, nil
}

// WriteTo sends a raw (non-QUIC) packet from the node's socket.
func (t *Transport) WriteTo(b []byte, addr net.Addr) (int, error) {
	return t.qt.WriteTo(b, addr)
}

// Close closes every connection, the listener and the socket, and waits
// for the reader. It is idempotent.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.cancel()
		if t.ln != nil {
			t.ln.Close()
		}
		t.closeErr = t.qt.Close()
		// quic.Transport does not close a PacketConn it was handed.
		if err := t.pconn.Close(); err != nil && t.closeErr == nil && !errors.Is(err, net.ErrClosed) {
			t.closeErr = err
		}
		t.wg.Wait()
	})
	return t.closeErr
}
