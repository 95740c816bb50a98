package relay

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/wire"
)

// BenchmarkLookupAndAllow is the table's share of a forward datagram:
// the lookup and the rate limit.
func BenchmarkLookupAndAllow(b *testing.B) {
	tab, prev := hotTable(b)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		if c := tab.FromPrev(prev, 7); c == nil || !c.AllowForward(now, 1237) {
			b.Fatal("dropped")
		}
	}
}

// BenchmarkForwardPath is a relay's whole work per forward datagram:
// parse, look up, rate limit, apply the layer, relabel.
func BenchmarkForwardPath(b *testing.B) {
	tab, prev := hotTable(b)
	d, err := wire.AppendCircuitData(nil, 7, make([]byte, 1232))
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	b.SetBytes(int64(len(d)))
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		binary.BigEndian.PutUint32(d[1:], 7) // as the previous hop sent it
		cid, pkt, err := wire.ParseCircuitData(d)
		if err != nil {
			b.Fatal(err)
		}
		c := tab.FromPrev(prev, cid)
		if c == nil || !c.AllowForward(now, len(d)) {
			b.Fatal("dropped")
		}
		if err := c.Keys.Forward(pkt); err != nil {
			b.Fatal(err)
		}
		if d, err = wire.AppendCircuitData(d[:0], c.NextCID, pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// hotTable returns a table of 1000 relayed circuits, one of them from
// prev with ID 7, at a rate no benchmark reaches.
func hotTable(b *testing.B) (*Table, NodeID) {
	res := DefaultResources()
	res.BytesPerSecond = 1 << 40
	tab := newTestTable(b, res, 60)
	for i := range 999 {
		mustOpen(b, tab, t0, prevOf(i), 7, node(2))
	}
	prev := node(1)
	mustOpen(b, tab, t0, prev, 7, node(2))
	return tab, prev
}
