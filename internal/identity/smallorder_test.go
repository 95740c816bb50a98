package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
)

// smallOrderHex are the blocklisted encodings written out independently of
// smallOrderEncodings (little-endian, sign bit clear), as libsodium lists
// them.
var smallOrderHex = []string{
	"0000000000000000000000000000000000000000000000000000000000000000", // 0: order 4
	"0100000000000000000000000000000000000000000000000000000000000000", // 1: order 1 (identity)
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p-1: order 2
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p: non-canonical 0
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // p+1: non-canonical 1
}

// identityPoint is the encoding of the neutral element (x=0, y=1).
var identityPoint = ed25519.PublicKey(append([]byte{1}, make([]byte, 31)...))

// smallOrderVariants returns each blocklisted encoding with the sign bit
// clear and set: 14 in all.
func smallOrderVariants(t testing.TB) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	for _, h := range smallOrderHex {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != IDLen {
			t.Fatalf("bad test constant %s", h)
		}
		out[h] = b
		signed := append([]byte(nil), b...)
		signed[IDLen-1] |= 0x80
		out[hex.EncodeToString(signed)] = signed
	}
	if len(out) != 14 {
		t.Fatalf("test bug: %d variants, want 14", len(out))
	}
	return out
}

// TestSmallOrderKeyForgery shows why the blocklist exists: under the
// identity point, R = identity and S = 0 is a valid signature of anything.
func TestSmallOrderKeyForgery(t *testing.T) {
	forged := append(append([]byte(nil), identityPoint...), make([]byte, 32)...)
	for _, msg := range []string{"", "hello", "any message at all"} {
		if !ed25519.Verify(identityPoint, []byte(msg), forged) {
			t.Fatalf("test premise failed: forged signature of %q does not verify", msg)
		}
	}
}

func TestIDFromPublicKeyRefusesSmallOrder(t *testing.T) {
	for name, b := range smallOrderVariants(t) {
		t.Run(name, func(t *testing.T) {
			id, err := IDFromPublicKey(ed25519.PublicKey(b))
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("IDFromPublicKey(%x) = %v, %v; want ErrBadID", b, id, err)
			}
			if !strings.Contains(err.Error(), "small-order") {
				t.Fatalf("error %q does not say the key is small-order", err)
			}
			if !id.IsZero() {
				t.Fatalf("IDFromPublicKey returned %x with an error", id)
			}
		})
	}
}

func TestParseIDRefusesSmallOrder(t *testing.T) {
	for name, b := range smallOrderVariants(t) {
		t.Run(name, func(t *testing.T) {
			var raw NodeID
			copy(raw[:], b)
			s := raw.String() // the canonical text form of the bytes
			for _, in := range []string{s, strings.ToUpper(s)} {
				id, err := ParseID(in)
				if !errors.Is(err, ErrBadID) {
					t.Fatalf("ParseID(%q) = %v, %v; want ErrBadID", in, id, err)
				}
				if !id.IsZero() {
					t.Fatalf("ParseID(%q) returned %x with an error", in, id)
				}
				var viaText NodeID
				if err := viaText.UnmarshalText([]byte(in)); !errors.Is(err, ErrBadID) {
					t.Fatalf("UnmarshalText(%q) error = %v, want ErrBadID", in, err)
				}
			}
		})
	}
	t.Run("identity_point_text", func(t *testing.T) {
		// The identity point's ID as a user would see it.
		s := "ae" + strings.Repeat("a", TextLen-2)
		_, err := ParseID(s)
		if !errors.Is(err, ErrBadID) || !strings.Contains(err.Error(), "small-order") {
			t.Fatalf("ParseID(%q) error = %v, want a small-order ErrBadID", s, err)
		}
	})
	t.Run("canonical_check_first", func(t *testing.T) {
		// Non-zero trailing bits on a small-order ID's text: refused as
		// non-canonical text before the bytes are looked at.
		s := "ae" + strings.Repeat("a", TextLen-3) + "b"
		_, err := ParseID(s)
		if !errors.Is(err, ErrBadID) || !strings.Contains(err.Error(), "trailing bits") {
			t.Fatalf("ParseID(%q) error = %v, want a trailing-bits ErrBadID", s, err)
		}
	})
}

func TestBlocklistMatchesIndependentList(t *testing.T) {
	if len(smallOrderEncodings) != len(smallOrderHex) {
		t.Fatalf("smallOrderEncodings has %d entries, want %d", len(smallOrderEncodings), len(smallOrderHex))
	}
	for i, h := range smallOrderHex {
		if got := hex.EncodeToString(smallOrderEncodings[i][:]); got != h {
			t.Errorf("smallOrderEncodings[%d] = %s, want %s", i, got, h)
		}
	}
}

