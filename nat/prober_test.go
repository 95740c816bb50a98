package nat

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/registry"
)

var (
	obsA1 = ap("198.51.100.1:3478")
	obsA2 = ap("198.51.100.1:3479")
	obsB1 = ap("198.51.100.2:3478")
)

func newTestProber(t testing.TB, cfg ProberConfig) *Prober {
	t.Helper()
	p, err := NewProber(cfg, newRNG(seed))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// split sorts outs into sends, timers and dones.
func split(outs []Output) (sends []Send, timers []SetTimer, dones []Done) {
	for _, o := range outs {
		switch o := o.(type) {
		case Send:
			sends = append(sends, o)
		case SetTimer:
			timers = append(timers, o)
		case Done:
			dones = append(dones, o)
		}
	}
	return
}

// nat maps an observer to the reflexive address its server sees.
type natFunc func(observer netip.AddrPort) netip.AddrPort

// pump delivers sends to one Server per observer (the source being
// nat(observer)) and each answer back to p from the observer; answer
// says whether observer answers at all. It returns the Done, if any.
func pump(t *testing.T, p *Prober, now time.Time, sends []Send, nat natFunc, answer func(netip.AddrPort) bool) []Done {
	t.Helper()
	srv := newTestServer(t, DefaultServerConfig())
	var dones []Done
	for _, s := range sends {
		if !answer(s.To) {
			continue
		}
		resp := srv.Handle(now, s.Msg, nat(s.To))
		if resp == nil {
			t.Fatalf("server did not answer %x", s.Msg)
		}
		consumed, out := p.HandleResponse(now, resp, s.To)
		if !consumed {
			t.Fatalf("response from %v not consumed", s.To)
		}
		_, _, d := split(out)
		dones = append(dones, d...)
	}
	return dones
}

func all(netip.AddrPort) bool { return true }

func TestProberConfigValidate(t *testing.T) {
	for _, c := range []ProberConfig{
		{Timeout: 0, Tries: 3, MaxObservers: 8},
		{Timeout: time.Second, Tries: 0, MaxObservers: 8},
		{Timeout: time.Second, Tries: 3, MaxObservers: 0},
		{Timeout: time.Second, Tries: MaxProberTries + 1, MaxObservers: 8},
	} {
		if _, err := NewProber(c, newRNG(1)); !errors.Is(err, ErrBadConfig) {
			t.Fatalf("%+v: err %v", c, err)
		}
	}
	if _, err := NewProber(DefaultProberConfig(), nil); !errors.Is(err, ErrBadConfig) {
		t.Fatal("nil rng accepted")
	}
}

func TestProberMapping(t *testing.T) {
	eim := func(netip.AddrPort) netip.AddrPort { return v4 }
	adm := func(o netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(v4.Addr(), 40000+uint16(o.Addr().As4()[3]))
	}
	apdm := func(o netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(v4.Addr(), 40000+uint16(o.Addr().As4()[3])*10+o.Port()-3478)
	}
	cases := []struct {
		name string
		nat  natFunc
		want registry.NATClass
		refl int
	}{
		{"eim", eim, registry.NATEndpointIndependent, 1},
		{"adm", adm, registry.NATAddressDependent, 2},
		{"apdm", apdm, registry.NATAddressAndPortDependent, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newTestProber(t, DefaultProberConfig())
			observers := []netip.AddrPort{obsB1, obsA1, obsA2}
			sends, timers, dones := split(p.Start(t0, observers))
			if len(sends) != 3 || len(timers) != 1 || len(dones) != 0 {
				t.Fatalf("start: %d sends %d timers %d dones", len(sends), len(timers), len(dones))
			}
			for i, s := range sends {
				if s.To != observers[i] || !IsSTUN(s.Msg) {
					t.Fatalf("send %d: %v %x", i, s.To, s.Msg)
				}
			}
			dones = pump(t, p, t0, sends, c.nat, all)
			if len(dones) != 1 {
				t.Fatalf("%d dones", len(dones))
			}
			d := dones[0]
			if d.Mapping != c.want || len(d.Reflexive) != c.refl || len(d.Observations) != 3 {
				t.Fatalf("done %+v", d)
			}
			for i, o := range d.Observations {
				if o.Observer != observers[i] || o.Mapped != c.nat(observers[i]) {
					t.Fatalf("observation %d: %+v", i, o)
				}
			}
			if !slices.IsSortedFunc(d.Reflexive, netip.AddrPort.Compare) {
				t.Fatalf("reflexive not sorted: %v", d.Reflexive)
			}
			// The round's timer is stale now.
			if out := p.HandleTimer(timers[0].At, timers[0].Timer); out != nil {
				t.Fatalf("timer after done: %v", out)
			}
		})
	}
}

