package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestPathProbeRoundTrip(t *testing.T) {
	key := &[PathKeyLen]byte{1, 2, 3}
	other := &[PathKeyLen]byte{1, 2, 4}
	sess := PathSession{9, 8, 7, 6, 5, 4, 3, 2}
	for _, typ := range []byte{PathPing, PathPong} {
		b := AppendPathProbe(nil, typ, sess, 0x0102030405060708, key)
		if len(b) != PathProbeLen {
			t.Fatalf("probe is %d bytes, want %d", len(b), PathProbeLen)
		}
		p, err := ParsePathPacket(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.Type != typ || p.Session != sess || p.Nonce != 0x0102030405060708 {
			t.Fatalf("parsed %+v", p)
		}
		if !p.Verify(key) {
			t.Fatal("a probe does not verify under its own key")
		}
		if p.Verify(other) {
			t.Fatal("a probe verifies under another key")
		}
		for i := range b {
			for bit := range 8 {
				c := bytes.Clone(b)
				c[i] ^= 1 << bit
				if q, err := ParsePathPacket(c); err == nil && q.Verify(key) {
					t.Fatalf("flipping bit %d of byte %d still verifies", bit, i)
				}
			}
		}
	}
}

func TestPathData(t *testing.T) {
	sess := PathSession{1}
	b := append(AppendPathData(nil, sess), "quic packet"...)
	p, err := ParsePathPacket(b)
	if err != nil || p.Type != PathData || p.Session != sess || string(p.Payload) != "quic packet" {
		t.Fatalf("parsed %+v, %v", p, err)
	}
	if p.Verify(&[PathKeyLen]byte{}) {
		t.Fatal("a DATA packet verified: it carries no tag")
	}
}

func TestPathPacketRefused(t *testing.T) {
	sess := PathSession{1}
	probe := AppendPathProbe(nil, PathPing, sess, 1, &[PathKeyLen]byte{})
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrPathType},
		{"stun", []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}, ErrPathType},
		{"quic", []byte{0x40, 1, 2, 3}, ErrPathType},
		{"header only", AppendPathData(nil, sess), ErrPathLength},
		{"short header", []byte{PathData, 1, 2}, ErrPathLength},
		{"too long", append(AppendPathData(nil, sess), make([]byte, MaxPathPayload+1)...), ErrPathLength},
		{"short probe", probe[:len(probe)-1], ErrPathLength},
		{"long probe", append(bytes.Clone(probe), 0), ErrPathLength},
	} {
		if _, err := ParsePathPacket(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := ParsePathPacket(append(AppendPathData(nil, sess), make([]byte, MaxPathPayload)...)); err != nil {
		t.Errorf("the largest DATA packet: %v", err)
	}
}

func FuzzParsePathPacket(f *testing.F) {
	key := &[PathKeyLen]byte{7}
	f.Add(AppendPathProbe(nil, PathPing, PathSession{1}, 5, key))
	f.Add(AppendPathProbe(nil, PathPong, PathSession{2}, 6, key))
	f.Add(append(AppendPathData(nil, PathSession{3}), 0x40, 1, 2))
	f.Add([]byte{PathData})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePathPacket(b)
		if err != nil {
			return
		}
		switch p.Type {
		case PathData:
			if len(p.Payload) == 0 || len(p.Payload) > MaxPathPayload {
				t.Fatalf("payload of %d bytes accepted", len(p.Payload))
			}
			if !bytes.Equal(append(AppendPathData(nil, p.Session), p.Payload...), b) {
				t.Fatal("DATA does not re-encode to its input")
			}
		case PathPing, PathPong:
			again := AppendPathProbe(nil, p.Type, p.Session, p.Nonce, key)
			if p.Verify(key) != bytes.Equal(again, b) {
				t.Fatal("Verify disagrees with re-encoding under the key")
			}
		default:
			t.Fatalf("type %#x accepted", p.Type)
		}
	})
}
