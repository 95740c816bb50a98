package des

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// recordLen is the length of an event's canonical encoding before the
// message bytes:
//
//	 0       8     9     10      14      18       26      30
//	+-------+-----+-----+-------+-------+--------+-------+----------+
//	| at ns | kind| layer| node | peer  | token  | len   | msg ...  |
//	+-------+-----+-----+-------+-------+--------+-------+----------+
//
// All integers little-endian; node and peer are int32 (-1 for none).
const recordLen = 30

// record feeds one event to the trace hash and the text trace.
func (e *Engine) record(ev event, msg []byte) {
	if e.hash == nil && e.cfg.Trace == nil {
		return
	}
	b := slices.Grow(e.rec[:0], recordLen)
	b = binary.LittleEndian.AppendUint64(b, uint64(ev.at))
	b = append(b, byte(ev.kind), byte(ev.layer))
	b = binary.LittleEndian.AppendUint32(b, uint32(ev.node))
	b = binary.LittleEndian.AppendUint32(b, uint32(ev.peer))
	b = binary.LittleEndian.AppendUint64(b, ev.token)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(msg)))
	e.rec = b
	if e.hash != nil {
		e.hash.Write(b)
		e.hash.Write(msg)
	}
	if e.cfg.Trace != nil {
		fmt.Fprintf(e.cfg.Trace, "%d %s node=%d peer=%d layer=%d token=%d len=%d msg=%x\n",
			int64(ev.at), ev.kind, ev.node, ev.peer, ev.layer, ev.token, len(msg), msg[:min(len(msg), 16)])
	}
}

// TraceHash returns the SHA-256 of the canonical encoding of every event
// so far (zeros with Config.NoHash).
func (e *Engine) TraceHash() [32]byte {
	var h [32]byte
	if e.hash != nil {
		e.hash.Sum(h[:0])
	}
	return h
}
