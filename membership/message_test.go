package membership

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// testID returns a deterministic non-zero node ID.
func testID(n int) identity.NodeID {
	var id identity.NodeID
	id[0] = byte(n >> 8)
	id[1] = byte(n)
	id[31] = 0x5a
	return id
}

func testPeer(n int) Peer {
	return Peer{
		ID:    testID(n),
		Addrs: []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(n)}), 4433)},
	}
}

// fullPeer is the largest peer: MaxAddrs IPv6 addresses.
func fullPeer(n int) Peer {
	p := Peer{ID: testID(n), NoInbound: true}
	for i := range MaxAddrs {
		p.Addrs = append(p.Addrs, netip.MustParseAddrPort("[2001:db8::"+string(rune('1'+i))+"]:65535"))
	}
	return p
}

func sampleMessages() map[string]Message {
	mixed := Peer{ID: testID(9), Addrs: []netip.AddrPort{
		netip.MustParseAddrPort("203.0.113.7:1"),
		netip.MustParseAddrPort("[2001:db8::7]:2"),
		netip.MustParseAddrPort("[::ffff:203.0.113.8]:3"),
	}}
	many := make([]Peer, MaxShufflePeers)
	for i := range many {
		many[i] = fullPeer(100 + i)
	}
	return map[string]Message{
		"join":            {Type: MsgJoin, Peer: testPeer(1)},
		"join_no_addrs":   {Type: MsgJoin, Peer: Peer{ID: testID(1)}},
		"forward_join":    {Type: MsgForwardJoin, TTL: 6, Peer: mixed},
		"forward_join_0":  {Type: MsgForwardJoin, TTL: 0, Peer: testPeer(2)},
		"neighbor_low":    {Type: MsgNeighbor, Priority: PriorityLow, Peer: testPeer(3)},
		"neighbor_high":   {Type: MsgNeighbor, Priority: PriorityHigh, Peer: fullPeer(3)},
		"accept":          {Type: MsgNeighborAccept},
		"reject":          {Type: MsgNeighborReject},
		"disconnect":      {Type: MsgDisconnect},
		"shuffle":         {Type: MsgShuffle, TTL: 5, Peer: testPeer(4), Peers: []Peer{testPeer(5), mixed}},
		"shuffle_empty":   {Type: MsgShuffle, TTL: MaxTTL, Peer: testPeer(4)},
		"shuffle_max":     {Type: MsgShuffle, TTL: MaxTTL, Peer: fullPeer(4), Peers: many},
		"shuffle_reply":   {Type: MsgShuffleReply, Peers: []Peer{testPeer(6), fullPeer(7)}},
		"shuffle_reply_0": {Type: MsgShuffleReply},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for name, m := range sampleMessages() {
		t.Run(name, func(t *testing.T) {
			b, err := AppendMessage([]byte{0xee}, m)
			if err != nil {
				t.Fatalf("AppendMessage: %v", err)
			}
			if b[0] != 0xee {
				t.Fatal("AppendMessage overwrote the prefix")
			}
			got, err := ParseMessage(b[1:])
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
			}
		})
	}
}

func TestMessageSizeLimits(t *testing.T) {
	if maxEncodedLen > MaxMessageSize {
		t.Fatalf("largest message %d bytes > MaxMessageSize %d", maxEncodedLen, MaxMessageSize)
	}
	b, err := AppendMessage(nil, sampleMessages()["shuffle_max"])
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != maxEncodedLen {
		t.Fatalf("largest SHUFFLE is %d bytes, maxEncodedLen says %d", len(b), maxEncodedLen)
	}
	if MaxPeerLen != 110 {
		t.Fatalf("MaxPeerLen = %d, the package doc says 110", MaxPeerLen)
	}
}