func TestProberRetriesThenGivesUp(t *testing.T) {
	cfg := DefaultProberConfig()
	p := newTestProber(t, cfg)
	sends, timers, _ := split(p.Start(t0, []netip.AddrPort{obsA1, obsB1}))
	// Only obsA1 answers; obsB1 is silent.
	silentB := func(o netip.AddrPort) bool { return o == obsA1 }
	if d := pump(t, p, t0, sends, func(netip.AddrPort) netip.AddrPort { return v4 }, silentB); len(d) != 0 {
		t.Fatal("done with an observer silent")
	}
	now := t0
	for try := 2; try <= cfg.Tries; try++ {
		if len(timers) != 1 {
			t.Fatalf("try %d: %d timers", try, len(timers))
		}
		now = timers[0].At
		if now != t0.Add(time.Duration(try-1)*cfg.Timeout) {
			t.Fatalf("timer at %v", now)
		}
		var dones []Done
		var resent []Send
		resent, timers, dones = split(p.HandleTimer(now, timers[0].Timer))
		if len(resent) != 1 || resent[0].To != obsB1 || len(dones) != 0 {
			t.Fatalf("try %d: resent %v, dones %v", try, resent, dones)
		}
		if string(resent[0].Msg) != string(sends[1].Msg) {
			t.Fatal("retry with another transaction ID")
		}
	}
	_, timers2, dones := split(p.HandleTimer(timers[0].At, timers[0].Timer))
	if len(dones) != 1 || len(timers2) != 0 {
		t.Fatalf("after last try: %v %v", dones, timers2)
	}
	d := dones[0]
	if len(d.Observations) != 1 || d.Observations[0].Observer != obsA1 || d.Mapping != registry.NATUnknown {
		t.Fatalf("done %+v", d)
	}
	st := p.Stats()
	if st.GaveUp != 1 || st.Answered != 1 || st.Retries != uint64(cfg.Tries-1) || st.Requests != uint64(cfg.Tries+1) || st.Done != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A late answer from the given-up observer is ours, consumed, ignored.
	late := appendBindingSuccess(nil, txOf(sends[1].Msg), v4)
	if consumed, out := p.HandleResponse(now, late, obsB1); !consumed || out != nil {
		t.Fatalf("late answer: %v %v", consumed, out)
	}
	if p.Stats().Duplicates != 1 {
		t.Fatalf("stats %+v", p.Stats())
	}
}

func txOf(msg []byte) TxID {
	var tx TxID
	copy(tx[:], msg[8:20])
	return tx
}

