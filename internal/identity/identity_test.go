package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// base32Alphabet is the RFC 4648 base32 alphabet, lower case.
const base32Alphabet = "abcdefghijklmnopqrstuvwxyz234567"

// rfc8410PubHex is the public key of the RFC 8410 section 10.3 example
// private key; rfc8410ID is its text form, computed independently
// (python3 base64.b32encode, lower-cased, padding stripped).
const (
	rfc8410PubHex = "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
	rfc8410ID     = "dg7uicljqtg75bkbxlawpxb3s3efbbvkgc3lnsymlq4k24brm3qq"
)

func randomID(t testing.TB) NodeID {
	t.Helper()
	var id NodeID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatalf("rand.Read: %v", err)
	}
	return id
}

func TestParseIDRoundTrip(t *testing.T) {
	var allFF NodeID
	for i := range allFF {
		allFF[i] = 0xff
	}
	var ascending NodeID
	for i := range ascending {
		ascending[i] = byte(i)
	}
	tests := []struct {
		name string
		id   NodeID
	}{
		{"all_ff", allFF},
		{"ascending_bytes", ascending},
	}
	for i := range 64 {
		tests = append(tests, struct {
			name string
			id   NodeID
		}{fmt.Sprintf("random_%02d", i), randomID(t)})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.id.String()
			if len(s) != TextLen {
				t.Fatalf("String() = %q has %d characters, want %d", s, len(s), TextLen)
			}
			if s != strings.ToLower(s) {
				t.Fatalf("String() = %q is not lower case", s)
			}
			if strings.Trim(s, base32Alphabet) != "" {
				t.Fatalf("String() = %q has characters outside the base32 alphabet", s)
			}
			if last := s[len(s)-1]; last != 'a' && last != 'q' {
				t.Fatalf("String() = %q ends in %q; the last 4 bits must be zero so only 'a' or 'q' can end an ID", s, last)
			}
			got, err := ParseID(s)
			if err != nil {
				t.Fatalf("ParseID(%q): %v", s, err)
			}
			if got != tc.id {
				t.Fatalf("ParseID(String()) = %x, want %x", got, tc.id)
			}
			if short := tc.id.Short(); short != s[:8] {
				t.Fatalf("Short() = %q, want %q", short, s[:8])
			}
		})
	}
}

func TestParseIDKnownAnswer(t *testing.T) {
	pub, err := hex.DecodeString(rfc8410PubHex)
	if err != nil {
		t.Fatal(err)
	}
	id, err := IDFromPublicKey(ed25519.PublicKey(pub))
	if err != nil {
		t.Fatalf("IDFromPublicKey: %v", err)
	}
	if got := id.String(); got != rfc8410ID {
		t.Fatalf("String() = %q, want %q", got, rfc8410ID)
	}
	parsed, err := ParseID(rfc8410ID)
	if err != nil {
		t.Fatalf("ParseID(%q): %v", rfc8410ID, err)
	}
	if !bytes.Equal(parsed[:], pub) {
		t.Fatalf("ParseID(%q) = %x, want %s", rfc8410ID, parsed, rfc8410PubHex)
	}
}

func TestParseIDCaseInsensitive(t *testing.T) {
	for i := range 16 {
		t.Run(fmt.Sprintf("id_%02d", i), func(t *testing.T) { testParseIDCase(t, i) })
	}
}

// testParseIDCase checks that lower, upper and mixed case (upper case at
// even or odd positions, by i) spellings of a random ID all parse to it.
func testParseIDCase(t *testing.T, i int) {
	id := randomID(t)
	lower := id.String()
	mixed := []byte(lower)
	for j := range mixed {
		if j%2 == i%2 {
			mixed[j] = bytes.ToUpper(mixed[j : j+1])[0]
		}
	}
	if string(mixed) == lower || string(mixed) == strings.ToUpper(lower) {
		t.Fatalf("test bug: %q is not mixed case", mixed)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"lower_case", lower},
		{"upper_case", strings.ToUpper(lower)},
		{"mixed_case", string(mixed)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseID(tc.in)
			if err != nil {
				t.Fatalf("ParseID(%q): %v", tc.in, err)
			}
			if got != id {
				t.Fatalf("ParseID(%q) = %x, want %x", tc.in, got, id)
			}
			if got.String() != lower {
				t.Fatalf("ParseID(%q).String() = %q, want canonical %q", tc.in, got.String(), lower)
			}
		})
	}
}

