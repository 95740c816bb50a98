package circuit

import "testing"

// BenchmarkNewOnion builds a 3-hop onion.
func BenchmarkNewOnion(b *testing.B) {
	r := testRand(1)
	path := pathOf(makeNodes(b, r, 3))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := NewOnion(r, t0, path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPeel peels the first hop of a 3-hop onion. Each iteration uses
// a fresh one-tag ReplayCache, since the same onion is peeled again.
func BenchmarkPeel(b *testing.B) {
	r := testRand(2)
	nodes := makeNodes(b, r, 3)
	onion, _, err := NewOnion(r, t0, pathOf(nodes))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Peel(nodes[0].priv, onion, t0, NewReplayCache(1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeal1200 seals 1200-byte payloads at the initiator of a
// 3-hop circuit (two relay layers and the AEAD).
func BenchmarkSeal1200(b *testing.B) {
	c := buildCircuit(b, 3, 3)
	payload := make([]byte, 1200)
	buf := make([]byte, 0, Overhead+len(payload))
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.init.Seal(buf[:0], payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen1200 opens 1200-byte payloads at the terminal. Packets are
// sealed and layered outside the timer.
func BenchmarkOpen1200(b *testing.B) {
	c := buildCircuit(b, 4, 3)
	payload := make([]byte, 1200)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	pkt := make([]byte, 0, Overhead+len(payload))
	for b.Loop() {
		b.StopTimer()
		p, err := c.init.Seal(pkt[:0], payload)
		if err != nil {
			b.Fatal(err)
		}
		c.forward(b, p)
		b.StartTimer()
		if _, err := c.term.Open(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayForward1200 applies one relay's forward layer to a packet
// carrying 1200 bytes.
func BenchmarkRelayForward1200(b *testing.B) {
	c := buildCircuit(b, 5, 2)
	pkt := make([]byte, Overhead+1200)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.relays[0].Forward(pkt); err != nil {
			b.Fatal(err)
		}
	}
}
