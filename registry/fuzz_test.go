package registry

import (
	"errors"
	"testing"
	"time"
)

// checkBounds fails t if r breaks any bound a parsed record must keep.
func checkBounds(t *testing.T, r Record) {
	t.Helper()
	if err := r.validate(); err != nil {
		t.Fatalf("parsed record does not validate: %v", err)
	}
	if len(r.Listen) > MaxAddrs || len(r.Reflexive) > MaxAddrs || len(r.HomeRelays) > MaxHomeRelays ||
		len(r.Services) > MaxServices || len(r.Neighbors) > MaxNeighbors {
		t.Fatalf("parsed record over a list bound: %+v", r)
	}
	if r.ID.IsZero() || r.Lifetime < time.Second || r.Lifetime > MaxLifetime {
		t.Fatalf("parsed record has a bad ID or lifetime: %+v", r)
	}
}

func FuzzParseRecord(f *testing.F) {
	full, k := fullRecord()
	f.Add(mustSign(f, full, k))
	small, k2 := basicRecord(1, 5, t0)
	f.Add(mustSign(f, small, k2))
	f.Add(mustSign(f, Record{ID: small.ID, Seq: 6, Issued: t0, Lifetime: time.Minute, Leaving: true}, k2))
	f.Add([]byte{recordVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrOversized) && !errors.Is(err, ErrForged) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		checkBounds(t, r)
		if len(b) > MaxRecordSize {
			t.Fatalf("parsed a record of %d bytes", len(b))
		}
		// The signature forbids re-signing; the body must re-encode.
		if body := appendBody(nil, r); string(body) != string(b[:len(b)-64]) {
			t.Fatalf("body re-encodes differently")
		}
	})
}
