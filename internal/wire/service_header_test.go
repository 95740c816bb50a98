package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestServiceHeaderRoundTrip(t *testing.T) {
	for _, name := range []string{"echo", "a", "http-8080", "svc.v2_x", strings.Repeat("z", MaxServiceNameLen)} {
		b, err := AppendServiceHeader([]byte{0xff}, name)
		if err != nil {
			t.Fatalf("append %q: %v", name, err)
		}
		got, n, err := ParseServiceHeader(b[1:])
		if err != nil || got != name || n != len(b)-1 {
			t.Fatalf("parse %q: got %q n=%d err=%v", name, got, n, err)
		}
		rgot, err := ReadServiceHeader(bytes.NewReader(append(b[1:], "payload"...)))
		if err != nil || rgot != name {
			t.Fatalf("read %q: got %q err=%v", name, rgot, err)
		}
	}
}

func TestServiceHeaderRejects(t *testing.T) {
	long := strings.Repeat("a", MaxServiceNameLen+1)
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"one_byte", []byte{1}},
		{"bad_version", []byte{2, 4, 'e', 'c', 'h', 'o'}},
		{"zero_length", []byte{1, 0}},
		{"oversized_length", append([]byte{1, byte(len(long))}, long...)},
		{"length_255", append([]byte{1, 255}, bytes.Repeat([]byte{'a'}, 255)...)},
		{"truncated", []byte{1, 4, 'e', 'c'}},
		{"upper_case", []byte{1, 4, 'E', 'C', 'H', 'O'}},
		{"leading_dash", []byte{1, 2, '-', 'a'}},
		{"nul_byte", []byte{1, 2, 'a', 0}},
		{"utf8", []byte{1, 2, 0xc3, 0xa9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := ParseServiceHeader(tt.in); !errors.Is(err, ErrBadHeader) {
				t.Errorf("ParseServiceHeader: err = %v, want ErrBadHeader", err)
			}
			if _, err := ReadServiceHeader(bytes.NewReader(tt.in)); !errors.Is(err, ErrBadHeader) {
				t.Errorf("ReadServiceHeader: err = %v, want ErrBadHeader", err)
			}
		})
	}
}

func TestReadServiceHeaderReadsNoFurther(t *testing.T) {
	b, _ := AppendServiceHeader(nil, "echo")
	r := bytes.NewReader(append(b, "rest"...))
	if _, err := ReadServiceHeader(r); err != nil {
		t.Fatal(err)
	}
	if r.Len() != len("rest") {
		t.Fatalf("header read consumed payload: %d bytes left, want 4", r.Len())
	}
}

func TestValidateServiceName(t *testing.T) {
	for _, bad := range []string{"", "Echo", "a b", "a/b", ".x", strings.Repeat("a", 65)} {
		if err := ValidateServiceName(bad); !errors.Is(err, ErrBadServiceName) {
			t.Errorf("ValidateServiceName(%q) = %v, want ErrBadServiceName", bad, err)
		}
		if _, err := AppendServiceHeader(nil, bad); err == nil {
			t.Errorf("AppendServiceHeader(%q) accepted a bad name", bad)
		}
	}
}

func FuzzParseServiceHeader(f *testing.F) {
	good, _ := AppendServiceHeader(nil, "echo")
	f.Add(good)
	f.Add([]byte{1, 255})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, n, err := ParseServiceHeader(b)
		rname, rerr := ReadServiceHeader(bytes.NewReader(b))
		if (err == nil) != (rerr == nil) || name != rname {
			t.Fatalf("Parse and Read disagree: (%q, %v) vs (%q, %v)", name, err, rname, rerr)
		}
		if err != nil {
			return
		}
		if n > MaxServiceHeaderLen || n > len(b) {
			t.Fatalf("n = %d out of range", n)
		}
		again, aerr := AppendServiceHeader(nil, name)
		if aerr != nil || !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding %q gave %x, want %x (%v)", name, again, b[:n], aerr)
		}
	})
}

func TestReadStreamOpen(t *testing.T) {
	kind, _, err := ReadStreamOpen(bytes.NewReader([]byte{DrainedMarker, 'x'}))
	if err != nil || kind != KindDrained {
		t.Fatalf("drained marker: kind %v, err %v", kind, err)
	}
	hdr, _ := AppendServiceHeader(nil, "echo")
	r := bytes.NewReader(append(hdr, "data"...))
	kind, name, err := ReadStreamOpen(r)
	if err != nil || kind != KindService || name != "echo" || r.Len() != 4 {
		t.Fatalf("service header: kind %v name %q err %v, %d bytes left", kind, name, err, r.Len())
	}
	if _, _, err := ReadStreamOpen(bytes.NewReader(nil)); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("empty stream: err %v", err)
	}
}

func FuzzReadStreamOpen(f *testing.F) {
	good, _ := AppendServiceHeader(nil, "echo")
	f.Add(good)
	f.Add([]byte{DrainedMarker})
	f.Add([]byte{1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		kind, name, err := ReadStreamOpen(r)
		used := len(b) - r.Len()
		if used > MaxServiceHeaderLen {
			t.Fatalf("read %d bytes, more than a header", used)
		}
		if err != nil {
			return
		}
		switch kind {
		case KindDrained:
			if used != 1 || name != "" {
				t.Fatalf("drained: used %d, name %q", used, name)
			}
		case KindService:
			if want, _ := AppendServiceHeader(nil, name); !bytes.Equal(want, b[:used]) {
				t.Fatalf("service %q from %x", name, b[:used])
			}
		default:
			t.Fatalf("unknown kind %v", kind)
		}
	})
}
