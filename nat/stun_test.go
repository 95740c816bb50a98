package nat

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

var (
	v4   = netip.MustParseAddrPort("203.0.113.7:40000")
	v6   = netip.MustParseAddrPort("[2001:db8::1234]:51820")
	txA  = TxID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	seed = uint64(42)
)

func newRNG(s uint64) *rand.Rand { return rand.New(rand.NewPCG(s, 99)) }

// pionResponse builds a Binding success response with pion, with the
// given setters after the transaction ID and type.
func pionResponse(t testing.TB, tx TxID, setters ...stun.Setter) []byte {
	t.Helper()
	all := append([]stun.Setter{stun.NewTransactionIDSetter(tx), stun.BindingSuccess}, setters...)
	m, err := stun.Build(all...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func xorAddr(ap netip.AddrPort) *stun.XORMappedAddress {
	return &stun.XORMappedAddress{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port())}
}

func TestParseBindingResponse_pion(t *testing.T) {
	for _, ap := range []netip.AddrPort{v4, v6} {
		cases := []struct {
			name    string
			setters []stun.Setter
		}{
			{"xor", []stun.Setter{xorAddr(ap)}},
			{"xor_software_fingerprint", []stun.Setter{stun.NewSoftware("x"), xorAddr(ap), stun.Fingerprint}},
			{"mapped", []stun.Setter{&stun.MappedAddress{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port())}}},
			{"xor_preferred", []stun.Setter{
				&stun.MappedAddress{IP: net.IPv4(198, 51, 100, 1), Port: 9}, xorAddr(ap)}},
		}
		for _, c := range cases {
			t.Run(c.name+"_"+ap.String(), func(t *testing.T) {
				b := pionResponse(t, txA, c.setters...)
				tx, got, err := ParseBindingResponse(b)
				if err != nil {
					t.Fatal(err)
				}
				if tx != txA || got != ap {
					t.Fatalf("got %x %v, want %x %v", tx, got, txA, ap)
				}
			})
		}
	}
}

func TestAppendBindingRequest_pion(t *testing.T) {
	b := AppendBindingRequest([]byte{0xff}, txA)[1:]
	if len(b) != 20 || !IsSTUN(b) {
		t.Fatalf("request %x", b)
	}
	m := &stun.Message{Raw: b}
	if err := m.Decode(); err != nil {
		t.Fatal(err)
	}
	if m.Type != stun.BindingRequest || m.TransactionID != txA || len(m.Attributes) != 0 {
		t.Fatalf("pion read %v", m)
	}
}

func TestAppendBindingSuccess_pion(t *testing.T) {
	for _, ap := range []netip.AddrPort{v4, v6} {
		b := appendBindingSuccess(nil, txA, ap)
		m := &stun.Message{Raw: b}
		if err := m.Decode(); err != nil {
			t.Fatal(err)
		}
		var xa stun.XORMappedAddress
		if err := xa.GetFrom(m); err != nil {
			t.Fatal(err)
		}
		got, _ := netip.AddrFromSlice(xa.IP)
		if m.Type != stun.BindingSuccess || m.TransactionID != txA || got.Unmap() != ap.Addr() || xa.Port != int(ap.Port()) {
			t.Fatalf("pion read %v %v", m, xa)
		}
		if len(m.Attributes) != 1 {
			t.Fatalf("%d attributes", len(m.Attributes))
		}
	}
}

func TestNewTxID(t *testing.T) {
	r1, r2 := newRNG(seed), newRNG(seed)
	a, b := NewTxID(r1), NewTxID(r2)
	if a != b {
		t.Fatal("same seed, different IDs")
	}
	if NewTxID(r1) == a {
		t.Fatal("repeated ID")
	}
}

func TestIsSTUN(t *testing.T) {
	req := AppendBindingRequest(nil, txA)
	resp := appendBindingSuccess(nil, txA, v6)
	with := func(b []byte, f func([]byte)) []byte { c := append([]byte(nil), b...); f(c); return c }
	cases := []struct {
		name string
		b    []byte
		want bool
	}{
		{"request", req, true},
		{"response", resp, true},
		{"empty", nil, false},
		{"short", req[:19], false},
		{"quic_long_header", with(req, func(c []byte) { c[0] = 0xc0 }), false},
		{"quic_short_header", with(req, func(c []byte) { c[0] = 0x40 }), false},
		{"top_bit", with(req, func(c []byte) { c[0] = 0x80 }), false},
		{"wrong_cookie", with(req, func(c []byte) { c[4] ^= 1 }), false},
		{"length_too_big", with(req, func(c []byte) { c[3] = 4 }), false},
		{"length_not_multiple_of_4", with(resp, func(c []byte) { c[3]-- }), false},
		{"trailing_bytes", append(append([]byte(nil), req...), 0, 0, 0, 0), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := IsSTUN(c.b); got != c.want {
				t.Fatalf("IsSTUN(%x) = %v", c.b, got)
			}
		})
	}
}

// rawMsg builds a message of type typ with txA and the given raw
// attributes (type, value), padded.
func rawMsg(typ uint16, attrs ...[]byte) []byte { return rawMsgTx(typ, txA, attrs...) }

