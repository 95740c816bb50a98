package circuit

import (
	"bytes"
	"fmt"
	"testing"
)

// TestRelaysCannotRead: on no link, forward or backward, does the packet
// hold the plaintext; and a packet missing any one relay's layer, or
// opened with keys from another circuit through the same nodes, does not
// open.
func TestRelaysCannotRead(t *testing.T) {
	c := buildCircuit(t, 1000, 3)
	payload := payloadOf(600, 'x')
	probe := payload[1:33]

	pkt, err := c.init.Seal(nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	// links[i] is the packet as relay i (or, last, the terminal) gets it.
	links := [][]byte{clone(pkt)}
	for i, r := range c.relays {
		if err := r.Forward(pkt); err != nil {
			t.Fatalf("relay %d: %v", i, err)
		}
		links = append(links, clone(pkt))
	}
	for i, l := range links {
		if bytes.Contains(l, probe) {
			t.Fatalf("forward link %d carries the plaintext", i)
		}
	}
	// Skip each relay in turn: the terminal cannot open the result.
	for skip := range c.relays {
		p := clone(links[0])
		for i, r := range c.relays {
			if i != skip {
				if err := r.Forward(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, err := c.term.Open(p)
		wantErr(t, err, ErrBadPacket, fmt.Sprintf("forward packet without relay %d's layer", skip))
	}
	// The same nodes, another circuit: its terminal cannot open ours.
	var other struct{ term *Terminal }
	onion, _, err := NewOnion(testRand(1001), t0, pathOf(c.nodes))
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.nodes {
		res, err := Peel(nd.priv, onion, t0, NewReplayCache(1))
		if err != nil {
			t.Fatal(err)
		}
		onion, other.term = res.Forward, res.Term
	}
	_, err = other.term.Open(clone(links[len(links)-1]))
	wantErr(t, err, ErrBadPacket, "another circuit's terminal")
	if _, err := c.term.Open(links[len(links)-1]); err != nil {
		t.Fatalf("the right terminal: %v", err)
	}

	// Backward.
	pkt, err = c.term.Seal(nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	back := [][]byte{clone(pkt)}
	for i := len(c.relays) - 1; i >= 0; i-- {
		if err := c.relays[i].Backward(pkt); err != nil {
			t.Fatal(err)
		}
		back = append(back, clone(pkt))
	}
	for i, l := range back {
		if bytes.Contains(l, probe) {
			t.Fatalf("backward link %d carries the plaintext", i)
		}
	}
	for skip := range c.relays {
		p := clone(back[0])
		for i := len(c.relays) - 1; i >= 0; i-- {
			if i != skip {
				if err := c.relays[i].Backward(p); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, err := c.init.Open(p)
		wantErr(t, err, ErrBadPacket, fmt.Sprintf("backward packet without relay %d's layer", skip))
	}
	if _, err := c.init.Open(back[len(back)-1]); err != nil {
		t.Fatalf("the full backward packet: %v", err)
	}
}

// TestHeadersUnlinkable: one packet has a different nu and body on every
// link, and the same size.
func TestHeadersUnlinkable(t *testing.T) {
	c := buildCircuit(t, 1100, MaxHops)
	payload := payloadOf(300, 'u')
	check := func(dir string, links [][]byte) {
		t.Helper()
		seen := map[string]int{}
		for i, l := range links {
			if len(l) != Overhead+len(payload) {
				t.Fatalf("%s link %d: %d bytes", dir, i, len(l))
			}
			for _, part := range []string{"nu:" + string(l[:nuSize]), "nu12:" + string(l[:12]), "body:" + string(l[nuSize:nuSize+32])} {
				if j, ok := seen[part]; ok {
					t.Fatalf("%s links %d and %d share a header or body prefix", dir, j, i)
				}
				seen[part] = i
			}
			if cb := counterBlock(2); bytes.Equal(l[:nuSize], cb[:]) || bytes.Equal(l[8:nuSize], make([]byte, 8)) {
				t.Fatalf("%s link %d shows the counter block", dir, i)
			}
		}
	}
	for range 2 { // counters 1 and 2
		pkt, err := c.init.Seal(nil, payload)
		if err != nil {
			t.Fatal(err)
		}
		links := [][]byte{clone(pkt)}
		for _, r := range c.relays {
			if err := r.Forward(pkt); err != nil {
				t.Fatal(err)
			}
			links = append(links, clone(pkt))
		}
		check("forward", links)
		if _, err := c.term.Open(pkt); err != nil {
			t.Fatal(err)
		}

		pkt, err = c.term.Seal(nil, payload)
		if err != nil {
			t.Fatal(err)
		}
		links = [][]byte{clone(pkt)}
		for i := len(c.relays) - 1; i >= 0; i-- {
			if err := c.relays[i].Backward(pkt); err != nil {
				t.Fatal(err)
			}
			links = append(links, clone(pkt))
		}
		check("backward", links)
		if _, err := c.init.Open(pkt); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDataBitFlips flips one bit in every byte of a packet on every link,
// both ways; the receiving end must refuse each with ErrBadPacket, and
// still accept the untouched packet afterwards.
func TestDataBitFlips(t *testing.T) {
	c := buildCircuit(t, 1200, 3)
	payload := payloadOf(64, 'f')

	pkt, err := c.init.Seal(nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	for link := 0; link <= len(c.relays); link++ {
		for pos := range pkt {
			p := clone(pkt)
			for _, r := range c.relays[:link] {
				if err := r.Forward(p); err != nil {
					t.Fatal(err)
				}
			}
			p[pos] ^= 1 << (pos % 8)
			for _, r := range c.relays[link:] {
				if err := r.Forward(p); err != nil {
					t.Fatal(err)
				}
			}
			_, err := c.term.Open(p)
			wantErr(t, err, ErrBadPacket, fmt.Sprintf("forward, link %d, byte %d", link, pos))
		}
	}
	if got, err := c.term.Open(c.forward(t, pkt)); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("untouched forward packet: %v", err)
	}

	pkt, err = c.term.Seal(nil, payload)
	if err != nil {
		t.Fatal(err)
	}
	n := len(c.relays)
	for link := 0; link <= n; link++ { // link k: after k relays' Backward
		for pos := range pkt {
			p := clone(pkt)
			for i := n - 1; i >= n-link; i-- {
				if err := c.relays[i].Backward(p); err != nil {
					t.Fatal(err)
				}
			}
			p[pos] ^= 1 << (pos % 8)
			for i := n - link - 1; i >= 0; i-- {
				if err := c.relays[i].Backward(p); err != nil {
					t.Fatal(err)
				}
			}
			_, err := c.init.Open(p)
			wantErr(t, err, ErrBadPacket, fmt.Sprintf("backward, link %d, byte %d", link, pos))
		}
	}
	if got, err := c.init.Open(c.backward(t, pkt)); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("untouched backward packet: %v", err)
	}
}

// TestDataReplay: a packet is accepted once; out-of-order packets within
// the window are accepted, older ones refused; both ways.
func TestDataReplay(t *testing.T) {
	c := buildCircuit(t, 1300, 2)
	type end struct {
		name string
		seal func() []byte
		open func([]byte) ([]byte, error)
	}
	ends := []end{
		{"forward", func() []byte {
			p, err := c.init.Seal(nil, []byte("data"))
			if err != nil {
				t.Fatal(err)
			}
			return c.forward(t, p)
		}, c.term.Open},
		{"backward", func() []byte {
			p, err := c.term.Seal(nil, []byte("data"))
			if err != nil {
				t.Fatal(err)
			}
			return c.backward(t, p)
		}, c.init.Open},
	}
	for _, e := range ends {
		first := e.seal()
		if _, err := e.open(clone(first)); err != nil {
			t.Fatalf("%s: first delivery: %v", e.name, err)
		}
		_, err := e.open(clone(first))
		wantErr(t, err, ErrReplayedPacket, e.name+": second delivery")

		// Ten packets delivered in reverse order.
		var batch [][]byte
		for range 10 {
			batch = append(batch, e.seal())
		}
		for i := len(batch) - 1; i >= 0; i-- {
			if _, err := e.open(clone(batch[i])); err != nil {
				t.Fatalf("%s: out-of-order packet %d: %v", e.name, i, err)
			}
		}
		_, err = e.open(batch[3])
		wantErr(t, err, ErrReplayedPacket, e.name+": out-of-order repeat")

		// Counters so far: 1..11. Hold back 12 and 13, send up to
		// 12+ReplayWindow: 13 is then just inside the window, 12 just
		// outside.
		old := e.seal()
		edge := e.seal()
		var last []byte
		for range ReplayWindow - 1 {
			last = e.seal()
		}
		if _, err := e.open(last); err != nil {
			t.Fatalf("%s: newest packet: %v", e.name, err)
		}
		if _, err := e.open(edge); err != nil {
			t.Fatalf("%s: packet at the window's edge: %v", e.name, err)
		}
		_, err = e.open(old)
		wantErr(t, err, ErrReplayedPacket, e.name+": packet behind the window")
	}
}

// TestConfirm: the confirmation is accepted once, only by Confirm, and
// only with every relay's layer.
func TestConfirm(t *testing.T) {
	c := buildCircuit(t, 1400, 3)
	created := c.term.Created()
	if !bytes.Equal(created, c.term.Created()) {
		t.Fatal("Created is not stable")
	}
	_, err := c.init.Open(c.backward(t, clone(created)))
	wantErr(t, err, ErrBadPacket, "Open of the confirmation")

	partial := clone(created)
	if err := c.relays[1].Backward(partial); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.init.Confirm(partial), ErrBadPacket, "confirmation missing relay 0's layer")

	data, err := c.term.Seal(nil, createdMarker)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.init.Confirm(c.backward(t, data)), ErrBadPacket, "data packet as confirmation")
	if c.init.Confirmed() {
		t.Fatal("Confirmed after failed confirmations")
	}

	if err := c.init.Confirm(c.backward(t, clone(created))); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	wantErr(t, c.init.Confirm(c.backward(t, clone(created))), ErrReplayedPacket, "second confirmation")

	// Counter 0 forward is not data either.
	p := make([]byte, Overhead+4)
	sealBody(c.init.keys.fwd, 0, p, []byte("zero"))
	nu := counterBlock(0)
	c.init.keys.fwdPRP.Decrypt(p[:nuSize], nu[:])
	_, err = c.term.Open(p)
	wantErr(t, err, ErrBadPacket, "forward counter 0")
}
