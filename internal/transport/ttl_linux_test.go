package transport

import (
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// TestWriteToTTL sends over loopback with TTL 2 and reads the TTL the
// packet arrived with (IP_RECVTTL), then checks an ordinary WriteTo still
// leaves with the socket's default.
func TestWriteToTTL(t *testing.T) {
	for _, tc := range []struct{ name, network, listen, node string }{
		{"v4", "udp4", "127.0.0.1:0", "127.0.0.1:0"},
		{"v6", "udp6", "[::1]:0", "[::1]:0"},
		{"v4_from_dual_stack", "udp4", "127.0.0.1:0", ":0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, err := net.ListenUDP(tc.network, mustResolve(t, tc.network, tc.listen))
			if err != nil {
				t.Skipf("no %s loopback: %v", tc.network, err)
			}
			defer rc.Close()
			level, opt, want := unix.IPPROTO_IP, unix.IP_RECVTTL, unix.IP_TTL
			if tc.network == "udp6" {
				level, opt, want = unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, unix.IPV6_HOPLIMIT
			}
			sc, err := rc.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			if err := sc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, 1) }); err != nil || serr != nil {
				t.Fatalf("set receive TTL option: %v %v", err, serr)
			}

			key, err := identity.NewKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := Open(Config{Key: key, ListenAddr: tc.node, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()

			readTTL := func() int {
				t.Helper()
				buf, oob := make([]byte, 64), make([]byte, 128)
				_, oobn, _, _, err := rc.ReadMsgUDP(buf, oob)
				if err != nil {
					t.Fatal(err)
				}
				msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range msgs {
					if int(m.Header.Level) == level && int(m.Header.Type) == want && len(m.Data) >= 4 {
						return int(binary.NativeEndian.Uint32(m.Data))
					}
				}
				t.Fatalf("no TTL control message in %d bytes of ancillary data", oobn)
				return 0
			}
			if _, err := tr.WriteToTTL([]byte("opener"), rc.LocalAddr(), 2); err != nil {
				t.Fatalf("WriteToTTL: %v", err)
			}
			if got := readTTL(); got != 2 {
				t.Fatalf("packet arrived with TTL %d, want 2", got)
			}
			if _, err := tr.WriteTo([]byte("plain"), rc.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if got := readTTL(); got == 2 || got == 0 {
				t.Fatalf("a plain WriteTo arrived with TTL %d: the opener's TTL stuck to the socket", got)
			}
			for _, bad := range []int{0, 256, -1} {
				if _, err := tr.WriteToTTL([]byte("x"), rc.LocalAddr(), bad); err == nil {
					t.Errorf("WriteToTTL with TTL %d: no error", bad)
				}
			}
		})
	}
}

func mustResolve(t *testing.T, network, addr string) *net.UDPAddr {
	t.Helper()
	ua, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return ua
}
