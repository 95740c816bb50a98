package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rfc8410Key is the example private key of RFC 8410 section 10.3, as
// `openssl genpkey -algorithm ed25519` would write it.
const rfc8410Key = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
`

func testKey(t testing.TB, b byte) *Key {
	t.Helper()
	k, err := KeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
	if err != nil {
		t.Fatalf("KeyFromSeed: %v", err)
	}
	return k
}

// writeFileMode writes data to path and then sets its mode explicitly, so
// the result does not depend on the umask.
func writeFileMode(t testing.TB, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fileMode(t testing.TB, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

// padKeyFile returns pemData preceded by a comment line (which pem.Decode
// skips) so that the result has exactly n bytes.
func padKeyFile(t testing.TB, pemData []byte, n int) []byte {
	t.Helper()
	pad := n - len(pemData) - 1
	if pad < 0 {
		t.Fatalf("cannot pad %d bytes to %d", len(pemData), n)
	}
	out := append(bytes.Repeat([]byte("#"), pad), '\n')
	out = append(out, pemData...)
	if len(out) != n {
		t.Fatalf("padKeyFile made %d bytes, want %d", len(out), n)
	}
	return out
}

func TestNewKey(t *testing.T) {
	t.Run("random_keys_differ", func(t *testing.T) {
		a, err := NewKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID() == b.ID() {
			t.Fatalf("two NewKey(nil) calls gave the same ID %v", a.ID())
		}
		if a.ID().IsZero() {
			t.Fatal("NewKey gave a zero ID")
		}
	})
	t.Run("reader_is_the_seed", func(t *testing.T) {
		seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
		a, err := NewKey(bytes.NewReader(seed))
		if err != nil {
			t.Fatal(err)
		}
		if want := testKey(t, 7); a.ID() != want.ID() {
			t.Fatalf("NewKey(seed reader) ID = %v, want %v", a.ID(), want.ID())
		}
	})
	t.Run("short_reader_fails", func(t *testing.T) {
		if _, err := NewKey(bytes.NewReader(make([]byte, 5))); err == nil {
			t.Fatal("NewKey with a 5-byte reader succeeded")
		}
	})
}

func TestKeyFromSeed(t *testing.T) {
	k := testKey(t, 1)
	if k.ID() != testKey(t, 1).ID() {
		t.Fatal("KeyFromSeed is not deterministic")
	}
	if k.ID() == testKey(t, 2).ID() {
		t.Fatal("different seeds gave the same ID")
	}
	pub := k.Private().Public().(ed25519.PublicKey)
	if !bytes.Equal(k.ID().PublicKey(), pub) {
		t.Fatalf("ID %x is not the public key %x", k.ID(), pub)
	}
	msg := []byte("hello")
	if !ed25519.Verify(k.ID().PublicKey(), msg, ed25519.Sign(k.Private(), msg)) {
		t.Fatal("signature by Private() does not verify under ID().PublicKey()")
	}
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := KeyFromSeed(make([]byte, n)); err == nil {
			t.Errorf("KeyFromSeed(%d bytes) succeeded", n)
		}
	}
}

func TestWriteLoadKeyFileRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rel  string
	}{
		{"in_existing_dir", "node.key"},
		{"creates_parent_dirs", filepath.Join("a", "b", "node.key")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.rel)
			k, err := NewKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteKeyFile(path, k); err != nil {
				t.Fatalf("WriteKeyFile: %v", err)
			}
			if mode := fileMode(t, path); mode != 0o600 {
				t.Fatalf("key file mode = %v, want -rw-------", mode)
			}
			for d := filepath.Dir(path); d != dir; d = filepath.Dir(d) {
				if perm := fileMode(t, d).Perm(); perm&0o077 != 0 {
					t.Fatalf("created folder %s has mode %04o, want no group/other bits", d, perm)
				}
			}
			if got := readFile(t, path); !bytes.Equal(got, k.MarshalPEM()) {
				t.Fatalf("file contents = %q, want MarshalPEM() %q", got, k.MarshalPEM())
			}
			got, err := LoadKeyFile(path)
			if err != nil {
				t.Fatalf("LoadKeyFile: %v", err)
			}
			if got.ID() != k.ID() {
				t.Fatalf("loaded ID = %v, want %v", got.ID(), k.ID())
			}
			if !got.Private().Equal(k.Private()) {
				t.Fatal("loaded private key differs from the written one")
			}
		})
	}
}

func TestKeyFileIsStandardPKCS8(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	k := testKey(t, 3)
	if err := WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	data := readFile(t, path)
	block, rest := pem.Decode(data)
	if block == nil {
		t.Fatalf("no PEM block in %q", data)
	}
	if block.Type != "PRIVATE KEY" {
		t.Fatalf("PEM type = %q, want %q", block.Type, "PRIVATE KEY")
	}
	if len(block.Headers) != 0 {
		t.Fatalf("PEM headers = %v, want none", block.Headers)
	}
	if len(rest) != 0 {
		t.Fatalf("data after the PEM block: %q", rest)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("x509.ParsePKCS8PrivateKey: %v", err)
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		t.Fatalf("parsed key is %T, want ed25519.PrivateKey", parsed)
	}
	if !priv.Equal(k.Private()) {
		t.Fatal("PKCS#8 key differs from the written key")
	}
	// Ed25519 PKCS#8 PEM is 119 bytes (the figure MaxKeyFileSize's comment cites).
	if len(data) != 119 {
		t.Fatalf("key file has %d bytes, want 119", len(data))
	}
}

func TestParseKeyReadsOpenSSLKey(t *testing.T) {
	k, err := ParseKey([]byte(rfc8410Key))
	if err != nil {
		t.Fatalf("ParseKey(RFC 8410 example): %v", err)
	}
	if got := k.ID().String(); got != rfc8410ID {
		t.Fatalf("ID = %s, want %s", got, rfc8410ID)
	}
	if got := string(k.MarshalPEM()); got != rfc8410Key {
		t.Fatalf("MarshalPEM() = %q, want the RFC 8410 text %q", got, rfc8410Key)
	}
}

func TestWriteKeyFileRefusesExisting(t *testing.T) {
	tests := []struct {
		name     string
		contents []byte
		mode     fs.FileMode
	}{
		{"other_key", testKey(t, 9).MarshalPEM(), 0o600},
		{"garbage", []byte("precious data, not a key\n"), 0o644},
		{"empty", nil, 0o600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			writeFileMode(t, path, tc.contents, tc.mode)
			err := WriteKeyFile(path, testKey(t, 1))
			if !errors.Is(err, ErrKeyExists) {
				t.Fatalf("WriteKeyFile over an existing file: error = %v, want ErrKeyExists", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file %s", err, path)
			}
			if got := readFile(t, path); !bytes.Equal(got, tc.contents) {
				t.Fatalf("file contents changed to %q, want %q", got, tc.contents)
			}
			if mode := fileMode(t, path); mode != tc.mode {
				t.Fatalf("file mode changed to %v, want %v", mode, tc.mode)
			}
		})
	}
}

func TestLoadKeyFilePermissions(t *testing.T) {
	data := testKey(t, 4).MarshalPEM()
	tests := []struct {
		name string
		mode fs.FileMode
		ok   bool
	}{
		{"mode_0600", 0o600, true},
		{"mode_0400", 0o400, true},
		{"mode_0700", 0o700, true},
		{"mode_0644", 0o644, false},
		{"mode_0640", 0o640, false},
		{"mode_0604", 0o604, false},
		{"mode_0660", 0o660, false},
		{"mode_0602", 0o602, false},
		{"mode_0610", 0o610, false},
		{"mode_0601", 0o601, false},
		{"mode_0666", 0o666, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			writeFileMode(t, path, data, tc.mode)
			k, err := LoadKeyFile(path)
			if tc.ok {
				if err != nil {
					t.Fatalf("LoadKeyFile(mode %04o): %v", tc.mode, err)
				}
				if k.ID() != testKey(t, 4).ID() {
					t.Fatalf("loaded ID = %v, want %v", k.ID(), testKey(t, 4).ID())
				}
				return
			}
			if !errors.Is(err, ErrKeyPermissions) {
				t.Fatalf("LoadKeyFile(mode %04o) error = %v, want ErrKeyPermissions", tc.mode, err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file %s", err, path)
			}
			if k != nil {
				t.Fatal("LoadKeyFile returned a key along with the error")
			}
		})
	}
}

func TestLoadKeyFileRefusesBadFormat(t *testing.T) {
	valid := testKey(t, 5).MarshalPEM()
	block, _ := pem.Decode(valid)
	if block == nil {
		t.Fatal("MarshalPEM output has no PEM block")
	}

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}

	// A file just over the limit that would parse if the limit were not
	// enforced: a comment before the block (which pem.Decode skips) pads it.
	oversized := padKeyFile(t, valid, MaxKeyFileSize+1)
	if _, err := ParseKey(padKeyFile(t, valid, MaxKeyFileSize)); err != nil {
		t.Fatalf("test bug: the at-limit file does not parse: %v", err)
	}

	randomJunk := make([]byte, 200)
	if _, err := rand.Read(randomJunk); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		data []byte
	}{
		{"garbage_text", []byte("this is not a key\n")},
		{"random_bytes", randomJunk},
		{"empty", nil},
		{"whitespace_only", []byte(" \n\t\r\n")},
		{"other_pem_type", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: block.Bytes})},
		{"openssh_pem_type", pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: block.Bytes})},
		{"public_key_pem_type", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: block.Bytes})},
		{"lower_case_pem_type", pem.EncodeToMemory(&pem.Block{Type: "private key", Bytes: block.Bytes})},
		{"pkcs8_ecdsa_key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})},
		{"truncated_der", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: block.Bytes[:len(block.Bytes)-1]})},
		{"empty_block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY"})},
		{"raw_der", block.Bytes},
		{"truncated_pem", valid[:len(valid)-10]},
		{"trailing_text", append(append([]byte(nil), valid...), "trailing\n"...)},
		{"trailing_text_no_newline", append(append([]byte(nil), valid...), 'x')},
		{"two_blocks", append(append([]byte(nil), valid...), valid...)},
		{"trailing_other_block", append(append([]byte(nil), valid...), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})...)},
		{"bigger_than_max", oversized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			writeFileMode(t, path, tc.data, 0o600)
			k, err := LoadKeyFile(path)
			if !errors.Is(err, ErrKeyFormat) {
				t.Fatalf("LoadKeyFile error = %v, want ErrKeyFormat", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name the file %s", err, path)
			}
			if k != nil {
				t.Fatal("LoadKeyFile returned a key along with the error")
			}
			// ParseKey must agree with LoadKeyFile on the contents.
			if _, err := ParseKey(tc.data); !errors.Is(err, ErrKeyFormat) {
				t.Fatalf("ParseKey error = %v, want ErrKeyFormat", err)
			}
		})
	}

	t.Run("directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "node.key")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKeyFile(path)
		if !errors.Is(err, ErrKeyFormat) {
			t.Fatalf("LoadKeyFile(directory) error = %v, want ErrKeyFormat", err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("error %q does not name the file %s", err, path)
		}
	})
}

func TestLoadKeyFileAccepts(t *testing.T) {
	k := testKey(t, 6)
	valid := k.MarshalPEM()
	atLimit := padKeyFile(t, valid, MaxKeyFileSize)
	tests := []struct {
		name string
		data []byte
	}{
		{"exactly_max_size", atLimit},
		{"trailing_whitespace", append(append([]byte(nil), valid...), "\n\n  \t\r\n"...)},
		{"crlf_line_endings", bytes.ReplaceAll(valid, []byte("\n"), []byte("\r\n"))},
		{"leading_comment", append([]byte("# node key for host x\n"), valid...)},
		{"no_final_newline", bytes.TrimSuffix(valid, []byte("\n"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			writeFileMode(t, path, tc.data, 0o600)
			got, err := LoadKeyFile(path)
			if err != nil {
				t.Fatalf("LoadKeyFile: %v", err)
			}
			if got.ID() != k.ID() {
				t.Fatalf("loaded ID = %v, want %v", got.ID(), k.ID())
			}
		})
	}
	if len(atLimit) != MaxKeyFileSize {
		t.Fatalf("test bug: at-limit file has %d bytes", len(atLimit))
	}
}

func TestLoadKeyFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.key")
	_, err := LoadKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKeyFile(missing) error = %v, want fs.ErrNotExist", err)
	}
	if errors.Is(err, ErrKeyFormat) || errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("LoadKeyFile(missing) error %v claims a format or permission problem", err)
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	t.Run("creates_then_loads", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state", "node.key")
		k1, created, err := LoadOrCreateKeyFile(path)
		if err != nil {
			t.Fatalf("first LoadOrCreateKeyFile: %v", err)
		}
		if !created {
			t.Fatal("first call: created = false, want true")
		}
		if k1 == nil || k1.ID().IsZero() {
			t.Fatalf("first call returned key %v", k1)
		}
		if mode := fileMode(t, path); mode != 0o600 {
			t.Fatalf("created file mode = %v, want -rw-------", mode)
		}
		written := readFile(t, path)
		if !bytes.Equal(written, k1.MarshalPEM()) {
			t.Fatal("created file does not hold the returned key")
		}

		k2, created, err := LoadOrCreateKeyFile(path)
		if err != nil {
			t.Fatalf("second LoadOrCreateKeyFile: %v", err)
		}
		if created {
			t.Fatal("second call: created = true, want false")
		}
		if k2.ID() != k1.ID() {
			t.Fatalf("second call ID = %v, want %v", k2.ID(), k1.ID())
		}
		if got := readFile(t, path); !bytes.Equal(got, written) {
			t.Fatal("second call modified the key file")
		}
	})
	t.Run("loads_existing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "node.key")
		want := testKey(t, 8)
		if err := WriteKeyFile(path, want); err != nil {
			t.Fatal(err)
		}
		k, created, err := LoadOrCreateKeyFile(path)
		if err != nil {
			t.Fatalf("LoadOrCreateKeyFile: %v", err)
		}
		if created {
			t.Fatal("created = true for an existing file")
		}
		if k.ID() != want.ID() {
			t.Fatalf("ID = %v, want %v", k.ID(), want.ID())
		}
	})

	refuse := []struct {
		name    string
		data    []byte
		mode    fs.FileMode
		wantErr error
	}{
		{"refuses_garbage", []byte("garbage, not a key\n"), 0o600, ErrKeyFormat},
		{"refuses_empty", []byte{}, 0o600, ErrKeyFormat},
		{"refuses_open_permissions", testKey(t, 8).MarshalPEM(), 0o644, ErrKeyPermissions},
	}
	for _, tc := range refuse {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			writeFileMode(t, path, tc.data, tc.mode)
			k, created, err := LoadOrCreateKeyFile(path)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("LoadOrCreateKeyFile error = %v, want %v", err, tc.wantErr)
			}
			if created || k != nil {
				t.Fatalf("LoadOrCreateKeyFile = (%v, %v), want (nil, false)", k, created)
			}
			if got := readFile(t, path); !bytes.Equal(got, tc.data) {
				t.Fatalf("file contents changed to %q, want %q", got, tc.data)
			}
			if mode := fileMode(t, path); mode != tc.mode {
				t.Fatalf("file mode changed to %v, want %v", mode, tc.mode)
			}
		})
	}
	t.Run("refuses_directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "node.key")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadOrCreateKeyFile(path); !errors.Is(err, ErrKeyFormat) {
			t.Fatalf("LoadOrCreateKeyFile(directory) error = %v, want ErrKeyFormat", err)
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Fatalf("directory gained entries: %v", entries)
		}
	})
}

func TestParseKeyRejectsOversizedInput(t *testing.T) {
	valid := testKey(t, 2).MarshalPEM()
	big := padKeyFile(t, valid, MaxKeyFileSize+1)
	if _, err := ParseKey(big); !errors.Is(err, ErrKeyFormat) {
		t.Fatalf("ParseKey(%d bytes) error = %v, want ErrKeyFormat", len(big), err)
	}
	if _, err := ParseKey(padKeyFile(t, valid, MaxKeyFileSize)); err != nil {
		t.Fatalf("ParseKey(%d bytes) error = %v, want nil", MaxKeyFileSize, err)
	}
}
