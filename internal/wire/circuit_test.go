package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

// TestCircuitSizes checks the sizes against the layouts they come from,
// without importing package circuit: an onion is an ephemeral key (32),
// a MAC (16) and MaxHops (5) routing blocks of 128 bytes; a data packet
// adds a 16-byte header and a 16-byte tag to at most 1400 bytes.
func TestCircuitSizes(t *testing.T) {
	if CircuitOnionSize != 32+16+5*128 {
		t.Errorf("CircuitOnionSize = %d, want %d", CircuitOnionSize, 32+16+5*128)
	}
	if MinCircuitPacket != 16+16 || MaxCircuitPacket != 16+16+1400 {
		t.Errorf("packet bounds %d..%d, want 32..1432", MinCircuitPacket, MaxCircuitPacket)
	}
	if CircuitDataHeader != 1+4 || MaxCircuitData != 1437 {
		t.Errorf("data header %d, max datagram %d; want 5, 1437", CircuitDataHeader, MaxCircuitData)
	}
	// The terminal's confirmation is a backward packet carrying a 27-byte
	// marker: 32 + 27 = 59 bytes, inside the CREATED bounds.
	if 59 < MinCircuitConfirm || 59 > MaxCircuitConfirm {
		t.Errorf("a 59-byte confirmation does not fit %d..%d", MinCircuitConfirm, MaxCircuitConfirm)
	}
}

// patterned returns n bytes that differ from each other and from zero.
func patterned(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + 1
	}
	return b
}

func TestCircuitMsgRoundTrip(t *testing.T) {
	for _, m := range []CircuitMsg{
		{Type: CircuitCreate, ID: 1, Onion: patterned(CircuitOnionSize, 1)},
		{Type: CircuitCreate, ID: 0xFFFFFFFF, Onion: make([]byte, CircuitOnionSize)},
		{Type: CircuitCreated, ID: 0x01020304, Confirm: patterned(59, 2)},
		{Type: CircuitCreated, ID: 7, Confirm: patterned(MinCircuitConfirm, 3)},
		{Type: CircuitCreated, ID: 7, Confirm: patterned(MaxCircuitConfirm, 4)},
		{Type: CircuitRefused, ID: 9, Reason: ReasonCapacity},
		{Type: CircuitRefused, ID: 9, Reason: 200},
		{Type: CircuitDestroy, ID: 10, Reason: ReasonIdle},
	} {
		b, err := AppendCircuitMsg([]byte("prefix"), m)
		if err != nil {
			t.Fatalf("%+v: %v", m.Type, err)
		}
		if string(b[:6]) != "prefix" {
			t.Fatalf("type %d: prefix clobbered", m.Type)
		}
		b = b[6:]
		if n := int(binary.BigEndian.Uint16(b)); n != len(b)-2 {
			t.Fatalf("type %d: frame length %d, body %d", m.Type, n, len(b)-2)
		}
		r := bytes.NewReader(b)
		got, err := ReadCircuitMsg(r)
		if err != nil {
			t.Fatalf("type %d: %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip %+v -> %+v", m, got)
		}
		if r.Len() != 0 {
			t.Fatalf("type %d: %d bytes left unread", m.Type, r.Len())
		}
		if _, err := ReadCircuitMsg(r); err != io.EOF {
			t.Fatalf("after the frame: %v, want io.EOF", err)
		}
	}
	b, _ := AppendCircuitMsg(nil, CircuitMsg{Type: CircuitCreate, ID: 1, Onion: make([]byte, CircuitOnionSize)})
	if len(b) != 2+MaxCircuitMessage {
		t.Fatalf("CREATE frame is %d bytes, want %d", len(b), 2+MaxCircuitMessage)
	}
}

func TestCircuitMsgAppendRejects(t *testing.T) {
	for name, m := range map[string]CircuitMsg{
		"type_0":        {ID: 1},
		"type_5":        {Type: 5, ID: 1},
		"id_0":          {Type: CircuitRefused, Reason: ReasonIdle},
		"onion_short":   {Type: CircuitCreate, ID: 1, Onion: make([]byte, CircuitOnionSize-1)},
		"onion_long":    {Type: CircuitCreate, ID: 1, Onion: make([]byte, CircuitOnionSize+1)},
		"confirm_short": {Type: CircuitCreated, ID: 1, Confirm: make([]byte, MinCircuitConfirm-1)},
		"confirm_long":  {Type: CircuitCreated, ID: 1, Confirm: make([]byte, MaxCircuitConfirm+1)},
		"refused_none":  {Type: CircuitRefused, ID: 1},
		"destroy_none":  {Type: CircuitDestroy, ID: 1},
	} {
		b, err := AppendCircuitMsg([]byte{9}, m)
		if !errors.Is(err, ErrBadCircuit) {
			t.Errorf("%s: err %v", name, err)
		}
		if !bytes.Equal(b, []byte{9}) {
			t.Errorf("%s: appended %x on error", name, b)
		}
	}
}

