package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func TestProbeRoundTrip(t *testing.T) {
	tx := [12]byte{1, 2, 3}
	tgt := netip.MustParseAddrPort("198.51.100.1:4242")
	for _, m := range []ProbeMsg{
		{Type: ProbeRequest, Mode: ProbeOtherIP, Tx: tx, Target: tgt, Exclude: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.1:1"), netip.MustParseAddrPort("[2001:db8::2]:2")}},
		{Type: ProbeRequest, Mode: ProbeOtherPort, Tx: tx, Target: tgt},
		{Type: ProbeSend, Tx: tx, Target: tgt},
		{Type: ProbeReply, Status: ProbeNoCandidate},
		{Type: ProbeReply, Status: ProbeSent},
		{Type: ProbeReply, Status: ProbeSent, Sender: netip.MustParseAddrPort("203.0.113.7:4243")},
	} {
		b, err := AppendProbe(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadProbe(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip %+v -> %+v", m, got)
		}
	}
	full := ProbeMsg{Type: ProbeRequest, Mode: ProbeOtherIP, Target: netip.MustParseAddrPort("[2001:db8::1]:1")}
	for i := range MaxProbeExclude {
		full.Exclude = append(full.Exclude, netip.AddrPortFrom(netip.MustParseAddr("2001:db8::9"), uint16(i+1)))
	}
	if b, err := AppendProbe(nil, full); err != nil || len(b) != 2+MaxProbeMessage {
		t.Fatalf("full REQUEST: %d bytes, %v; want %d", len(b), err, 2+MaxProbeMessage)
	}
	full.Exclude = append(full.Exclude, full.Target)
	if _, err := AppendProbe(nil, full); err == nil {
		t.Fatal("encoded too many exclusions")
	}
}

func TestProbeRejects(t *testing.T) {
	req := func(tail ...byte) []byte {
		return append(append([]byte{ProbeRequest, ProbeOtherIP}, make([]byte, 12)...), tail...)
	}
	for name, body := range map[string][]byte{
		"empty":                 {},
		"type":                  {7},
		"mode":                  append([]byte{ProbeRequest, 9}, make([]byte, 30)...),
		"no_target":             req(),
		"port_zero":             req(4, 1, 2, 3, 4, 0, 0, 0),
		"no_count":              req(4, 1, 2, 3, 4, 0, 1),
		"count":                 req(4, 1, 2, 3, 4, 0, 1, MaxProbeExclude+1),
		"trailing":              req(4, 1, 2, 3, 4, 0, 1, 0, 9),
		"reply_bad":             {ProbeReply, 7},
		"reply_sender_not_sent": {ProbeReply, ProbeNoCandidate, 4, 1, 2, 3, 4, 0, 1},
		"reply_sender_trailing": {ProbeReply, ProbeSent, 4, 1, 2, 3, 4, 0, 1, 0},
		"reply_sender_short":    {ProbeReply, ProbeSent, 4, 1, 2},
		"send_short":            {ProbeSend, 1, 2},
		"unspecified":           req(4, 0, 0, 0, 0, 0, 1, 0),
	} {
		if _, err := ParseProbe(body); !errors.Is(err, ErrBadProbe) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func FuzzParseProbe(f *testing.F) {
	b, _ := AppendProbe(nil, ProbeMsg{Type: ProbeRequest, Mode: ProbeOtherIP, Target: netip.MustParseAddrPort("198.51.100.1:1"), Exclude: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.1:2")}})
	f.Add(b[2:])
	b, _ = AppendProbe(nil, ProbeMsg{Type: ProbeSend, Target: netip.MustParseAddrPort("[2001:db8::1]:1")})
	f.Add(b[2:])
	f.Add([]byte{ProbeReply, 0})
	f.Add([]byte{ProbeReply, ProbeSent, 4, 203, 0, 113, 7, 0x10, 0x93})
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseProbe(body)
		if err != nil {
			return
		}
		out, err := AppendProbe(nil, m)
		if err != nil {
			t.Fatalf("a parsed message does not encode: %v", err)
		}
		if !bytes.Equal(out[2:], body) {
			t.Fatalf("re-encoding differs:\n%x\n%x", out[2:], body)
		}
	})
}
