package circuit

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"testing"
)

// FuzzPeel: Peel never panics, and refuses anything but a valid onion
// with ErrBadOnion or ErrExpired. The seeds are valid onions of every
// length addressed to the same first hop.
func FuzzPeel(f *testing.F) {
	r := testRand(9000)
	nodes := makeNodes(f, r, MaxHops)
	for n := 1; n <= MaxHops; n++ {
		onion, _, err := NewOnion(r, t0, pathOf(nodes[:n]))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(onion)
	}
	f.Add([]byte{})
	f.Add(make([]byte, OnionSize))
	f.Fuzz(func(t *testing.T, onion []byte) {
		cache := NewReplayCache(1)
		res, err := Peel(nodes[0].priv, onion, t0, cache)
		if err != nil {
			if !errors.Is(err, ErrBadOnion) && !errors.Is(err, ErrExpired) {
				t.Fatalf("error %v wraps neither ErrBadOnion nor ErrExpired", err)
			}
			if cache.Len() != 0 {
				t.Fatal("a refused onion left a replay tag")
			}
			return
		}
		if cache.Len() != 1 {
			t.Fatalf("an accepted onion left %d tags", cache.Len())
		}
		if res.Terminal {
			if res.Term == nil || res.Relay != nil || res.Forward != nil || res.Next != (NodeID{}) {
				t.Fatalf("inconsistent terminal result %+v", res)
			}
			return
		}
		if res.Relay == nil || res.Term != nil || len(res.Forward) != OnionSize || res.Next != nodes[1].id {
			t.Fatalf("inconsistent relay result %+v", res)
		}
	})
}

// FuzzOpen: both ends' Open and Confirm never panic, refuse everything
// but the seeded valid packets with ErrBadPacket or ErrReplayedPacket,
// and accept a valid packet at most once.
func FuzzOpen(f *testing.F) {
	c := buildCircuit(f, 9100, 3)
	valid := map[string]bool{}
	add := func(p []byte) {
		valid[string(p)] = true
		f.Add(clone(p))
	}
	fwd, err := c.init.Seal(nil, []byte("forward seed"))
	if err != nil {
		f.Fatal(err)
	}
	add(c.forward(f, fwd))
	bwd, err := c.term.Seal(nil, []byte("backward seed"))
	if err != nil {
		f.Fatal(err)
	}
	add(c.backward(f, bwd))
	add(c.backward(f, c.term.Created()))
	f.Add(make([]byte, Overhead))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		check := func(what string, err error) {
			t.Helper()
			if err == nil {
				if !valid[string(pkt)] {
					t.Fatalf("%s accepted a packet no end sealed", what)
				}
				return
			}
			if !errors.Is(err, ErrBadPacket) && !errors.Is(err, ErrReplayedPacket) {
				t.Fatalf("%s: error %v wraps neither ErrBadPacket nor ErrReplayedPacket", what, err)
			}
		}
		_, err := c.term.Open(clone(pkt))
		check("Terminal.Open", err)
		_, err = c.init.Open(clone(pkt))
		check("Initiator.Open", err)
		check("Initiator.Confirm", c.init.Confirm(clone(pkt)))
	})
}

// FuzzRelayForward: Forward and Backward never panic, refuse exactly the
// packets of the wrong size, keep the size, and are undone by the
// initiator's copy of the relay's keys.
func FuzzRelayForward(f *testing.F) {
	c := buildCircuit(f, 9200, 2)
	r := c.relays[0]
	f.Add(make([]byte, Overhead))
	f.Add(make([]byte, Overhead-1))
	f.Add(bytes.Repeat([]byte{0xa5}, Overhead+1200))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		sizeOK := len(pkt) >= Overhead && len(pkt) <= Overhead+MaxPayload
		for _, dir := range []struct {
			name  string
			apply func([]byte) error
			undo  func([]byte)
		}{
			{"Forward", r.Forward, func(p []byte) { undoLayer(r.sf, r.pf.Decrypt, p) }},
			{"Backward", r.Backward, func(p []byte) { undoLayer(r.sb, r.pb.Decrypt, p) }},
		} {
			p := clone(pkt)
			err := dir.apply(p)
			if !sizeOK {
				if !errors.Is(err, ErrBadPacket) || !bytes.Equal(p, pkt) {
					t.Fatalf("%s of %d bytes: %v, packet changed: %v", dir.name, len(pkt), err, !bytes.Equal(p, pkt))
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s of %d bytes: %v", dir.name, len(pkt), err)
			}
			if len(p) != len(pkt) {
				t.Fatalf("%s changed the size", dir.name)
			}
			dir.undo(p)
			if !bytes.Equal(p, pkt) {
				t.Fatalf("%s is not undone by its inverse", dir.name)
			}
		}
	})
}

// undoLayer inverts one relay layer: nu = PRP^-1(nu), then the body
// stream keyed by the restored nu.
func undoLayer(stream cipher.Block, decrypt func(dst, src []byte), p []byte) {
	decrypt(p[:nuSize], p[:nuSize])
	xorCTR(stream, p[:12], p[nuSize:])
}
