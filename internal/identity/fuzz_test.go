package identity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func FuzzParseID(f *testing.F) {
	valid := testKey(f, 1).ID().String()
	f.Add(valid)
	f.Add(strings.ToUpper(valid))
	f.Add(rfc8410ID)
	f.Add("")
	f.Add("not a node id")
	f.Add(strings.Repeat("a", TextLen))
	f.Add(valid[:TextLen-1] + "b")
	f.Add(valid[:10] + "ſ" + valid[12:])
	f.Add(strings.Repeat("0", 64))
	for _, h := range smallOrderHex {
		var id NodeID
		hex.Decode(id[:], []byte(h))
		f.Add(id.String())
		id[IDLen-1] |= 0x80
		f.Add(id.String())
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("ParseID(%q) error %v does not wrap ErrBadID", s, err)
			}
			if id != (NodeID{}) {
				t.Fatalf("ParseID(%q) returned %x with an error", s, id)
			}
			return
		}
		if _, err := IDFromPublicKey(id.PublicKey()); err != nil {
			t.Fatalf("ParseID(%q) accepted a key IDFromPublicKey refuses: %v", s, err)
		}
		str := id.String()
		if str != strings.ToLower(s) {
			t.Fatalf("ParseID(%q).String() = %q, want %q", s, str, strings.ToLower(s))
		}
		again, err := ParseID(str)
		if err != nil {
			t.Fatalf("ParseID(%q) (re-parse of String()) failed: %v", str, err)
		}
		if again != id {
			t.Fatalf("ParseID(String()) = %x, want %x", again, id)
		}
		var viaText NodeID
		if err := viaText.UnmarshalText([]byte(s)); err != nil || viaText != id {
			t.Fatalf("UnmarshalText(%q) = %x, %v; want %x, nil", s, viaText, err, id)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	valid := testKey(f, 1).MarshalPEM()
	f.Add(valid)
	f.Add([]byte(rfc8410Key))
	f.Add(bytes.ReplaceAll(valid, []byte("\n"), []byte("\r\n")))
	f.Add(append([]byte("# comment\n"), valid...))
	f.Add(append(append([]byte(nil), valid...), "junk"...))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("junk"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err != nil {
			if !errors.Is(err, ErrKeyFormat) {
				t.Fatalf("ParseKey error %v does not wrap ErrKeyFormat", err)
			}
			if k != nil {
				t.Fatal("ParseKey returned a key along with an error")
			}
			return
		}
		if len(b) > MaxKeyFileSize {
			t.Fatalf("ParseKey accepted %d bytes, more than MaxKeyFileSize", len(b))
		}
		out := k.MarshalPEM()
		k2, err := ParseKey(out)
		if err != nil {
			t.Fatalf("ParseKey(MarshalPEM()) of a parsed key failed: %v\ninput: %q\nmarshaled: %q", err, b, out)
		}
		if k2.ID() != k.ID() {
			t.Fatalf("re-parsed ID = %v, want %v", k2.ID(), k.ID())
		}
		if !k2.Private().Equal(k.Private()) {
			t.Fatal("re-parsed private key differs")
		}
		if !bytes.Equal(k2.MarshalPEM(), out) {
			t.Fatal("MarshalPEM is not stable across a parse")
		}
	})
}
