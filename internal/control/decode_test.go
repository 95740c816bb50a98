package control

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	var ok ExposeRequest
	if err := decodeJSON(strings.NewReader(`{"service":"echo","target":"127.0.0.1:1"}`+"\n"), &ok); err != nil || ok.Service != "echo" {
		t.Fatalf("good body: %+v, %v", ok, err)
	}
	for _, bad := range []string{``, `{`, `[]`, `{"service":5}`, `{"nope":1}`, `{"service":"a"} {"service":"b"}`, `{"service":"a"} x`} {
		var r ExposeRequest
		if err := decodeJSON(strings.NewReader(bad), &r); err == nil {
			t.Errorf("body %q accepted: %+v", bad, r)
		}
	}
}

// FuzzDecodeJSON: every request type decodes any input without panicking,
// and what it accepts survives a re-encoding unchanged.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"service":"echo","target":"127.0.0.1:1"}`))
	f.Add([]byte(`{"listen":"127.0.0.1:0","peer":"x","service":"s","remove":true}`))
	f.Add([]byte(`{"peer":"x","service":"s","timeout_ms":5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&ExposeRequest{}, &ForwardRequest{}, &DialRequest{}} {
			if decodeJSON(bytes.NewReader(b), v) != nil {
				continue
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			w := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := decodeJSON(bytes.NewReader(again), w); err != nil || !reflect.DeepEqual(v, w) {
				t.Fatalf("%T: %s re-decoded to %+v (%v)", v, again, w, err)
			}
		}
	})
}