func TestRealKeysAreNotSmallOrder(t *testing.T) {
	for range 1000 {
		k, err := NewKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := IDFromPublicKey(k.ID().PublicKey()); err != nil {
			t.Fatalf("IDFromPublicKey(real key %v): %v", k.ID(), err)
		}
		if _, err := ParseID(k.ID().String()); err != nil {
			t.Fatalf("ParseID(real key %v): %v", k.ID(), err)
		}
	}
	// The neighbours of blocklisted encodings are not refused.
	for _, h := range smallOrderHex {
		b, _ := hex.DecodeString(h)
		b[5] ^= 0x40
		if smallOrder(b) {
			t.Errorf("%x (a neighbour of %s) is flagged", b, h)
		}
	}
}

// Edwards25519 arithmetic with math/big, to check the blocklist without a
// curve library: -x² + y² = 1 + d·x²·y² over GF(2^255 - 19).
var (
	fieldP  = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	curveD  = mulMod(big.NewInt(-121665), new(big.Int).ModInverse(big.NewInt(121666), fieldP))
	sqrtM1  = new(big.Int).Exp(big.NewInt(2), new(big.Int).Rsh(new(big.Int).Sub(fieldP, big.NewInt(1)), 2), fieldP)
	bigZero = big.NewInt(0)
	bigOne  = big.NewInt(1)
)

type point struct{ x, y *big.Int }

func mulMod(a, b *big.Int) *big.Int {
	r := new(big.Int).Mul(a, b)
	return r.Mod(r, fieldP)
}

// decodePoint decodes like crypto/ed25519: y may be non-canonical (≥ p) and
// is reduced; the sign bit picks x. ok is false when no x exists, or x = 0
// with the sign bit set.
func decodePoint(b []byte) (point, bool) {
	le := append([]byte(nil), b...)
	sign := le[31] >> 7
	le[31] &= 0x7f
	for i, j := 0, len(le)-1; i < j; i, j = i+1, j-1 {
		le[i], le[j] = le[j], le[i]
	}
	y := new(big.Int).SetBytes(le)
	y.Mod(y, fieldP)
	yy := mulMod(y, y)
	u := new(big.Int).Sub(yy, bigOne)
	u.Mod(u, fieldP)
	v := new(big.Int).Add(mulMod(curveD, yy), bigOne)
	v.Mod(v, fieldP)
	x2 := mulMod(u, new(big.Int).ModInverse(v, fieldP))
	// p ≡ 5 (mod 8): a candidate root is x2^((p+3)/8).
	x := new(big.Int).Exp(x2, new(big.Int).Rsh(new(big.Int).Add(fieldP, big.NewInt(3)), 3), fieldP)
	if mulMod(x, x).Cmp(x2) != 0 {
		x = mulMod(x, sqrtM1)
		if mulMod(x, x).Cmp(x2) != 0 {
			return point{}, false
		}
	}
	if x.Sign() == 0 && sign == 1 {
		// crypto/ed25519 (and edwards25519) accept this as x = 0; RFC 8032
		// refuses it. Treat it as x = 0 like Go does.
		return point{x, y}, true
	}
	if byte(x.Bit(0)) != sign {
		x.Sub(fieldP, x)
	}
	return point{x, y}, true
}

func addPoints(a, b point) point {
	dxy := mulMod(curveD, mulMod(mulMod(a.x, b.x), mulMod(a.y, b.y)))
	xn := new(big.Int).Add(mulMod(a.x, b.y), mulMod(a.y, b.x))
	yn := new(big.Int).Add(mulMod(a.y, b.y), mulMod(a.x, b.x))
	xd := new(big.Int).Add(bigOne, dxy)
	yd := new(big.Int).Sub(bigOne, dxy)
	yd.Mod(yd, fieldP)
	return point{
		mulMod(xn, new(big.Int).ModInverse(xd, fieldP)),
		mulMod(yn, new(big.Int).ModInverse(yd, fieldP)),
	}
}

func (p point) isIdentity() bool { return p.x.Sign() == 0 && p.y.Cmp(bigOne) == 0 }

func encodePoint(p point) []byte {
	b := make([]byte, 32)
	p.y.FillBytes(b)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	b[31] |= byte(p.x.Bit(0)) << 7
	return b
}

