package nat

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestServer(t testing.TB, cfg ServerConfig) *Server {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkAnswer fails t unless resp is a Binding success for tx carrying
// XOR-MAPPED-ADDRESS = from, within the amplification bound of req.
func checkAnswer(t testing.TB, req, resp []byte, tx TxID, from netip.AddrPort) {
	t.Helper()
	if resp == nil {
		t.Fatalf("no answer to %x", req)
	}
	if len(resp) > len(req)+MaxAmplification {
		t.Fatalf("answer of %d bytes to a request of %d", len(resp), len(req))
	}
	gotTx, got, err := ParseBindingResponse(resp)
	if err != nil {
		t.Fatalf("answer does not parse: %v", err)
	}
	if gotTx != tx || got != from {
		t.Fatalf("answer %x %v, want %x %v", gotTx, got, tx, from)
	}
}

// checkConservation fails t unless every packet is counted once.
func checkConservation(t testing.TB, st ServerStats) {
	t.Helper()
	sum := st.Answered + st.BadSource + st.Oversized + st.Malformed + st.NotRequest +
		st.Unsupported + st.TooShort + st.RateLimited + st.SourcesFull
	if sum != st.Packets {
		t.Fatalf("outcomes sum to %d, packets %d: %+v", sum, st.Packets, st)
	}
}

func TestServerConfigValidate(t *testing.T) {
	if err := DefaultServerConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(*ServerConfig){
		func(c *ServerConfig) { c.RatePerSource = 0 },
		func(c *ServerConfig) { c.RatePerSource = -1 },
		func(c *ServerConfig) { c.Burst = 0 },
		func(c *ServerConfig) { c.MaxSources = 0 },
		func(c *ServerConfig) { c.MaxSources = MaxServerSources + 1 },
	} {
		c := DefaultServerConfig()
		f(&c)
		if _, err := NewServer(c); !errors.Is(err, ErrBadConfig) {
			t.Fatalf("%+v: err %v", c, err)
		}
	}
}

func TestServerAnswers(t *testing.T) {
	s := newTestServer(t, DefaultServerConfig())
	for _, from := range []netip.AddrPort{v4, v6} {
		req := AppendBindingRequest(nil, txA)
		checkAnswer(t, req, s.Handle(t0, req, from), txA, from)
	}
	// An IPv4-mapped source is answered as IPv4.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(v4.Addr().As16()), v4.Port())
	req := AppendBindingRequest(nil, txA)
	checkAnswer(t, req, s.Handle(t0, req, mapped), txA, v4)
	// A request with optional attributes and a fingerprint is answered.
	withFP := pionRequest(t, true)
	checkAnswer(t, withFP, s.Handle(t0, withFP, v6), txA, v6)
	// Address attributes in a request are ignored.
	withAddr := rawMsg(typeBindingRequest, attr(attrXORMappedAddress, xorV4()))
	checkAnswer(t, withAddr, s.Handle(t0, withAddr, v6), txA, v6)
	st := s.Stats()
	if st.Answered != 5 || st.Requests != 5 {
		t.Fatalf("stats %+v", st)
	}
	checkConservation(t, st)
}

func TestServerRefuses(t *testing.T) {
	req := AppendBindingRequest(nil, txA)
	badCookie := append([]byte(nil), req...)
	badCookie[5] ^= 0xff
	badLen := append([]byte(nil), req...)
	badLen[3] = 8
	many := make([][]byte, MaxAttributes+1)
	for i := range many {
		many[i] = attr(0x8022, nil)
	}
	cases := []struct {
		name  string
		pkt   []byte
		from  netip.AddrPort
		count func(ServerStats) uint64
	}{
		{"success_response", appendBindingSuccess(nil, txA, v4), v4, func(s ServerStats) uint64 { return s.NotRequest }},
		{"error_response", rawMsg(typeBindingError), v4, func(s ServerStats) uint64 { return s.NotRequest }},
		{"indication", rawMsg(0x0011), v4, func(s ServerStats) uint64 { return s.NotRequest }},
		{"other_method", rawMsg(0x0003), v4, func(s ServerStats) uint64 { return s.NotRequest }},
		{"wrong_cookie", badCookie, v4, func(s ServerStats) uint64 { return s.Malformed }},
		{"truncated", req[:19], v4, func(s ServerStats) uint64 { return s.Malformed }},
		{"bad_length", badLen, v4, func(s ServerStats) uint64 { return s.Malformed }},
		{"quic", append([]byte{0xc0}, req[1:]...), v4, func(s ServerStats) uint64 { return s.Malformed }},
		{"huge_attribute_list", rawMsg(typeBindingRequest, many...), v4, func(s ServerStats) uint64 { return s.Malformed }},
		{"oversized", rawMsg(typeBindingRequest, attr(0x8022, make([]byte, MaxSTUNSize))), v4, func(s ServerStats) uint64 { return s.Oversized }},
		{"bad_fingerprint", rawMsg(typeBindingRequest, attr(attrFingerprint, []byte{1, 2, 3, 4})), v4, func(s ServerStats) uint64 { return s.Malformed }},
		{"unknown_required", rawMsg(typeBindingRequest, attr(0x7777, []byte{1})), v4, func(s ServerStats) uint64 { return s.Unsupported }},
		{"change_request", rawMsg(typeBindingRequest, attr(0x0003, []byte{0, 0, 0, 6})), v4, func(s ServerStats) uint64 { return s.Unsupported }},
		{"invalid_source", req, netip.AddrPort{}, func(s ServerStats) uint64 { return s.BadSource }},
		{"port_zero_source", req, netip.AddrPortFrom(v4.Addr(), 0), func(s ServerStats) uint64 { return s.BadSource }},
		{"unspecified_source", req, netip.MustParseAddrPort("0.0.0.0:5"), func(s ServerStats) uint64 { return s.BadSource }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, DefaultServerConfig())
			if got := s.Handle(t0, c.pkt, c.from); got != nil {
				t.Fatalf("answered %x", got)
			}
			st := s.Stats()
			if c.count(st) != 1 || st.Packets != 1 {
				t.Fatalf("stats %+v", st)
			}
			checkConservation(t, st)
		})
	}
}

