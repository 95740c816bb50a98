package netlab

import "errors"

// Errors returned by netlab. Test for them with errors.Is. A Conn reports
// closing as net.ErrClosed and deadlines as os.ErrDeadlineExceeded, each
// inside a *net.OpError, as a *net.UDPConn does.
var (
	// ErrBadConfig wraps every Validate error.
	ErrBadConfig = errors.New("netlab: bad config")
	// ErrAddrInUse: an address already taken on its network, or a port
	// already bound on its host.
	ErrAddrInUse = errors.New("netlab: address already in use")
	// ErrBadAddr: WriteTo was given something other than a *net.UDPAddr
	// with an address and a non-zero port.
	ErrBadAddr = errors.New("netlab: bad destination address")
	// ErrMessageTooLong: a datagram longer than a UDP datagram can be
	// (65,507 bytes of payload over IPv4). Datagrams over a link's MTU are
	// not errors: the link drops them, as a real one does.
	ErrMessageTooLong = errors.New("netlab: message too long")
	// ErrNoFreePort: every ephemeral port of the host is bound.
	ErrNoFreePort = errors.New("netlab: no free ephemeral port")
)