// rawMsgTx is rawMsg with transaction ID tx.
func rawMsgTx(typ uint16, tx TxID, attrs ...[]byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:2], typ)
	binary.BigEndian.PutUint32(b[4:8], magicCookie)
	copy(b[8:], tx[:])
	for _, a := range attrs {
		b = append(b, a...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)-20))
	return b
}

// attr encodes one attribute header and value, unpadded.
func attr(typ uint16, val []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(val)))
	return append(b, val...)
}

// xorV4 is the XOR-MAPPED-ADDRESS value of v4.
func xorV4() []byte {
	b := []byte{0, 1}
	b = binary.BigEndian.AppendUint16(b, v4.Port()^0x2112)
	ip := v4.Addr().As4()
	x := binary.BigEndian.Uint32(ip[:]) ^ magicCookie
	return binary.BigEndian.AppendUint32(b, x)
}

func TestParseBindingResponse_errors(t *testing.T) {
	many := make([][]byte, MaxAttributes+1)
	for i := range many {
		many[i] = attr(0x8022, nil)
	}
	many[len(many)-1] = attr(attrXORMappedAddress, xorV4())
	v4ok := rawMsg(typeBindingSuccess, attr(attrXORMappedAddress, xorV4()))
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"ok_raw", v4ok, nil},
		{"old_xor_code", rawMsg(typeBindingSuccess, attr(attrXORMappedAddressOld, xorV4())), nil},
		{"not_stun", []byte("hello world, this is not stun"), ErrNotSTUN},
		{"too_large", rawMsg(typeBindingSuccess, attr(0x8022, make([]byte, MaxSTUNSize))), ErrTooLarge},
		{"request", AppendBindingRequest(nil, txA), ErrUnexpected},
		{"error_response", rawMsg(typeBindingError), ErrUnexpected},
		{"indication", rawMsg(0x0011, attr(attrXORMappedAddress, xorV4())), ErrUnexpected},
		{"no_address", rawMsg(typeBindingSuccess, attr(0x8022, []byte("sw"))), ErrNoAddress},
		{"short_address", rawMsg(typeBindingSuccess, attr(attrXORMappedAddress, xorV4()[:7])), ErrNoAddress},
		{"long_address", rawMsg(typeBindingSuccess, attr(attrXORMappedAddress, append(xorV4(), 0, 0, 0, 0))), ErrNoAddress},
		{"bad_family", rawMsg(typeBindingSuccess, attr(attrXORMappedAddress, append([]byte{0, 3}, xorV4()[2:]...))), ErrNoAddress},
		{"zero_port", rawMsg(typeBindingSuccess, attr(attrMappedAddress, []byte{0, 1, 0, 0, 1, 2, 3, 4})), ErrNoAddress},
		{"unspecified", rawMsg(typeBindingSuccess, attr(attrMappedAddress, []byte{0, 1, 0, 9, 0, 0, 0, 0})), ErrNoAddress},
		{"unknown_required", rawMsg(typeBindingSuccess, attr(0x7777, nil), attr(attrXORMappedAddress, xorV4())), ErrUnsupported},
		{"too_many_attributes", rawMsg(typeBindingSuccess, many...), ErrMalformed},
		{"attribute_overrun", func() []byte {
			b := rawMsg(typeBindingSuccess, attr(attrXORMappedAddress, xorV4()))
			b[23] = 12 // value length 12 in 8 bytes
			return b
		}(), ErrMalformed},
		{"fingerprint_not_last", rawMsg(typeBindingSuccess, attr(attrFingerprint, []byte{1, 2, 3, 4}), attr(attrXORMappedAddress, xorV4())), ErrMalformed},
		{"bad_fingerprint", rawMsg(typeBindingSuccess, attr(attrXORMappedAddress, xorV4()), attr(attrFingerprint, []byte{1, 2, 3, 4})), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, ap, err := ParseBindingResponse(c.b)
			if c.want == nil {
				if err != nil || ap != v4 {
					t.Fatalf("got %v, %v; want %v", ap, err, v4)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

func TestParseBindingResponse_mappedV6Unmapped(t *testing.T) {
	// MAPPED-ADDRESS, family IPv6, ::ffff:203.0.113.7.
	val := binary.BigEndian.AppendUint16([]byte{0, 2}, v4.Port())
	a16 := v4.Addr().As16()
	b := rawMsg(typeBindingSuccess, attr(attrMappedAddress, append(val, a16[:]...)))
	_, got, err := ParseBindingResponse(b)
	if err != nil || got != v4 {
		t.Fatalf("got %v %v, want %v", got, err, v4)
	}
}

// pionRequest builds a Binding request with txA with pion: SOFTWARE and,
// if fp, FINGERPRINT.
func pionRequest(t testing.TB, fp bool) []byte {
	t.Helper()
	setters := []stun.Setter{stun.NewTransactionIDSetter(txA), stun.BindingRequest, stun.NewSoftware("pion")}
	if fp {
		setters = append(setters, stun.Fingerprint)
	}
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

var pionFingerprint stun.Setter = stun.Fingerprint