// replaceAt returns s with the byte at i replaced by r.
func replaceAt(s string, i int, r string) string {
	return s[:i] + r + s[i+1:]
}

func TestParseIDRejects(t *testing.T) {
	id := randomID(t)
	valid := id.String()

	// Change the last character so that its low 4 bits (the padding
	// bits) are non-zero while its top bit (a data bit) stays the same.
	lastIdx := strings.IndexByte(base32Alphabet, valid[TextLen-1])
	if lastIdx < 0 || lastIdx&0x0f != 0 {
		t.Fatalf("valid ID %q ends in a character with non-zero trailing bits", valid)
	}

	type rejectCase struct {
		name string
		in   string
	}
	tests := []rejectCase{
		{"empty", ""},
		{"51_chars", valid[:TextLen-1]},
		{"53_chars", valid + "a"},
		{"53_chars_upper", strings.ToUpper(valid) + "A"},
		{"104_chars", valid + valid},
		{"64_hex_chars", hex.EncodeToString(id[:])},
		{"64_hex_chars_of_zero_id", strings.Repeat("0", 64)},
		{"52_spaces", strings.Repeat(" ", TextLen)},
		{"padded_to_56", valid + "===="},
		{"leading_space", " " + valid[1:]},
		{"trailing_newline", valid[:TextLen-1] + "\n"},
		{"embedded_newline", replaceAt(valid, 20, "\n")},
		{"embedded_carriage_return", replaceAt(valid, 20, "\r")},
		{"embedded_nul", replaceAt(valid, 20, "\x00")},
		// Non-ASCII letters whose upper case is ASCII: 'ſ' -> 'S', 'ı' -> 'I'.
		// Each is 2 bytes, so replacing 2 characters keeps 52 bytes.
		{"long_s_upper_cases_to_ascii", valid[:10] + "ſ" + valid[12:]},
		{"dotless_i_upper_cases_to_ascii", valid[:10] + "ı" + valid[12:]},
		{"two_byte_letter", valid[:10] + "é" + valid[12:]},
		{"invalid_utf8", replaceAt(valid, 10, "\xff")},
		{"kelvin_sign", valid[:10] + "\u212a" + valid[13:]},
	}
	positions := []struct {
		name string
		i    int
	}{{"start", 0}, {"middle", 25}, {"end", TextLen - 1}}
	for _, c := range "0189=-_.!/+ " {
		for _, pos := range positions {
			tests = append(tests, rejectCase{
				name: "non_base32_" + nameOf(c) + "_at_" + pos.name,
				in:   replaceAt(valid, pos.i, string(c)),
			})
		}
	}
	for low := 1; low <= 0x0f; low++ {
		c := base32Alphabet[lastIdx|low]
		tests = append(tests,
			rejectCase{"trailing_bits_" + string(c), replaceAt(valid, TextLen-1, string(c))},
			rejectCase{"trailing_bits_upper_" + string(c), replaceAt(strings.ToUpper(valid), TextLen-1, strings.ToUpper(string(c)))},
		)
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseID(tc.in)
			if err == nil {
				t.Fatalf("ParseID(%q) = %v, want error", tc.in, got)
			}
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("ParseID(%q) error %v does not wrap ErrBadID", tc.in, err)
			}
			if got != (NodeID{}) {
				t.Fatalf("ParseID(%q) returned non-zero ID %x with error", tc.in, got)
			}
		})
	}
}

func nameOf(c rune) string {
	switch c {
	case '=':
		return "equals"
	case '-':
		return "dash"
	case '_':
		return "underscore"
	case '.':
		return "dot"
	case '!':
		return "bang"
	case '/':
		return "slash"
	case '+':
		return "plus"
	case ' ':
		return "space"
	default:
		return string(c)
	}
}

