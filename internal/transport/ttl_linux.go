package transport

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeToTTL sends b with one control message that sets its time to live:
// IP_TTL for an IPv4 destination (also on a dual-stack socket, where
// Linux sends v4-mapped destinations through its IPv4 path), else
// IPV6_HOPLIMIT. Linux has taken both on sendmsg since 4.x.
func writeToTTL(c *net.UDPConn, b []byte, addr *net.UDPAddr, ttl int) (int, error) {
	level, typ := unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT
	if addr.AddrPort().Addr().Unmap().Is4() {
		level, typ = unix.IPPROTO_IP, unix.IP_TTL
	}
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], uint32(ttl))
	n, _, err := c.WriteMsgUDP(b, oob, addr)
	return n, err
}