func TestServerTooShort(t *testing.T) {
	// With MaxAmplification 32 no well-formed request is too short: the
	// 20-byte minimum allows 52 bytes, the IPv6 answer takes 44. The
	// check guards against a later, longer answer.
	req := AppendBindingRequest(nil, txA)
	s := newTestServer(t, DefaultServerConfig())
	if len(appendBindingSuccess(nil, txA, v6)) > len(req)+MaxAmplification {
		t.Fatal("minimal IPv6 request would be refused")
	}
	if s.Handle(t0, req, v6) == nil {
		t.Fatal("minimal IPv6 request not answered")
	}
}

// TestServerAmplification checks the bound over random valid requests:
// random optional attributes, with or without FINGERPRINT, both families.
func TestServerAmplification(t *testing.T) {
	rng := newRNG(seed)
	s := newTestServer(t, ServerConfig{RatePerSource: 1e6, Burst: 1 << 20, MaxSources: 16})
	for i := range 2000 {
		tx := NewTxID(rng)
		var as [][]byte
		for range rng.IntN(4) {
			typ := uint16(0x8000 + rng.IntN(0x7000))
			if typ == attrFingerprint {
				continue
			}
			as = append(as, attr(typ, make([]byte, rng.IntN(40))))
		}
		req := rawMsgTx(typeBindingRequest, tx, as...)
		from := v4
		if i%2 == 1 {
			from = v6
		}
		resp := s.Handle(t0, req, from)
		checkAnswer(t, req, resp, tx, from)
	}
}

func TestServerRateLimit(t *testing.T) {
	cfg := ServerConfig{RatePerSource: 10, Burst: 5, MaxSources: 8}
	s := newTestServer(t, cfg)
	req := AppendBindingRequest(nil, txA)
	answered := func(now time.Time, from netip.AddrPort, n int) int {
		k := 0
		for range n {
			if s.Handle(now, req, from) != nil {
				k++
			}
		}
		return k
	}
	if got := answered(t0, v4, 10); got != 5 {
		t.Fatalf("burst: %d answered, want 5", got)
	}
	// Another source has its own bucket.
	if got := answered(t0, v6, 1); got != 1 {
		t.Fatal("other source limited")
	}
	// Another port of the same IP shares it; so does another host in the /64.
	if got := answered(t0, netip.AddrPortFrom(v4.Addr(), 1), 1); got != 0 {
		t.Fatal("other port not limited")
	}
	if got := answered(t0, netip.MustParseAddrPort("[2001:db8::9]:1"), 5); got != 4 {
		t.Fatalf("same /64: %d answered, want 4", got)
	}
	// 10/s: 300 ms refills 3.
	if got := answered(t0.Add(300*time.Millisecond), v4, 10); got != 3 {
		t.Fatalf("refill: %d answered, want 3", got)
	}
	// A long wait refills to Burst, no more.
	if got := answered(t0.Add(time.Hour), v4, 10); got != 5 {
		t.Fatalf("full refill: %d answered, want 5", got)
	}
	// A clock going back refills nothing.
	if got := answered(t0, v4, 1); got != 0 {
		t.Fatal("answered with the clock gone back")
	}
	st := s.Stats()
	if st.RateLimited == 0 || st.Sources != 2 {
		t.Fatalf("stats %+v", st)
	}
	checkConservation(t, st)
}

func TestServerMaxSources(t *testing.T) {
	cfg := ServerConfig{RatePerSource: 1, Burst: 2, MaxSources: 2}
	s := newTestServer(t, cfg)
	req := AppendBindingRequest(nil, txA)
	a := netip.MustParseAddrPort("198.51.100.1:1")
	b := netip.MustParseAddrPort("198.51.100.2:1")
	c := netip.MustParseAddrPort("198.51.100.3:1")
	if s.Handle(t0, req, a) == nil || s.Handle(t0, req, b) == nil {
		t.Fatal("first sources refused")
	}
	// Full, nothing refilled: a new source is refused.
	if s.Handle(t0, req, c) != nil {
		t.Fatal("new source answered while full")
	}
	if st := s.Stats(); st.SourcesFull != 1 || st.Sources != 2 {
		t.Fatalf("stats %+v", st)
	}
	// After a second a (least recently used) has refilled and gives way.
	t1 := t0.Add(time.Second)
	if s.Handle(t1, req, c) == nil {
		t.Fatal("new source refused after refill")
	}
	st := s.Stats()
	if st.Evicted != 1 || st.Sources != 2 {
		t.Fatalf("stats %+v", st)
	}
	// b had refilled too but was not the oldest; a is gone and comes
	// back with a full bucket, which evicts b.
	if s.Handle(t1, req, a) == nil {
		t.Fatal("a refused")
	}
	if st := s.Stats(); st.Evicted != 2 {
		t.Fatalf("stats %+v", st)
	}
	checkConservation(t, s.Stats())
}