func TestParseIDErrorMessageTruncated(t *testing.T) {
	long := strings.Repeat("x", 10000)
	_, err := ParseID(long)
	if !errors.Is(err, ErrBadID) {
		t.Fatalf("ParseID(long) error = %v, want ErrBadID", err)
	}
	if len(err.Error()) > 200 {
		t.Fatalf("error message has %d bytes; the input should be truncated", len(err.Error()))
	}
}

func TestIDFromPublicKey(t *testing.T) {
	k, err := NewKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Private().Public().(ed25519.PublicKey)
	t.Run("valid", func(t *testing.T) {
		id, err := IDFromPublicKey(pub)
		if err != nil {
			t.Fatalf("IDFromPublicKey: %v", err)
		}
		if id != k.ID() {
			t.Fatalf("IDFromPublicKey = %v, want %v", id, k.ID())
		}
		if !bytes.Equal(id.PublicKey(), pub) {
			t.Fatalf("PublicKey() = %x, want %x", id.PublicKey(), pub)
		}
	})
	for _, n := range []int{0, 31, 33, 64} {
		t.Run(fmt.Sprintf("length_%d", n), func(t *testing.T) {
			_, err := IDFromPublicKey(make(ed25519.PublicKey, n))
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("IDFromPublicKey(%d bytes) error = %v, want ErrBadID", n, err)
			}
		})
	}
}

func TestPublicKeyIsACopy(t *testing.T) {
	id := randomID(t)
	orig := id
	pub := id.PublicKey()
	pub[0] ^= 0xff
	if id != orig {
		t.Fatalf("mutating PublicKey() changed the ID")
	}
}

func TestIsZero(t *testing.T) {
	if !(NodeID{}).IsZero() {
		t.Fatal("zero NodeID: IsZero() = false")
	}
	var id NodeID
	id[IDLen-1] = 1
	if id.IsZero() {
		t.Fatal("non-zero NodeID: IsZero() = true")
	}
}

func TestLessIsStrictOrder(t *testing.T) {
	var lo, hiFirst, hiLast NodeID
	hiFirst[0] = 1
	hiLast[IDLen-1] = 1
	var mid NodeID
	mid[0] = 0x80
	var ff NodeID
	for i := range ff {
		ff[i] = 0xff
	}
	ids := []NodeID{lo, hiFirst, hiLast, mid, ff}
	for range 32 {
		ids = append(ids, randomID(t))
	}
	// IDs that share a long prefix and differ only late.
	base := randomID(t)
	for i := range 4 {
		v := base
		v[IDLen-1] = byte(i * 60)
		ids = append(ids, v)
	}

	t.Run("known_pairs", func(t *testing.T) {
		tests := []struct {
			name string
			a, b NodeID
			want bool
		}{
			{"zero_vs_first_byte", lo, hiFirst, true},
			{"first_byte_vs_zero", hiFirst, lo, false},
			{"zero_vs_last_byte", lo, hiLast, true},
			{"last_byte_vs_first_byte", hiLast, hiFirst, true},
			{"first_byte_vs_last_byte", hiFirst, hiLast, false},
			{"mid_vs_ff", mid, ff, true},
			{"equal", mid, mid, false},
		}
		for _, tc := range tests {
			if got := tc.a.Less(tc.b); got != tc.want {
				t.Errorf("%s: %x.Less(%x) = %v, want %v", tc.name, tc.a[:2], tc.b[:2], got, tc.want)
			}
		}
	})
	t.Run("irreflexive", func(t *testing.T) {
		for _, a := range ids {
			if a.Less(a) {
				t.Errorf("%v.Less(itself) = true", a)
			}
		}
	})
	t.Run("antisymmetric_and_total", func(t *testing.T) {
		for _, a := range ids {
			for _, b := range ids {
				ab, ba := a.Less(b), b.Less(a)
				if ab && ba {
					t.Errorf("both %v < %v and %v < %v", a, b, b, a)
				}
				if a != b && !ab && !ba {
					t.Errorf("distinct %v and %v are unordered", a, b)
				}
				if want := bytes.Compare(a[:], b[:]) < 0; ab != want {
					t.Errorf("%v.Less(%v) = %v, bytes.Compare says %v", a, b, ab, want)
				}
			}
		}
	})
	t.Run("transitive", func(t *testing.T) {
		for _, a := range ids {
			for _, b := range ids {
				for _, c := range ids {
					if a.Less(b) && b.Less(c) && !a.Less(c) {
						t.Errorf("%v < %v < %v but not %v < %v", a, b, c, a, c)
					}
				}
			}
		}
	})
}

