package control

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

func framed(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestFrameReader(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    string
		wantErr func(error) bool
	}{
		{"clean_end", framed(appendFrame(nil, frameData, []byte("hello ")), appendFrame(nil, frameData, []byte("world")), appendFrame(nil, frameEnd, nil)),
			"hello world", func(err error) bool { return err == nil }},
		{"error_end", framed(appendFrame(nil, frameData, []byte("partial")), appendFrame(nil, frameError, []byte("mycelium: stream reset"))),
			"partial", func(err error) bool {
				var re *RemoteError
				return errors.As(err, &re) && re.Message == "mycelium: stream reset"
			}},
		{"cut_without_end", appendFrame(nil, frameData, []byte("abc")),
			"abc", func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"cut_inside_data", appendFrame(nil, frameData, []byte("abcdef"))[:5],
			"ab", func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"empty_data_frame", []byte{frameData, 0, 0}, "", func(err error) bool { return errors.Is(err, ErrBadFrame) }},
		{"end_with_payload", []byte{frameEnd, 0, 1, 'x'}, "", func(err error) bool { return errors.Is(err, ErrBadFrame) }},
		{"unknown_type", []byte{7, 0, 1, 'x'}, "", func(err error) bool { return errors.Is(err, ErrBadFrame) }},
		{"oversized_error", []byte{frameError, 0xff, 0xff}, "", func(err error) bool { return errors.Is(err, ErrBadFrame) }},
		{"non_utf8_error", []byte{frameError, 0, 1, 0xff}, "", func(err error) bool { return errors.Is(err, ErrBadFrame) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := io.ReadAll(&frameReader{r: bytes.NewReader(tt.in)})
			if string(got) != tt.want || !tt.wantErr(err) {
				t.Fatalf("got %q, err %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestWriteFramedRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  io.Reader
		err  bool
	}{
		{"clean", strings.NewReader(strings.Repeat("x", 200_000)), false},
		{"failing", io.MultiReader(strings.NewReader("some"), errReader{errors.New("boom")}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			go func() { writeFramed(a, tc.src); a.Close() }()
			got, err := io.ReadAll(&frameReader{r: b})
			var re *RemoteError
			if tc.err != errors.As(err, &re) || (!tc.err && err != nil) {
				t.Fatalf("err = %v, want remote error: %v", err, tc.err)
			}
			if !tc.err && len(got) != 200_000 {
				t.Fatalf("got %d bytes", len(got))
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestTruncateMessage(t *testing.T) {
	long := strings.Repeat("é", 1000) // 2000 bytes
	got := truncateMessage(long)
	if len(got) > maxErrorFrame || !strings.HasSuffix(got, errorFrameTruncate) {
		t.Fatalf("truncated to %d bytes: %q…", len(got), got[:10])
	}
	if _, _, err := parseFrameHeader([3]byte{frameError, byte(len(got) >> 8), byte(len(got))}); err != nil {
		t.Fatal(err)
	}
}

// FuzzFrameReader: any byte sequence from the node decodes without panic,
// never yields more bytes than it holds, and ends in EOF, a remote error, a
// bad frame or a cut.
func FuzzFrameReader(f *testing.F) {
	f.Add(framed(appendFrame(nil, frameData, []byte("hi")), appendFrame(nil, frameEnd, nil)))
	f.Add(appendFrame(nil, frameError, []byte("reset")))
	f.Add([]byte{frameData, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := io.ReadAll(&frameReader{r: bytes.NewReader(b)})
		if len(got) > len(b) {
			t.Fatalf("decoded %d bytes from %d", len(got), len(b))
		}
		var re *RemoteError
		if err != nil && !errors.As(err, &re) && !errors.Is(err, ErrBadFrame) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
