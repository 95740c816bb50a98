package netlab_test

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/mycelium-net/mycelium/simulations/netlab"
)

func TestTraceSynctest(t *testing.T) {
	t.Run("events_in_order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var got []string
			lab := newLab(t, func(c *netlab.Config) {
				c.Trace = func(e netlab.Event) {
					s := e.Kind.String() + " " + e.Node + " " + e.Src.String() + ">" + e.Dst.String()
					if e.Kind == netlab.EventDrop {
						s += " " + e.Reason.String()
					}
					got = append(got, s)
				}
			})
			nat := addNAT(t, lab, natConfig())
			h := listen(t, addHost(t, nat, lanAddr), 5000)
			s1 := listen(t, addHost(t, lab, server1), 3478)
			send(t, h, addrOf(s1), "hi")
			_, m := mustRecv(t, s1)
			send(t, s1, m, "back")
			mustRecv(t, h)
			other := listen(t, addHost(t, lab, server2), 9)
			send(t, other, m, "stranger")
			send(t, s1, netip.MustParseAddrPort("203.0.113.99:1"), "nobody")
			want := []string{
				"send 198.51.100.1/192.168.1.10 192.168.1.10:5000>203.0.113.10:3478",
				"nat 198.51.100.1 198.51.100.1:5000>203.0.113.10:3478",
				"deliver 203.0.113.10 198.51.100.1:5000>203.0.113.10:3478",
				"send 203.0.113.10 203.0.113.10:3478>198.51.100.1:5000",
				"nat 198.51.100.1 203.0.113.10:3478>192.168.1.10:5000",
				"deliver 198.51.100.1/192.168.1.10 203.0.113.10:3478>192.168.1.10:5000",
				"send 203.0.113.20 203.0.113.20:9>198.51.100.1:5000",
				"drop 198.51.100.1 203.0.113.20:9>198.51.100.1:5000 filtered",
				"send 203.0.113.10 203.0.113.10:3478>203.0.113.99:1",
				"drop internet 203.0.113.10:3478>203.0.113.99:1 no-route",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("trace:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	})
	t.Run("to_writer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var buf bytes.Buffer
			lab := newLab(t, func(c *netlab.Config) { c.Trace = netlab.TraceTo(&buf) })
			nat := addNAT(t, lab, natConfig())
			h := listen(t, addHost(t, nat, lanAddr), 5000)
			s := listen(t, addHost(t, lab, server1), 3478)
			send(t, h, addrOf(s), "hello")
			mustRecv(t, s)
			send(t, s, addrOf(h), "private addresses do not route")
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			want := []string{
				" send 198.51.100.1/192.168.1.10 192.168.1.10:5000>203.0.113.10:3478 len=5",
				" nat 198.51.100.1 192.168.1.10:5000>203.0.113.10:3478 => 198.51.100.1:5000>203.0.113.10:3478 len=5",
				" deliver 203.0.113.10 198.51.100.1:5000>203.0.113.10:3478 len=5",
				" send 203.0.113.10 203.0.113.10:3478>192.168.1.10:5000 len=30",
				" drop internet 203.0.113.10:3478>192.168.1.10:5000 len=30 reason=no-route",
			}
			if len(lines) != len(want) {
				t.Fatalf("trace has %d lines, want %d:\n%s", len(lines), len(want), buf.String())
			}
			for i := range want {
				if !strings.HasSuffix(lines[i], want[i]) || !strings.HasPrefix(lines[i], "00:00:00.000000 ") {
					t.Errorf("line %d is %q, want time 00:00:00.000000 then %q", i, lines[i], want[i])
				}
			}
		})
	})
}