func TestTextMarshalJSON(t *testing.T) {
	type doc struct {
		ID    NodeID         `json:"id"`
		Peers []NodeID       `json:"peers"`
		Seen  map[NodeID]int `json:"seen"`
	}
	a, b := randomID(t), randomID(t)
	in := doc{ID: a, Peers: []NodeID{a, b}, Seen: map[NodeID]int{a: 1, b: 2}}

	t.Run("marshal_text", func(t *testing.T) {
		txt, err := a.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if string(txt) != a.String() {
			t.Fatalf("MarshalText() = %q, want %q", txt, a.String())
		}
		var got NodeID
		if err := got.UnmarshalText(txt); err != nil {
			t.Fatal(err)
		}
		if got != a {
			t.Fatalf("UnmarshalText(MarshalText()) = %v, want %v", got, a)
		}
	})
	t.Run("json_round_trip", func(t *testing.T) {
		data, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
		if want := `"id":"` + a.String() + `"`; !strings.Contains(string(data), want) {
			t.Fatalf("json.Marshal = %s, want it to contain %s", data, want)
		}
		var out doc
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", data, err)
		}
		if out.ID != in.ID {
			t.Fatalf("ID = %v, want %v", out.ID, in.ID)
		}
		if len(out.Peers) != 2 || out.Peers[0] != a || out.Peers[1] != b {
			t.Fatalf("Peers = %v, want [%v %v]", out.Peers, a, b)
		}
		if len(out.Seen) != 2 || out.Seen[a] != 1 || out.Seen[b] != 2 {
			t.Fatalf("Seen = %v, want %v", out.Seen, in.Seen)
		}
	})
	t.Run("json_upper_case_accepted", func(t *testing.T) {
		var out doc
		data := `{"id":"` + strings.ToUpper(a.String()) + `"}`
		if err := json.Unmarshal([]byte(data), &out); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", data, err)
		}
		if out.ID != a {
			t.Fatalf("ID = %v, want %v", out.ID, a)
		}
	})
	rejects := []struct {
		name string
		data string
	}{
		{"json_rejects_short", `{"id":"` + a.String()[:TextLen-1] + `"}`},
		{"json_rejects_hex", `{"id":"` + hex.EncodeToString(a[:]) + `"}`},
		{"json_rejects_empty", `{"id":""}`},
		{"json_rejects_bad_map_key", `{"seen":{"` + replaceAt(a.String(), 3, "0") + `":1}}`},
	}
	for _, tc := range rejects {
		t.Run(tc.name, func(t *testing.T) {
			var out doc
			err := json.Unmarshal([]byte(tc.data), &out)
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("json.Unmarshal(%s) error = %v, want ErrBadID", tc.data, err)
			}
		})
	}
	t.Run("unmarshal_error_leaves_value", func(t *testing.T) {
		got := a
		if err := got.UnmarshalText([]byte("nope")); !errors.Is(err, ErrBadID) {
			t.Fatalf("UnmarshalText error = %v, want ErrBadID", err)
		}
		if got != a {
			t.Fatalf("failed UnmarshalText changed the ID to %v", got)
		}
	})
}

func TestParseIDRefusesZero(t *testing.T) {
	s := NodeID{}.String()
	if _, err := ParseID(s); !errors.Is(err, ErrBadID) {
		t.Fatalf("ParseID(%q) = %v, want ErrBadID", s, err)
	}
}