func TestProberStrayAndForged(t *testing.T) {
	p := newTestProber(t, DefaultProberConfig())
	sends, _, _ := split(p.Start(t0, []netip.AddrPort{obsA1, obsB1}))
	tx := txOf(sends[0].Msg)
	good := appendBindingSuccess(nil, tx, v4)

	cases := []struct {
		name     string
		pkt      []byte
		from     netip.AddrPort
		consumed bool
	}{
		{"not_stun", []byte{0x40, 1, 2, 3}, obsA1, false},
		{"unknown_tx", appendBindingSuccess(nil, txA, v4), obsA1, false},
		{"request_with_our_tx", AppendBindingRequest(nil, tx), obsA1, false},
		{"wrong_source", good, obsB1, true},
		{"wrong_port", good, obsA2, true},
		{"malformed_ours", rawMsgTx(typeBindingSuccess, tx), obsA1, true},
	}
	for _, c := range cases {
		consumed, out := p.HandleResponse(t0, c.pkt, c.from)
		if consumed != c.consumed || out != nil {
			t.Fatalf("%s: consumed %v out %v", c.name, consumed, out)
		}
	}
	st := p.Stats()
	if st.NotOurs != 3 || st.WrongSource != 2 || st.Malformed != 1 || st.Answered != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The real answer still counts.
	if consumed, _ := p.HandleResponse(t0, good, obsA1); !consumed || p.Stats().Answered != 1 {
		t.Fatal("real answer not taken")
	}
	// An error response gives up on obsB1 and ends the round.
	errResp := rawMsgTx(typeBindingError, txOf(sends[1].Msg))
	consumed, out := p.HandleResponse(t0, errResp, obsB1)
	_, _, dones := split(out)
	if !consumed || len(dones) != 1 || len(dones[0].Observations) != 1 || p.Stats().ErrorResp != 1 {
		t.Fatalf("error response: %v %v %+v", consumed, out, p.Stats())
	}
}

func TestProberStartFilters(t *testing.T) {
	cfg := DefaultProberConfig()
	cfg.MaxObservers = 2
	p := newTestProber(t, cfg)
	mappedA1 := netip.AddrPortFrom(netip.AddrFrom16(obsA1.Addr().As16()), obsA1.Port())
	sends, _, _ := split(p.Start(t0, []netip.AddrPort{{}, obsA1, mappedA1, ap("0.0.0.0:1"), obsB1, obsA2}))
	if len(sends) != 2 || sends[0].To != obsA1 || sends[1].To != obsB1 {
		t.Fatalf("sends %v", sends)
	}
	if p.Stats().Skipped != 4 {
		t.Fatalf("stats %+v", p.Stats())
	}
	// No observer: Done at once.
	_, timers, dones := split(p.Start(t0, nil))
	if len(dones) != 1 || len(timers) != 0 || dones[0].Mapping != registry.NATUnknown {
		t.Fatalf("empty start: %v %v", timers, dones)
	}
	if p.Stats().Abandoned != 1 {
		t.Fatalf("stats %+v", p.Stats())
	}
}

func TestProberNewStartAbandonsOld(t *testing.T) {
	p := newTestProber(t, DefaultProberConfig())
	old, oldTimers, _ := split(p.Start(t0, []netip.AddrPort{obsA1, obsB1}))
	fresh, _, _ := split(p.Start(t0, []netip.AddrPort{obsA1, obsB1}))
	if string(old[0].Msg) == string(fresh[0].Msg) {
		t.Fatal("same transaction ID in the new round")
	}
	// The old round's answers are not ours any more; its timer is stale.
	resp := appendBindingSuccess(nil, txOf(old[0].Msg), v4)
	if consumed, _ := p.HandleResponse(t0, resp, obsA1); consumed {
		t.Fatal("old round's answer consumed")
	}
	if out := p.HandleTimer(oldTimers[0].At, oldTimers[0].Timer); out != nil {
		t.Fatalf("old timer fired: %v", out)
	}
	dones := pump(t, p, t0, fresh, func(netip.AddrPort) netip.AddrPort { return v4 }, all)
	if len(dones) != 1 || dones[0].Mapping != registry.NATEndpointIndependent {
		t.Fatalf("dones %+v", dones)
	}
	if st := p.Stats(); st.Abandoned != 1 || st.Rounds != 2 || st.Done != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProberDeterministic(t *testing.T) {
	run := func() []Output {
		p := newTestProber(t, DefaultProberConfig())
		return p.Start(t0, []netip.AddrPort{obsA1, obsA2, obsB1})
	}
	a, b := run(), run()
	if len(a) != len(b) {
		t.Fatal("lengths differ")
	}
	for i := range a {
		sa, okA := a[i].(Send)
		sb, okB := b[i].(Send)
		if okA != okB || (okA && (sa.To != sb.To || string(sa.Msg) != string(sb.Msg))) {
			t.Fatalf("output %d differs: %v %v", i, a[i], b[i])
		}
	}
}