// TestBlocklistIsSmallOrder checks, in this module's own arithmetic, that
// every blocklisted encoding (either sign) that decodes is a point P with
// [8]P = identity, and that the 8-torsion subgroup, generated from an
// order-8 entry, encodes entirely to blocklisted values.
func TestBlocklistIsSmallOrder(t *testing.T) {
	// Sanity: the base point decodes and is not small-order.
	base, ok := decodePoint(mustHex(t, "5866666666666666666666666666666666666666666666666666666666666666"))
	if !ok || bigZero.Cmp(base.x) == 0 {
		t.Fatal("base point does not decode")
	}
	if order := smallOrderOf(base); order != 0 {
		t.Fatalf("base point has order %d", order)
	}

	wantOrder := map[string]int{smallOrderHex[0]: 4, smallOrderHex[1]: 1, smallOrderHex[2]: 8, smallOrderHex[3]: 8, smallOrderHex[4]: 2, smallOrderHex[5]: 4, smallOrderHex[6]: 1}
	var gen point
	for name, b := range smallOrderVariants(t) {
		p, ok := decodePoint(b)
		if !ok {
			t.Errorf("%s does not decode", name)
			continue
		}
		canon := append([]byte(nil), b...)
		canon[31] &= 0x7f
		order := smallOrderOf(p)
		if want := wantOrder[hex.EncodeToString(canon)]; order != want {
			t.Errorf("%s has order %d, want %d", name, order, want)
		}
		if order == 8 {
			gen = p
		}
	}
	if gen.x == nil {
		t.Fatal("no order-8 point in the list")
	}
	acc := point{big.NewInt(0), big.NewInt(1)}
	seen := map[string]bool{}
	for range 8 {
		enc := encodePoint(acc)
		seen[hex.EncodeToString(enc)] = true
		if !smallOrder(enc) {
			t.Errorf("torsion point %x is not blocklisted", enc)
		}
		acc = addPoints(acc, gen)
	}
	if len(seen) != 8 || !acc.isIdentity() {
		t.Fatalf("the order-8 point generated %d distinct points", len(seen))
	}
}

// smallOrderOf returns the order of p if it divides 8, else 0.
func smallOrderOf(p point) int {
	acc := p
	for k := 1; k <= 8; k++ {
		if acc.isIdentity() {
			return k
		}
		acc = addPoints(acc, p)
	}
	return 0
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyFromPrivateIgnoresCachedPublicKey: an ed25519.PrivateKey is seed ||
// public key. A crafted one whose second half is the identity point must not
// yield that point as the node ID.
func TestKeyFromPrivateIgnoresCachedPublicKey(t *testing.T) {
	seed := bytes.Repeat([]byte{3}, ed25519.SeedSize)
	want := ed25519.NewKeyFromSeed(seed)
	crafted := ed25519.PrivateKey(append(append([]byte(nil), seed...), identityPoint...))
	k := KeyFromPrivate(crafted)
	if _, err := IDFromPublicKey(k.ID().PublicKey()); err != nil {
		t.Fatalf("KeyFromPrivate(crafted) gave ID %v: %v", k.ID(), err)
	}
	if !bytes.Equal(k.ID().PublicKey(), want.Public().(ed25519.PublicKey)) {
		t.Fatalf("ID = %x, want the seed's public key %x", k.ID(), want.Public())
	}
	msg := []byte("m")
	if !ed25519.Verify(k.ID().PublicKey(), msg, ed25519.Sign(k.Private(), msg)) {
		t.Fatal("the key's signatures do not verify under its ID")
	}
	crafted[0] ^= 1
	if k.Private()[0] == crafted[0] {
		t.Fatal("Key retains the caller's slice")
	}
}

// TestParseKeyWithSmallOrderPublicKey: a PKCS #8 v2 (RFC 5958) file may
// carry the public key; one carrying the identity point must not yield it.
func TestParseKeyWithSmallOrderPublicKey(t *testing.T) {
	seed := bytes.Repeat([]byte{4}, ed25519.SeedSize)
	inner, err := asn1.Marshal(seed)
	if err != nil {
		t.Fatal(err)
	}
	type oneAsymmetricKey struct {
		Version    int
		Algo       pkix.AlgorithmIdentifier
		PrivateKey []byte
		PublicKey  asn1.BitString `asn1:"optional,tag:1"`
	}
	der, err := asn1.Marshal(oneAsymmetricKey{
		Version:    1,
		Algo:       pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 101, 112}},
		PrivateKey: inner,
		PublicKey:  asn1.BitString{Bytes: identityPoint, BitLength: 256},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
		t.Logf("x509 refuses the v2 encoding (%v); ParseKey must too", err)
	}
	k, err := ParseKey(pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}))
	if err != nil {
		if !errors.Is(err, ErrKeyFormat) {
			t.Fatalf("ParseKey error = %v, want ErrKeyFormat", err)
		}
		return
	}
	if _, err := IDFromPublicKey(k.ID().PublicKey()); err != nil {
		t.Fatalf("ParseKey gave ID %v: %v", k.ID(), err)
	}
	if want := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey); !bytes.Equal(k.ID().PublicKey(), want) {
		t.Fatalf("ParseKey gave ID %v, want the seed's public key %x", k.ID(), want)
	}
}