func TestCircuitMsgParseRejects(t *testing.T) {
	head := func(typ byte, id uint32, tail ...byte) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{typ}, id), tail...)
	}
	for name, body := range map[string][]byte{
		"empty":          {},
		"type_only":      {CircuitRefused},
		"short_id":       {CircuitRefused, 0, 0, 1},
		"unknown_type":   head(0, 1, 1),
		"type_5":         head(5, 1, 1),
		"id_0":           head(CircuitRefused, 0, ReasonIdle),
		"onion_short":    head(CircuitCreate, 1, make([]byte, CircuitOnionSize-1)...),
		"onion_long":     head(CircuitCreate, 1, make([]byte, CircuitOnionSize+1)...),
		"confirm_short":  head(CircuitCreated, 1, make([]byte, MinCircuitConfirm-1)...),
		"confirm_long":   head(CircuitCreated, 1, make([]byte, MaxCircuitConfirm+1)...),
		"refused_empty":  head(CircuitRefused, 1),
		"refused_none":   head(CircuitRefused, 1, ReasonNone),
		"refused_long":   head(CircuitRefused, 1, 1, 2),
		"destroy_none":   head(CircuitDestroy, 1, ReasonNone),
		"destroy_empty":  head(CircuitDestroy, 1),
		"over_max_frame": head(CircuitCreate, 1, make([]byte, CircuitOnionSize+100)...),
	} {
		if _, err := ParseCircuitMsg(body); !errors.Is(err, ErrBadCircuit) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestReadCircuitMsgRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"zero_length":  {0, 0},
		"over_max":     {0x02, 0xB6}, // MaxCircuitMessage + 1
		"truncated":    {0, 6, CircuitRefused, 0, 0, 0},
		"half_length":  {0},
		"bad_body":     {0, 6, CircuitRefused, 0, 0, 0, 0, ReasonIdle},
		"unknown_type": {0, 6, 0x7F, 0, 0, 0, 1, 1},
	} {
		if _, err := ReadCircuitMsg(bytes.NewReader(b)); !errors.Is(err, ErrBadCircuit) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := ReadCircuitMsg(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
}

func TestReasonString(t *testing.T) {
	want := map[byte]string{
		ReasonNone:        "none",
		ReasonCapacity:    "capacity",
		ReasonPeerLimit:   "peer-limit",
		ReasonNotAllowed:  "not-allowed",
		ReasonDraining:    "draining",
		ReasonNoRoute:     "no-route",
		ReasonBadOnion:    "bad-onion",
		ReasonReplay:      "replay",
		ReasonIdle:        "idle",
		ReasonClosed:      "closed",
		ReasonMemory:      "memory",
		ReasonDuplicateID: "duplicate-id",
		12:                "reason-12",
		255:               "reason-255",
	}
	for r, s := range want {
		if got := ReasonString(r); got != s {
			t.Errorf("ReasonString(%d) = %q, want %q", r, got, s)
		}
	}
}

func TestCircuitDataRoundTrip(t *testing.T) {
	for _, n := range []int{MinCircuitPacket, 59, 1232, MaxCircuitPacket} {
		pkt := patterned(n, byte(n))
		d, err := AppendCircuitData([]byte{0xEE}, 0xA1B2C3D4, pkt)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if d[0] != 0xEE || len(d) != 1+CircuitDataHeader+n {
			t.Fatalf("%d bytes: datagram %d bytes, prefix %#x", n, len(d), d[0])
		}
		d = d[1:]
		if d[0] != CircuitDataType {
			t.Fatalf("type byte %#x", d[0])
		}
		cid, got, err := ParseCircuitData(d)
		if err != nil || cid != 0xA1B2C3D4 || !bytes.Equal(got, pkt) {
			t.Fatalf("%d bytes: parsed %#x, %d bytes, %v", n, cid, len(got), err)
		}
		if &got[0] != &d[CircuitDataHeader] {
			t.Fatalf("%d bytes: packet does not alias the datagram", n)
		}
	}
}

// TestCircuitDataRelabelInPlace is what a relay does: parse, change the
// packet in place, then give the datagram the next link's circuit ID.
func TestCircuitDataRelabelInPlace(t *testing.T) {
	pkt := patterned(100, 5)
	d, err := AppendCircuitData(nil, 1, pkt)
	if err != nil {
		t.Fatal(err)
	}
	_, p, err := ParseCircuitData(d)
	if err != nil {
		t.Fatal(err)
	}
	p[0] ^= 0xFF
	want := append([]byte(nil), p...)
	out, err := AppendCircuitData(d[:0], 0x0BADCAFE, p)
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &d[0] {
		t.Fatal("relabelling reallocated the datagram")
	}
	cid, got, err := ParseCircuitData(out)
	if err != nil || cid != 0x0BADCAFE || !bytes.Equal(got, want) {
		t.Fatalf("relabelled: %#x, %x, %v", cid, got, err)
	}
}

func TestCircuitDataRejects(t *testing.T) {
	dg := func(typ byte, id uint32, n int) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{typ}, id), make([]byte, n)...)
	}
	for name, d := range map[string][]byte{
		"empty":      {},
		"header":     dg(CircuitDataType, 1, 0),
		"short":      dg(CircuitDataType, 1, MinCircuitPacket-1),
		"long":       dg(CircuitDataType, 1, MaxCircuitPacket+1),
		"type":       dg(0xC2, 1, 64),
		"type_zero":  dg(0, 1, 64),
		"id_zero":    dg(CircuitDataType, 0, 64),
		"stream_msg": dg(CircuitCreate, 1, CircuitOnionSize),
	} {
		if _, _, err := ParseCircuitData(d); !errors.Is(err, ErrBadCircuit) {
			t.Errorf("parse %s: err %v", name, err)
		}
	}
	for name, c := range map[string]struct {
		cid uint32
		n   int
	}{
		"id_zero": {0, 64},
		"short":   {1, MinCircuitPacket - 1},
		"long":    {1, MaxCircuitPacket + 1},
	} {
		b, err := AppendCircuitData([]byte{9}, c.cid, make([]byte, c.n))
		if !errors.Is(err, ErrBadCircuit) || !bytes.Equal(b, []byte{9}) {
			t.Errorf("append %s: %x, %v", name, b, err)
		}
	}
}

