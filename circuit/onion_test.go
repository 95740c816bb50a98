package circuit

import (
	"bytes"
	"crypto/ecdh"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// TestRoundTrip builds circuits of every length, peels them (checked in
// buildCircuit), confirms them through the relays and carries 100
// packets each way, checking sizes on every link.
func TestRoundTrip(t *testing.T) {
	for n := 1; n <= MaxHops; n++ {
		t.Run(fmt.Sprintf("hops=%d", n), func(t *testing.T) {
			c := buildCircuit(t, uint64(n), n)
			if c.init.Confirmed() {
				t.Fatal("Confirmed before Confirm")
			}
			if err := c.init.Confirm(c.backward(t, c.term.Created())); err != nil {
				t.Fatalf("Confirm: %v", err)
			}
			if !c.init.Confirmed() {
				t.Fatal("not Confirmed after Confirm")
			}
			for i := range 100 {
				size := (i * 97) % (MaxPayload + 1)
				if i == 99 {
					size = MaxPayload
				}
				checkForward(t, c, payloadOf(size, byte(i)))
				checkBackward(t, c, payloadOf(size, byte(i+1)))
			}
		})
	}
}

// checkForward carries payload from the initiator to the terminal,
// checking the packet size after every relay.
func checkForward(t *testing.T, c *testCircuit, payload []byte) {
	t.Helper()
	pkt, err := c.init.Seal(nil, payload)
	if err != nil {
		t.Fatalf("Initiator.Seal(%d bytes): %v", len(payload), err)
	}
	for i, r := range c.relays {
		if len(pkt) != Overhead+len(payload) {
			t.Fatalf("packet into relay %d is %d bytes, want %d", i, len(pkt), Overhead+len(payload))
		}
		if err := r.Forward(pkt); err != nil {
			t.Fatalf("relay %d Forward: %v", i, err)
		}
	}
	if len(pkt) != Overhead+len(payload) {
		t.Fatalf("packet into terminal is %d bytes", len(pkt))
	}
	got, err := c.term.Open(pkt)
	if err != nil {
		t.Fatalf("Terminal.Open(%d bytes): %v", len(payload), err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("terminal got %d bytes that differ from the %d sent", len(got), len(payload))
	}
}

// checkBackward carries payload from the terminal to the initiator.
func checkBackward(t *testing.T, c *testCircuit, payload []byte) {
	t.Helper()
	pkt, err := c.term.Seal(nil, payload)
	if err != nil {
		t.Fatalf("Terminal.Seal(%d bytes): %v", len(payload), err)
	}
	for i := len(c.relays) - 1; i >= 0; i-- {
		if len(pkt) != Overhead+len(payload) {
			t.Fatalf("packet into relay %d is %d bytes", i, len(pkt))
		}
		if err := c.relays[i].Backward(pkt); err != nil {
			t.Fatalf("relay %d Backward: %v", i, err)
		}
	}
	got, err := c.init.Open(pkt)
	if err != nil {
		t.Fatalf("Initiator.Open(%d bytes): %v", len(payload), err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("initiator got %d bytes that differ from the %d sent", len(got), len(payload))
	}
}

// TestOnionDeterministic: the onion depends only on rand, now and the
// path.
func TestOnionDeterministic(t *testing.T) {
	r := testRand(7)
	path := pathOf(makeNodes(t, r, 3))
	a, _, err := NewOnion(testRand(8), t0, path)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := NewOnion(testRand(8), t0, path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("same seed gave different onions")
	}
	c, _, err := NewOnion(testRand(9), t0, path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same onion")
	}
}

// TestOnionHidesPosition: every onion a hop receives, and what it is left
// with after removing its block, has no run of zero bytes, so nothing
// marks how many hops came before or remain. A 16-byte zero run would
// show zero padding or a zero filler.
func TestOnionHidesPosition(t *testing.T) {
	zeros := make([]byte, 16)
	for n := 1; n <= MaxHops; n++ {
		c := buildCircuit(t, uint64(100+n), n)
		for i, onion := range c.onions {
			if bytes.Contains(onion, zeros) {
				t.Fatalf("%d hops: onion at hop %d has a zero run", n, i)
			}
			gamma := decryptedBeta(t, c.nodes[i].priv, onion)
			if bytes.Contains(gamma[BlockSize:], zeros) {
				t.Fatalf("%d hops: hop %d's decrypted remainder has a zero run", n, i)
			}
		}
	}
}

// decryptedBeta returns (beta || 0^B) XOR the hop's header stream, as
// Peel computes it.
func decryptedBeta(t *testing.T, priv *ecdh.PrivateKey, onion []byte) []byte {
	t.Helper()
	eph, err := ecdh.X25519().NewPublicKey(onion[:keySize])
	if err != nil {
		t.Fatal(err)
	}
	shared, err := priv.ECDH(eph)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := deriveHop(shared, onion[:keySize], priv.PublicKey().Bytes())
	if err != nil {
		t.Fatal(err)
	}
	gamma := make([]byte, betaSize+BlockSize)
	copy(gamma, onion[keySize+macSize:])
	if err := xorStream(&hs.rho, zeroNonce[:], gamma); err != nil {
		t.Fatal(err)
	}
	return gamma
}

// TestOnionBitFlips flips one bit in every byte of the onion each hop
// receives; that hop must refuse it with ErrBadOnion. It also runs each
// flipped original onion along the whole path and requires some hop to
// catch it, and no terminal to accept it.
func TestOnionBitFlips(t *testing.T) {
	for _, n := range []int{1, 3, MaxHops} {
		c := buildCircuit(t, uint64(200+n), n)
		for hop, onion := range c.onions {
			for pos := range onion {
				bad := clone(onion)
				bad[pos] ^= 1 << (pos % 8)
				_, err := Peel(c.nodes[hop].priv, bad, t0, NewReplayCache(1))
				wantErr(t, err, ErrBadOnion, fmt.Sprintf("%d hops, hop %d, byte %d", n, hop, pos))
			}
		}
		for pos := range OnionSize {
			bad := clone(c.onions[0])
			bad[pos] ^= 0x80 >> (pos % 8)
			caught := false
			for hop, nd := range c.nodes {
				res, err := Peel(nd.priv, bad, t0, NewReplayCache(1))
				if err != nil {
					wantErr(t, err, ErrBadOnion, fmt.Sprintf("%d hops, byte %d, hop %d", n, pos, hop))
					caught = true
					break
				}
				if res.Terminal {
					break
				}
				bad = res.Forward
			}
			if !caught {
				t.Fatalf("%d hops: flip at byte %d reached the end of the path", n, pos)
			}
		}
	}
}

// TestPeelReplay: a hop peels an onion once.
func TestPeelReplay(t *testing.T) {
	c := buildCircuit(t, 300, 3)
	for hop, nd := range c.nodes {
		_, err := Peel(nd.priv, c.onions[hop], t0.Add(time.Second), nd.cache)
		wantErr(t, err, ErrReplay, fmt.Sprintf("second peel at hop %d", hop))
	}
	// Another hop's cache has not seen this onion's tag; the first hop's
	// onion under a fresh cache is accepted again.
	if _, err := Peel(c.nodes[0].priv, c.onions[0], t0, NewReplayCache(4)); err != nil {
		t.Fatalf("peel with a fresh cache: %v", err)
	}
}

// TestPeelExpired: an onion is accepted within SetupMaxAge of its
// creation, either way, and refused beyond it without using the cache.
func TestPeelExpired(t *testing.T) {
	r := testRand(400)
	nodes := makeNodes(t, r, 2)
	onion, _, err := NewOnion(r, t0, pathOf(nodes))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now time.Time
		ok  bool
	}{
		{t0, true},
		{t0.Add(SetupMaxAge), true},
		{t0.Add(-SetupMaxAge), true},
		{t0.Add(SetupMaxAge + time.Second), false},
		{t0.Add(-SetupMaxAge - time.Second), false},
		{t0.Add(24 * time.Hour), false},
		{time.Unix(0, 0), false},
	} {
		cache := NewReplayCache(4)
		_, err := Peel(nodes[0].priv, onion, tc.now, cache)
		if tc.ok && err != nil {
			t.Fatalf("now = t0%+v: %v", tc.now.Sub(t0), err)
		}
		if !tc.ok {
			wantErr(t, err, ErrExpired, fmt.Sprintf("now = t0%+v", tc.now.Sub(t0)))
			if cache.Len() != 0 {
				t.Fatalf("an expired onion left %d tags in the cache", cache.Len())
			}
		}
	}
}

// TestPeelWrongKey: an onion for another node does not verify.
func TestPeelWrongKey(t *testing.T) {
	c := buildCircuit(t, 500, 2)
	_, err := Peel(c.nodes[1].priv, c.onions[0], t0, NewReplayCache(4))
	wantErr(t, err, ErrBadOnion, "peel with the next hop's key")
}

// TestPeelBadArguments covers a nil or wrong-curve key, a nil cache and
// wrong sizes.
func TestPeelBadArguments(t *testing.T) {
	c := buildCircuit(t, 600, 1)
	onion := c.onions[0]
	priv := c.nodes[0].priv
	_, err := Peel(nil, onion, t0, NewReplayCache(1))
	wantErr(t, err, ErrBadArgument, "nil key")
	p256, err := ecdh.P256().NewPrivateKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Peel(p256, onion, t0, NewReplayCache(1))
	wantErr(t, err, ErrBadArgument, "P-256 key")
	_, err = Peel(priv, onion, t0, nil)
	wantErr(t, err, ErrBadArgument, "nil cache")
	for _, size := range []int{0, 1, OnionSize - 1, OnionSize + 1} {
		b := make([]byte, size)
		copy(b, onion)
		_, err = Peel(priv, b, t0, NewReplayCache(1))
		wantErr(t, err, ErrBadOnion, fmt.Sprintf("%d-byte onion", size))
	}
	// A low-order ephemeral key gives no shared secret.
	bad := clone(onion)
	clear(bad[:keySize])
	_, err = Peel(priv, bad, t0, NewReplayCache(1))
	wantErr(t, err, ErrBadOnion, "zero ephemeral key")
}

// TestNewOnionBadPath covers path lengths, missing and bad keys and the
// random source.
func TestNewOnionBadPath(t *testing.T) {
	r := testRand(700)
	path := pathOf(makeNodes(t, r, MaxHops+1))
	for _, n := range []int{0, MaxHops + 1} {
		_, _, err := NewOnion(r, t0, path[:n])
		wantErr(t, err, ErrBadPath, fmt.Sprintf("%d hops", n))
	}
	_, _, err := NewOnion(r, t0, nil)
	wantErr(t, err, ErrBadPath, "nil path")

	noKey := append([]Hop(nil), path[:3]...)
	noKey[1].OnionKey = nil
	_, _, err = NewOnion(r, t0, noKey)
	wantErr(t, err, ErrBadPath, "nil onion key")

	p256, err := ecdh.P256().NewPrivateKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	wrongCurve := append([]Hop(nil), path[:3]...)
	wrongCurve[2].OnionKey = p256.PublicKey()
	_, _, err = NewOnion(r, t0, wrongCurve)
	wantErr(t, err, ErrBadPath, "P-256 onion key")

	zero, err := ecdh.X25519().NewPublicKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	lowOrder := append([]Hop(nil), path[:2]...)
	lowOrder[0].OnionKey = zero
	_, _, err = NewOnion(r, t0, lowOrder)
	wantErr(t, err, ErrBadPath, "low-order onion key")

	_, _, err = NewOnion(nil, t0, path[:2])
	wantErr(t, err, ErrBadArgument, "nil rand")
	_, _, err = NewOnion(iotest.ErrReader(io.ErrUnexpectedEOF), t0, path[:2])
	wantErr(t, err, ErrCrypto, "failing rand")
}
