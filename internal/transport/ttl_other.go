//go:build !linux

package transport

import "net"

func writeToTTL(*net.UDPConn, []byte, *net.UDPAddr, int) (int, error) {
	return 0, ErrTTLUnsupported
}