func TestAppendMessageRejects(t *testing.T) {
	tooMany := make([]Peer, MaxShufflePeers+1)
	for i := range tooMany {
		tooMany[i] = testPeer(i + 1)
	}
	fiveAddrs := testPeer(1)
	for range MaxAddrs {
		fiveAddrs.Addrs = append(fiveAddrs.Addrs, fiveAddrs.Addrs[0])
	}
	tests := []struct {
		name string
		m    Message
	}{
		{"unknown_type", Message{Type: 0}},
		{"type_9", Message{Type: 9}},
		{"zero_peer", Message{Type: MsgJoin}},
		{"ttl_on_join", Message{Type: MsgJoin, TTL: 1, Peer: testPeer(1)}},
		{"priority_on_join", Message{Type: MsgJoin, Priority: PriorityHigh, Peer: testPeer(1)}},
		{"peer_on_accept", Message{Type: MsgNeighborAccept, Peer: testPeer(1)}},
		{"peers_on_join", Message{Type: MsgJoin, Peer: testPeer(1), Peers: []Peer{testPeer(2)}}},
		{"ttl_too_big", Message{Type: MsgForwardJoin, TTL: MaxTTL + 1, Peer: testPeer(1)}},
		{"bad_priority", Message{Type: MsgNeighbor, Priority: 2, Peer: testPeer(1)}},
		{"too_many_addrs", Message{Type: MsgJoin, Peer: fiveAddrs}},
		{"zone", Message{Type: MsgJoin, Peer: Peer{ID: testID(1), Addrs: []netip.AddrPort{netip.MustParseAddrPort("[fe80::1%eth0]:1")}}}},
		{"invalid_addr", Message{Type: MsgJoin, Peer: Peer{ID: testID(1), Addrs: []netip.AddrPort{{}}}}},
		{"too_many_peers", Message{Type: MsgShuffleReply, Peers: tooMany}},
		{"zero_peer_in_list", Message{Type: MsgShuffleReply, Peers: []Peer{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendMessage([]byte{1, 2}, tt.m)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !bytes.Equal(b, []byte{1, 2}) {
				t.Fatalf("AppendMessage changed b on error: %x", b)
			}
		})
	}
}

func TestParseMessageRejects(t *testing.T) {
	join, _ := AppendMessage(nil, Message{Type: MsgJoin, Peer: testPeer(1)})
	shuffle, _ := AppendMessage(nil, Message{Type: MsgShuffle, TTL: 2, Peer: testPeer(1), Peers: []Peer{testPeer(2)}})
	idOff := 1 // JOIN: the peer starts after the type byte
	set := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	zeroID := bytes.Clone(join)
	copy(zeroID[idOff:idOff+identity.IDLen], make([]byte, identity.IDLen))
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown_type", []byte{0}},
		{"type_255", []byte{255}},
		{"accept_trailing", []byte{byte(MsgNeighborAccept), 0}},
		{"join_truncated_id", join[:20]},
		{"join_truncated_addr", join[:len(join)-1]},
		{"join_trailing", append(bytes.Clone(join), 0)},
		{"zero_id", zeroID},
		{"unknown_flag", set(join, idOff+identity.IDLen, 0x02)},
		{"five_addrs", set(join, idOff+identity.IDLen+1, MaxAddrs+1)},
		{"bad_family", set(join, idOff+identity.IDLen+2, 5)},
		{"forward_join_no_ttl", []byte{byte(MsgForwardJoin)}},
		{"forward_join_ttl_too_big", append([]byte{byte(MsgForwardJoin), MaxTTL + 1}, join[1:]...)},
		{"neighbor_bad_priority", append([]byte{byte(MsgNeighbor), 2}, join[1:]...)},
		{"neighbor_no_priority", []byte{byte(MsgNeighbor)}},
		{"shuffle_truncated_list", shuffle[:len(shuffle)-3]},
		{"shuffle_no_count", shuffle[:2+len(join)-1]},
		{"shuffle_count_too_big", append(append([]byte{byte(MsgShuffleReply)}, MaxShufflePeers+1), bytes.Repeat(join[1:], MaxShufflePeers+1)...)},
		{"shuffle_count_short", []byte{byte(MsgShuffleReply), 1}},
		{"oversized", append([]byte{byte(MsgNeighborAccept)}, make([]byte, MaxMessageSize)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage(tt.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed (got %+v)", err, m)
			}
			if !reflect.DeepEqual(m, Message{}) {
				t.Fatalf("ParseMessage returned %+v with an error", m)
			}
		})
	}
}

func FuzzParseMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := AppendMessage(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if len(b) > 3 {
			f.Add(b[:len(b)/2])
		}
	}
	f.Add([]byte{})
	f.Add([]byte{byte(MsgShuffleReply), 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		enc, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("AppendMessage(ParseMessage(%x)) = %v", b, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, enc)
		}
		again, err := ParseMessage(enc)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, m)
		}
		// A machine given the message neither panics nor errs.
		mc := newTestMachine(t, 1, DefaultConfig(), 1)
		mc.HandleMessage(t0, testID(2), b)
	})
}