func FuzzParseCircuitMsg(f *testing.F) {
	for _, m := range []CircuitMsg{
		{Type: CircuitCreate, ID: 1, Onion: patterned(CircuitOnionSize, 1)},
		{Type: CircuitCreated, ID: 2, Confirm: patterned(59, 2)},
		{Type: CircuitRefused, ID: 3, Reason: ReasonPeerLimit},
		{Type: CircuitDestroy, ID: 4, Reason: ReasonIdle},
	} {
		b, err := AppendCircuitMsg(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[2:])
	}
	f.Add([]byte{CircuitRefused, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseCircuitMsg(body)
		if err != nil {
			if !errors.Is(err, ErrBadCircuit) {
				t.Fatalf("error %v does not wrap ErrBadCircuit", err)
			}
			return
		}
		if m.ID == 0 {
			t.Fatal("parsed circuit ID 0")
		}
		out, err := AppendCircuitMsg(nil, m)
		if err != nil {
			t.Fatalf("a parsed message does not encode: %v", err)
		}
		if !bytes.Equal(out[2:], body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", out[2:], body)
		}
	})
}

func FuzzParseCircuitData(f *testing.F) {
	d, err := AppendCircuitData(nil, 0x01020304, patterned(1232, 3))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d)
	d, _ = AppendCircuitData(nil, 1, make([]byte, MinCircuitPacket))
	f.Add(d)
	f.Add([]byte{CircuitDataType, 0, 0, 0, 0})
	f.Add([]byte{LinkNudge})
	f.Fuzz(func(t *testing.T, d []byte) {
		cid, pkt, err := ParseCircuitData(d)
		if IsLinkNudge(d) != (len(d) == 1 && d[0] == LinkNudge) {
			t.Fatalf("IsLinkNudge(%x) = %v", d, IsLinkNudge(d))
		}
		if IsLinkNudge(d) && err == nil {
			t.Fatal("a nudge parsed as circuit data") // the two must never overlap
		}
		if err != nil {
			if !errors.Is(err, ErrBadCircuit) {
				t.Fatalf("error %v does not wrap ErrBadCircuit", err)
			}
			return
		}
		if cid == 0 || len(pkt) < MinCircuitPacket || len(pkt) > MaxCircuitPacket {
			t.Fatalf("accepted cid %d, packet of %d bytes", cid, len(pkt))
		}
		out, err := AppendCircuitData(nil, cid, pkt)
		if err != nil {
			t.Fatalf("a parsed datagram does not encode: %v", err)
		}
		if !bytes.Equal(out, d) {
			t.Fatalf("re-encoding differs:\n%x\n%x", out, d)
		}
	})
}
