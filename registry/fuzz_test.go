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

func FuzzAntiEntropyMessage(f *testing.F) {
	r, k := basicRecord(1, 1, t0)
	raw := mustSign(f, r, k)
	rec, _ := AppendRecords(nil, [][]byte{raw, raw[:10]})
	f.Add(rec)
	dig, _ := AppendDigest(nil, Digest{To: maxID, Entries: []DigestEntry{{ID: r.ID, Seq: 3}}})
	f.Add(dig)
	f.Add([]byte{byte(MsgDigest)})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrOversized) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if len(b) > MaxMessageSize {
			t.Fatalf("parsed a message of %d bytes", len(b))
		}
		switch m.Type {
		case MsgDigest:
			if err := m.Digest.validate(); err != nil {
				t.Fatalf("parsed digest invalid: %v", err)
			}
			enc, err := AppendDigest(nil, m.Digest)
			if err != nil || string(enc) != string(b) {
				t.Fatalf("digest re-encodes differently: %v", err)
			}
		case MsgRecords:
			if len(m.Records) == 0 {
				t.Fatal("empty RECORDS parsed")
			}
			for _, r := range m.Records {
				if len(r) == 0 || len(r) > MaxRecordSize {
					t.Fatalf("record of %d bytes", len(r))
				}
			}
			enc, err := AppendRecords(nil, m.Records)
			if err != nil || string(enc) != string(b) {
				t.Fatalf("RECORDS re-encodes differently: %v", err)
			}
		default:
			t.Fatalf("parsed type %v", m.Type)
		}
	})
}

// FuzzMachine feeds arbitrary bytes to a small Machine, as broadcasts and
// as anti-entropy messages, among valid records.
func FuzzMachine(f *testing.F) {
	r, k := basicRecord(1, 1, t0)
	raw := mustSign(f, r, k)
	rec, _ := AppendRecords(nil, [][]byte{raw})
	dig, _ := AppendDigest(nil, Digest{To: maxID})
	f.Add(raw, byte(0))
	f.Add(rec, byte(1))
	f.Add(dig, byte(1))
	f.Add(raw, byte(2))
	f.Fuzz(func(t *testing.T, b []byte, how byte) {
		cfg := DefaultConfig()
		cfg.MaxRecords = 4
		m := newTestMachine(t, 0, cfg)
		m.Start(t0)
		m.SetLocal(t0, Record{})
		feed(t, m, t0, 1, 4, 1)
		peer := mustID(9)
		now := t0.Add(time.Duration(how>>2) * time.Minute)
		var out []Output
		switch how & 3 {
		case 0:
			out = m.HandleBroadcast(now, b)
		case 1:
			out = m.HandleMessage(now, peer, b)
		case 2:
			out = m.HandleMessage(now, peer, append([]byte{byte(MsgRecords), 0, 1, byte(len(b) >> 8), byte(len(b))}, b...))
		case 3:
			out = m.HandleBroadcast(now, b)
			out = append(out, m.HandleNeighborUp(now, peer)...)
		}
		for _, o := range out {
			if s, ok := o.(Send); ok && len(s.Msg) > MaxMessageSize {
				t.Fatalf("Send of %d bytes", len(s.Msg))
			}
		}
		if m.Len() > cfg.MaxRecords {
			t.Fatalf("Len %d > MaxRecords %d", m.Len(), cfg.MaxRecords)
		}
		if _, ok := m.Lookup(now, m.ID()); !ok && now.Before(t0.Add(cfg.Lifetime)) {
			t.Fatal("own record lost")
		}
	})
}
