package circuit

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// TestSizes: payload and packet bounds, and Seal appending to dst.
func TestSizes(t *testing.T) {
	if Overhead > 40 {
		t.Fatalf("Overhead %d is over 40", Overhead)
	}
	if OnionSize != 32+16+MaxHops*BlockSize || blockUsed > BlockSize {
		t.Fatalf("OnionSize %d, block uses %d of %d", OnionSize, blockUsed, BlockSize)
	}
	c := buildCircuit(t, 1500, 2)
	_, err := c.init.Seal(nil, make([]byte, MaxPayload+1))
	wantErr(t, err, ErrPayloadTooLarge, "Initiator.Seal over MaxPayload")
	_, err = c.term.Seal(nil, make([]byte, MaxPayload+1))
	wantErr(t, err, ErrPayloadTooLarge, "Terminal.Seal over MaxPayload")

	prefix := []byte("link header")
	out, err := c.init.Seal(clone(prefix), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, prefix) || len(out) != len(prefix)+Overhead+5 {
		t.Fatalf("Seal did not append: %d bytes", len(out))
	}
	got, err := c.term.Open(c.forward(t, out[len(prefix):]))
	if err != nil || string(got) != "hello" {
		t.Fatalf("open of appended packet: %q, %v", got, err)
	}

	for _, size := range []int{0, Overhead - 1, Overhead + MaxPayload + 1} {
		p := make([]byte, size)
		wantErr(t, c.relays[0].Forward(p), ErrBadPacket, fmt.Sprintf("Forward %d bytes", size))
		wantErr(t, c.relays[0].Backward(p), ErrBadPacket, fmt.Sprintf("Backward %d bytes", size))
		_, err := c.term.Open(p)
		wantErr(t, err, ErrBadPacket, fmt.Sprintf("Terminal.Open %d bytes", size))
		_, err = c.init.Open(p)
		wantErr(t, err, ErrBadPacket, fmt.Sprintf("Initiator.Open %d bytes", size))
		wantErr(t, c.init.Confirm(p), ErrBadPacket, fmt.Sprintf("Confirm %d bytes", size))
	}
	// An empty payload is a valid packet.
	p, err := c.init.Seal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.term.Open(c.forward(t, p)); err != nil || len(got) != 0 {
		t.Fatalf("empty payload: %q, %v", got, err)
	}
}

// TestExhausted: an end refuses to seal past its last counter.
func TestExhausted(t *testing.T) {
	c := buildCircuit(t, 1600, 1)
	c.init.state.sent.Store(maxCounter - 1)
	if _, err := c.init.Seal(nil, nil); err != nil {
		t.Fatalf("last counter: %v", err)
	}
	_, err := c.init.Seal(nil, nil)
	wantErr(t, err, ErrExhausted, "Initiator.Seal past the last counter")
	c.term.state.sent.Store(maxCounter)
	_, err = c.term.Seal(nil, nil)
	wantErr(t, err, ErrExhausted, "Terminal.Seal past the last counter")
}

// TestNilReceivers: methods on nil or zero values return ErrBadArgument.
func TestNilReceivers(t *testing.T) {
	p := make([]byte, Overhead)
	var ni *Initiator
	var nt *Terminal
	var nr *RelayKeys
	_, err := ni.Seal(nil, nil)
	wantErr(t, err, ErrBadArgument, "nil Initiator.Seal")
	_, err = ni.Open(p)
	wantErr(t, err, ErrBadArgument, "nil Initiator.Open")
	wantErr(t, ni.Confirm(p), ErrBadArgument, "nil Initiator.Confirm")
	_, err = nt.Seal(nil, nil)
	wantErr(t, err, ErrBadArgument, "nil Terminal.Seal")
	_, err = nt.Open(p)
	wantErr(t, err, ErrBadArgument, "nil Terminal.Open")
	if nt.Created() != nil {
		t.Fatal("nil Terminal.Created returned a packet")
	}
	wantErr(t, nr.Forward(p), ErrBadArgument, "nil RelayKeys.Forward")
	wantErr(t, (&RelayKeys{}).Backward(p), ErrBadArgument, "zero RelayKeys.Backward")
	_, err = (&Terminal{}).Open(p)
	wantErr(t, err, ErrBadArgument, "zero Terminal.Open")
}

// TestConcurrentEnds seals from several goroutines at once and opens
// from several at once; every packet gets its own counter and opens once.
func TestConcurrentEnds(t *testing.T) {
	c := buildCircuit(t, 1700, 2)
	const workers, each = 4, 50
	pkts := make([][]byte, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				p, err := c.init.Seal(nil, []byte{byte(w), byte(i)})
				if err != nil {
					t.Error(err)
					return
				}
				for _, r := range c.relays {
					if err := r.Forward(p); err != nil {
						t.Error(err)
						return
					}
				}
				pkts[w*each+i] = p
			}
		})
	}
	wg.Wait()
	seen := make([]bool, len(pkts))
	var mu sync.Mutex
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(pkts); i += workers {
				got, err := c.term.Open(pkts[i])
				if err != nil || len(got) != 2 {
					t.Errorf("packet %d: %v", i, err)
					return
				}
				mu.Lock()
				seen[int(got[0])*each+int(got[1])] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i, ok := range seen {
		if !ok {
			t.Fatalf("payload %d never arrived", i)
		}
	}
}
