package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestOverlayFrameRoundTrip(t *testing.T) {
	var stream []byte
	msgs := [][]byte{{1}, bytes.Repeat([]byte{7}, MaxOverlayMessage), []byte("hello")}
	for i, m := range msgs {
		var err error
		stream, err = AppendOverlayFrame(stream, byte(LayerMembership+i%2), m)
		if err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(stream)
	buf := make([]byte, MaxOverlayMessage)
	for i, want := range msgs {
		layer, got, err := ReadOverlayFrame(r, buf)
		if err != nil || layer != byte(LayerMembership+i%2) || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: layer %d, %d bytes, err %v", i, layer, len(got), err)
		}
	}
	if _, _, err := ReadOverlayFrame(r, buf); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestOverlayFrameRejects(t *testing.T) {
	buf := make([]byte, MaxOverlayMessage)
	for name, in := range map[string][]byte{
		"bad_layer":     {9, 0, 1, 'x'},
		"layer_zero":    {0, 0, 1, 'x'},
		"layer_four":    {4, 0, 1, 'x'},
		"empty_message": {LayerMembership, 0, 0},
		"truncated":     {LayerBroadcast, 0, 5, 'a'},
		"short_header":  {LayerBroadcast, 0},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := ReadOverlayFrame(bytes.NewReader(in), buf); !errors.Is(err, ErrBadOverlayFrame) {
				t.Fatalf("err = %v, want ErrBadOverlayFrame", err)
			}
		})
	}
	if _, err := AppendOverlayFrame(nil, 4, []byte{1}); err == nil {
		t.Fatal("appended a frame of an unknown layer")
	}
	if _, err := AppendOverlayFrame(nil, LayerMembership, make([]byte, MaxOverlayMessage+1)); err == nil {
		t.Fatal("appended an oversized frame")
	}
}

func FuzzReadOverlayFrame(f *testing.F) {
	good, _ := AppendOverlayFrame(nil, LayerBroadcast, []byte("gossip"))
	f.Add(good)
	f.Add([]byte{LayerMembership, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		layer, msg, err := ReadOverlayFrame(r, make([]byte, MaxOverlayMessage))
		if err != nil {
			return
		}
		again, aerr := AppendOverlayFrame(nil, layer, msg)
		if aerr != nil || !bytes.Equal(again, b[:len(b)-r.Len()]) {
			t.Fatalf("re-encoding differs: %x vs %x (%v)", again, b[:len(b)-r.Len()], aerr)
		}
	})
}
