package nat

import (
	"errors"
	"net/netip"
	"testing"
)

func FuzzIsSTUNAndParse(f *testing.F) {
	f.Add(AppendBindingRequest(nil, txA))
	f.Add(appendBindingSuccess(nil, txA, v4))
	f.Add(appendBindingSuccess(nil, txA, v6))
	f.Add(pionResponse(f, txA, xorAddr(v6), pionFingerprint))
	f.Add(rawMsg(typeBindingSuccess, attr(attrMappedAddress, []byte{0, 1, 0, 9, 1, 2, 3, 4})))
	f.Add(rawMsg(typeBindingSuccess, attr(attrXORMappedAddressOld, xorV4())))
	f.Fuzz(func(t *testing.T, b []byte) {
		isSTUN := IsSTUN(b)
		_, a, err := ParseBindingResponse(b)
		if err != nil {
			if !errors.Is(err, ErrNotSTUN) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, ErrUnexpected) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrNoAddress) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if !isSTUN || len(b) > MaxSTUNSize {
			t.Fatalf("parsed a message IsSTUN refuses or over MaxSTUNSize")
		}
		if _, ok := cleanAddr(a); !ok || a.Addr().Is4In6() || a.Addr().Zone() != "" {
			t.Fatalf("parsed address %v not usable", a)
		}
	})
}

func FuzzServerHandle(f *testing.F) {
	f.Add(AppendBindingRequest(nil, txA), false)
	f.Add(AppendBindingRequest(nil, txA), true)
	f.Add(rawMsg(typeBindingRequest, attr(0x8022, []byte("software"))), true)
	f.Add(rawMsg(typeBindingRequest, attr(0x7777, nil)), false)
	f.Add(appendBindingSuccess(nil, txA, v4), false)
	f.Fuzz(func(t *testing.T, pkt []byte, six bool) {
		s := newTestServer(t, DefaultServerConfig())
		from := v4
		if six {
			from = v6
		}
		resp := s.Handle(t0, pkt, from)
		checkConservation(t, s.Stats())
		if resp == nil {
			return
		}
		var tx TxID
		copy(tx[:], pkt[8:20])
		checkAnswer(t, pkt, resp, tx, from)
	})
}

func FuzzProberResponse(f *testing.F) {
	p0 := newTestProber(f, DefaultProberConfig())
	sends, _, _ := split(p0.Start(t0, []netip.AddrPort{obsA1, obsB1}))
	tx := txOf(sends[0].Msg)
	f.Add(appendBindingSuccess(nil, tx, v4), true)
	f.Add(appendBindingSuccess(nil, tx, v6), false)
	f.Add(rawMsgTx(typeBindingError, tx), true)
	f.Add(rawMsgTx(typeBindingSuccess, tx, attr(attrMappedAddress, []byte{0, 1, 0, 9, 1, 2, 3, 4})), true)
	f.Fuzz(func(t *testing.T, pkt []byte, fromA bool) {
		// Same seed: the same transaction IDs as p0's.
		p := newTestProber(t, DefaultProberConfig())
		p.Start(t0, []netip.AddrPort{obsA1, obsB1})
		from := obsB1
		if fromA {
			from = obsA1
		}
		consumed, out := p.HandleResponse(t0, pkt, from)
		if !consumed && out != nil {
			t.Fatal("outputs for a packet not consumed")
		}
		if consumed && (!IsSTUN(pkt) || len(pkt) > MaxSTUNSize) {
			t.Fatal("consumed a non-STUN packet")
		}
		for _, o := range out {
			d, ok := o.(Done)
			if !ok {
				t.Fatalf("unexpected output %T", o)
			}
			for _, ob := range d.Observations {
				if _, ok := cleanAddr(ob.Mapped); !ok {
					t.Fatalf("observation %+v", ob)
				}
			}
		}
		st := p.Stats()
		if st.Answered > 1 || (st.Answered == 1 && !consumed) {
			t.Fatalf("stats %+v", st)
		}
	})
}
