package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the real binary as separate processes, as a user would.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mycelium-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mycelium")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shortTempDir is a temp dir with a short path: unix socket paths are
// limited to 108 bytes.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "myc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

type result struct {
	stdout, stderr string
	code           int
}

// cli runs one command to completion.
func cli(t *testing.T, home string, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "MYCELIUM_HOME="+home, "MYCELIUM_CONTROL=", "GORACE=atexit_sleep_ms=0")
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

type nodeProc struct {
	cmd     *exec.Cmd
	id      string
	listen  string
	control string
	done    chan error
	stderr  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var readyLine = regexp.MustCompile(`msg=ready id=(\S+) listen=(\S+) control=(\S+)`)

// startNode runs `mycelium node` and waits for its "ready" log line.
func startNode(t *testing.T, home string, extra ...string) *nodeProc {
	t.Helper()
	return startRole(t, "node", home, extra...)
}

// startRole runs `mycelium ROLE` (node or relay) and waits for its "ready"
// log line.
func startRole(t *testing.T, role, home string, extra ...string) *nodeProc {
	t.Helper()
	ctl := "unix:" + filepath.Join(home, "control.sock")
	args := append([]string{role, "--listen", "127.0.0.1:0", "--control", ctl, "--key", filepath.Join(home, "node.key")}, extra...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "MYCELIUM_HOME="+home, "MYCELIUM_CONTROL=", "GORACE=atexit_sleep_ms=0")
	pr, pw := io.Pipe()
	logs := &lockedBuffer{}
	cmd.Stderr = io.MultiWriter(pw, logs)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{cmd: cmd, control: ctl, done: make(chan error, 1), stderr: logs}
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("node %s log:\n%s", home, logs.String())
		}
	})
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case m := <-ready:
		p.id, p.listen = m[1], m[2]
	case err := <-p.done:
		t.Fatalf("node exited before ready: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("node not ready after 60s:\n%s", logs.String())
	}
	return p
}

// stop sends SIGTERM and checks a clean exit.
func (p *nodeProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		t.Errorf("node exit after SIGTERM: %v\n%s", err, p.stderr.String())
	}
	p.done <- nil // for the cleanup
}

// tcpEcho runs a TCP echo server on loopback and counts its connections.
func tcpEcho(t *testing.T) (addr string, conns func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestKeygenAndID(t *testing.T) {
	home := shortTempDir(t)
	keyPath := filepath.Join(home, "k.key")
	r := cli(t, home, nil, "keygen", "--out", keyPath)
	if r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	id := strings.TrimSpace(r.stdout)
	if len(id) != 52 {
		t.Fatalf("keygen printed %q, want a 52-character ID", id)
	}
	st, _ := os.Stat(keyPath)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(keyPath)
	r = cli(t, home, nil, "keygen", "--out", keyPath)
	after, _ := os.ReadFile(keyPath)
	if r.code != 1 || !strings.Contains(r.stderr, "refusing to overwrite") || !bytes.Equal(before, after) {
		t.Fatalf("second keygen: %+v (file changed: %v)", r, !bytes.Equal(before, after))
	}
	if r := cli(t, home, nil, "id", "--key", keyPath); r.code != 0 || strings.TrimSpace(r.stdout) != id {
		t.Fatalf("id: %+v, want %s", r, id)
	}
	// The ID is accepted back in any case.
	if r := cli(t, home, nil, "dial", "--control", "unix:"+filepath.Join(home, "none.sock"), strings.ToUpper(id)+"/echo"); !strings.Contains(r.stderr, "no node is running") {
		t.Fatalf("dial with an upper-case ID: %+v, want it parsed and then 'no node is running'", r)
	}

	bad := map[string]struct {
		content []byte
		mode    os.FileMode
		want    string
	}{
		"world_readable": {before, 0o644, "permissions too open"},
		"garbage":        {[]byte("not a key\n"), 0o600, "not a mycelium key"},
		"empty":          {nil, 0o600, "not a mycelium key"},
		"oversized":      {bytes.Repeat([]byte{'A'}, 5000), 0o600, "not a mycelium key"},
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(home, name+".key")
			os.WriteFile(p, b.content, b.mode)
			os.Chmod(p, b.mode)
			r := cli(t, home, nil, "id", "--key", p)
			if r.code != 1 || !strings.Contains(r.stderr, b.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Fatalf("id on %s key: %+v, want exit 1 and one line with %q", name, r, b.want)
			}
			// `node` refuses it too, and leaves the file alone.
			r = cli(t, home, nil, "node", "--key", p, "--listen", "127.0.0.1:0", "--control", "unix:"+filepath.Join(home, name+".sock"))
			got, _ := os.ReadFile(p)
			if r.code != 1 || !strings.Contains(r.stderr, b.want) || !bytes.Equal(got, b.content) {
				t.Fatalf("node with %s key: %+v (file changed: %v)", name, r, !bytes.Equal(got, b.content))
			}
		})
	}
}

func TestTwoNodesExposeDialForward(t *testing.T) {
	homeA, homeB := shortTempDir(t), shortTempDir(t)
	a := startRole(t, "relay", homeA)
	b := startNode(t, homeB, "--bootstrap", a.id+"@"+a.listen)
	echoAddr, echoConns := tcpEcho(t)

	if r := cli(t, homeA, nil, "expose", "--control", a.control, "echo", echoAddr); r.code != 0 {
		t.Fatalf("expose: %+v", r)
	}

	t.Run("dial_1MiB", func(t *testing.T) {
		payload := randomBytes(1 << 20)
		r := cli(t, homeB, bytes.NewReader(payload), "dial", "--control", b.control, a.id+"/echo")
		if r.code != 0 {
			t.Fatalf("dial: code %d, stderr %q", r.code, r.stderr)
		}
		if !bytes.Equal([]byte(r.stdout), payload) {
			t.Fatalf("dial echoed %d bytes, differing from the %d sent", len(r.stdout), len(payload))
		}
	})

	t.Run("forward_1MiB", func(t *testing.T) {
		r := cli(t, homeB, nil, "forward", "--control", b.control, "127.0.0.1:0", a.id+"/echo")
		m := regexp.MustCompile(`forwarding (\S+) ->`).FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("forward: %+v", r)
		}
		c, err := net.Dial("tcp", m[1])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		payload := randomBytes(1 << 20)
		go func() {
			c.Write(payload)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("forward echoed %d bytes (err %v), want the %d sent", len(got), err, len(payload))
		}
	})

	t.Run("status_json", func(t *testing.T) {
		r := cli(t, homeB, nil, "status", "--json", "--control", b.control)
		var st map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, r.stdout)
		}
		if st["id"] != b.id {
			t.Fatalf("id = %v, want %s", st["id"], b.id)
		}
		if l, _ := st["listen"].([]any); len(l) != 1 || l[0] != b.listen {
			t.Fatalf("listen = %v, want [%s]", st["listen"], b.listen)
		}
		peers, _ := st["peers"].([]any)
		if len(peers) != 1 {
			t.Fatalf("peers = %v, want one", st["peers"])
		}
		p := peers[0].(map[string]any)
		for _, k := range []string{"id", "path", "addr", "rtt_ms"} {
			if _, ok := p[k]; !ok {
				t.Errorf("peer lacks key %q: %v", k, p)
			}
		}
		if p["id"] != a.id || p["path"] != "direct" || p["addr"] != a.listen {
			t.Fatalf("peer = %v, want a at %s over direct", p, a.listen)
		}
		if r := cli(t, homeB, nil, "status", "--control", b.control); r.code != 0 || !strings.Contains(r.stdout, a.id) {
			t.Fatalf("status: %+v", r)
		}
		if st["role"] != "node" {
			t.Fatalf("b's role = %v, want node", st["role"])
		}
		r = cli(t, homeA, nil, "status", "--json", "--control", a.control)
		var sa map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &sa); err != nil || sa["role"] != "relay" {
			t.Fatalf("a (started with `mycelium relay`) reports role %v (%v), want relay", sa["role"], err)
		}
	})

	t.Run("identity_mismatch", func(t *testing.T) {
		keyPath := filepath.Join(homeB, "other.key")
		r := cli(t, homeB, nil, "keygen", "--out", keyPath)
		other := strings.TrimSpace(r.stdout)
		before := echoConns()
		r = cli(t, homeB, strings.NewReader("secret"), "dial", "--control", b.control, other+"@"+a.listen+"/echo")
		if r.code != 1 || !strings.Contains(r.stderr, "identity mismatch") || r.stdout != "" {
			t.Fatalf("dial wrong ID: %+v, want exit 1 and an identity mismatch", r)
		}
		if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Fatalf("error is not one line: %q", r.stderr)
		}
		if echoConns() != before {
			t.Fatal("the echo server saw a connection from a dial that failed authentication")
		}
	})

	t.Run("bad_input", func(t *testing.T) {
		silent, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		tests := []struct {
			name string
			args []string
			code int
			want string
		}{
			{"malformed_id", []string{"dial", "--control", b.control, "not-an-id/echo"}, 1, "malformed node ID"},
			{"short_id", []string{"dial", "--control", b.control, a.id[:20]}, 1, "malformed node ID"},
			{"bad_service", []string{"dial", "--control", b.control, a.id + "/Bad!"}, 1, "bad service name"},
			{"unknown_service", []string{"dial", "--control", b.control, a.id + "/nope"}, 1, "unknown service"},
			{"unreachable", []string{"dial", "--control", b.control, "--timeout", "1s", mustKeygen(t, homeB) + "@" + silent.LocalAddr().String() + "/echo"}, 1, "deadline exceeded"},
			{"no_address", []string{"dial", "--control", b.control, mustKeygen(t, homeB) + "/echo"}, 1, "no known address"},
			{"bad_bootstrap", []string{"node", "--bootstrap", "xyz@1.2.3.4:5"}, 1, "malformed node ID"},
			{"bad_control_addr", []string{"status", "--control", "10.1.2.3:80"}, 1, "must be on loopback"},
			{"unknown_flag", []string{"status", "--nope"}, 2, "flag provided but not defined"},
			{"extra_args", []string{"status", "x"}, 2, "too many arguments"},
			{"unknown_command", []string{"frobnicate"}, 2, "unknown command"},
			{"expose_bad_target", []string{"expose", "--control", a.control, "svc", "nocolon"}, 1, "not HOST:PORT"},
			{"expose_twice", []string{"expose", "--control", a.control, "echo", echoAddr}, 1, "already exposed"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := cli(t, homeB, strings.NewReader(""), tt.args...)
				if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
					t.Fatalf("%v: code %d stderr %q, want code %d and %q", tt.args, r.code, r.stderr, tt.code, tt.want)
				}
			})
		}
	})

	t.Run("expose_target_down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close() // nothing listens there now
		if r := cli(t, homeA, nil, "expose", "--control", a.control, "dead", dead); r.code != 0 {
			t.Fatalf("expose: %+v", r)
		}
		r := cli(t, homeB, strings.NewReader("hello"), "dial", "--control", b.control, a.id+"/dead")
		if r.code != 1 || !strings.Contains(r.stderr, "stream reset") {
			t.Fatalf("dial to an exposed service whose target is down: %+v, want exit 1 and a stream reset", r)
		}
	})

	t.Run("control_bad_json", func(t *testing.T) {
		path := strings.TrimPrefix(b.control, "unix:")
		for _, body := range []string{"{not json", `{"service": 5}`, `{"service":"x","target":"1:2","extra":1}`, strings.Repeat("x", 100<<10)} {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /v1/expose HTTP/1.1\r\nHost: mycelium\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
			resp, _ := io.ReadAll(c)
			c.Close()
			if !bytes.HasPrefix(resp, []byte("HTTP/1.1 400")) || !bytes.Contains(resp, []byte(`"code": "bad_request"`)) {
				t.Fatalf("bad body %.20q: answer %q", body, resp)
			}
		}
		// The node still answers afterwards.
		if r := cli(t, homeB, nil, "status", "--control", b.control); r.code != 0 {
			t.Fatalf("status after bad requests: %+v", r)
		}
	})

	t.Run("control_browser_requests", func(t *testing.T) {
		// What a web page could make a browser send to a control API on
		// loopback TCP, here over the socket: refused before it acts.
		path := strings.TrimPrefix(b.control, "unix:")
		body := `{"service":"web","target":"127.0.0.1:1"}`
		for _, tt := range []struct{ headers, want string }{
			{"Host: mycelium\r\nContent-Type: application/json\r\nOrigin: http://evil.example\r\n", "HTTP/1.1 403"},
			{"Host: evil.example:8080\r\nContent-Type: application/json\r\n", "HTTP/1.1 403"},
			{"Host: 127.0.0.1:8080\r\nContent-Type: text/plain\r\n", "HTTP/1.1 415"},
		} {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /v1/expose HTTP/1.1\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s", tt.headers, len(body), body)
			resp, _ := io.ReadAll(c)
			c.Close()
			if !bytes.HasPrefix(resp, []byte(tt.want)) {
				t.Fatalf("request with %q: answer %q, want %s", tt.headers, resp, tt.want)
			}
		}
		r := cli(t, homeB, nil, "status", "--json", "--control", b.control)
		if r.code != 0 || strings.Contains(r.stdout, `"web"`) {
			t.Fatalf("status after refused requests: %+v", r)
		}
	})

	t.Run("forward_remove_by_name", func(t *testing.T) {
		r := cli(t, homeB, nil, "forward", "--control", b.control, "localhost:0", a.id+"/echo")
		m := regexp.MustCompile(`forwarding (\S+) ->`).FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil {
			t.Fatalf("forward: %+v", r)
		}
		bound := m[1]
		_, port, _ := net.SplitHostPort(bound)
		r = cli(t, homeB, nil, "forward", "--control", b.control, "--remove", "localhost:"+port)
		if r.code != 0 || !strings.Contains(r.stdout, "stopped forwarding "+bound) {
			t.Fatalf("forward --remove localhost:%s (bound %s): %+v", port, bound, r)
		}
		r = cli(t, homeB, nil, "status", "--json", "--control", b.control)
		if r.code != 0 || strings.Contains(r.stdout, bound) {
			t.Fatalf("forward on %s still listed after remove: %+v", bound, r)
		}
		if c, err := net.Dial("tcp", bound); err == nil {
			c.Close()
			t.Fatalf("%s still accepts connections after remove", bound)
		}
	})

	t.Run("dial_interrupted", func(t *testing.T) {
		cmd := exec.Command(binary, "dial", "--control", b.control, a.id+"/echo")
		cmd.Env = append(os.Environ(), "MYCELIUM_HOME="+homeB, "MYCELIUM_CONTROL=", "GORACE=atexit_sleep_ms=0")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		// The stream is up once a line comes back through the echo.
		io.WriteString(stdin, "ping\n")
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || line != "ping\n" {
			t.Fatalf("echo through dial: %q, %v (stderr %q)", line, err, stderr.String())
		}
		cmd.Process.Signal(os.Interrupt) // stdin still open, as on a terminal
		err = cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 130 || stderr.String() != "" {
			t.Fatalf("dial after SIGINT: exit %d (%v), stderr %q; want 130 and nothing", code, err, stderr.String())
		}
	})

	t.Run("expose_remove", func(t *testing.T) {
		if r := cli(t, homeA, nil, "expose", "--control", a.control, "--remove", "echo"); r.code != 0 {
			t.Fatalf("expose --remove: %+v", r)
		}
		r := cli(t, homeB, strings.NewReader("x"), "dial", "--control", b.control, a.id+"/echo")
		if r.code != 1 || !strings.Contains(r.stderr, "unknown service") {
			t.Fatalf("dial after remove: %+v", r)
		}
	})

	b.stop(t)
	a.stop(t)
}

func mustKeygen(t *testing.T, home string) string {
	t.Helper()
	k, err := os.CreateTemp(home, "*.key")
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	os.Remove(k.Name())
	r := cli(t, home, nil, "keygen", "--out", k.Name())
	if r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	return strings.TrimSpace(r.stdout)
}

func TestHelpOnEveryCommand(t *testing.T) {
	home := shortTempDir(t)
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			r := cli(t, home, nil, c.name, "--help")
			if r.code != 0 || !strings.Contains(r.stdout, "Usage: mycelium "+c.name) {
				t.Fatalf("%s --help: %+v", c.name, r)
			}
		})
	}
	if r := cli(t, home, nil, "--help"); r.code != 0 || !strings.Contains(r.stdout, "Commands:") {
		t.Fatalf("--help: %+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	home := shortTempDir(t)
	r := cli(t, home, nil, "status", "--bogus")
	want := "mycelium status: flag provided but not defined: -bogus\nrun 'mycelium status --help' for usage\n"
	if r.code != 2 || r.stdout != "" || r.stderr != want {
		t.Fatalf("status --bogus: code %d, stdout %q, stderr %q; want 2, nothing, %q", r.code, r.stdout, r.stderr, want)
	}
	r = cli(t, home, nil, "dial", "--timeout", "soon", "x")
	if r.code != 2 || r.stdout != "" || strings.Count(r.stderr, "\n") != 2 || !strings.HasPrefix(r.stderr, "mycelium dial: invalid value \"soon\" for flag -timeout") {
		t.Fatalf("dial --timeout soon: %+v, want exit 2 and two lines on stderr", r)
	}
	r = cli(t, home, nil)
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "Commands:") {
		t.Fatalf("no arguments: %+v, want exit 2 and the usage on stderr", r)
	}
	r = cli(t, home, nil, "status", "-h")
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage: mycelium status") || !strings.Contains(r.stdout, "-json") {
		t.Fatalf("status -h: %+v, want exit 0 and the usage with flags on stdout", r)
	}
}

func TestConfigFile(t *testing.T) {
	home := shortTempDir(t)
	// Should the config be taken, the node still fails at once, on its key.
	badKey := filepath.Join(home, "bad.key")
	if err := os.WriteFile(badKey, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct{ content, want string }{
		"unknown_key":   {`{"lissten": "x"}`, `"lissten"`},
		"trailing_data": {`{"listen": "127.0.0.1:0"} {"relay": true}`, "data after the JSON object"},
		"trailing_junk": {`{"listen": "127.0.0.1:0"} x`, "data after the JSON object"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(home, name+".json")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			r := cli(t, home, nil, "node", "--config", p, "--key", badKey, "--control", "unix:"+filepath.Join(home, "c.sock"))
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, "ready") {
				t.Fatalf("node --config with %s: %+v, want exit 1 and %q", tt.content, r, tt.want)
			}
		})
	}
}

// TestBadPunchTTL: a TTL out of range, by flag or config file, stops the
// node before it starts, saying which setting is wrong.
func TestBadPunchTTL(t *testing.T) {
	home := shortTempDir(t)
	cfg := filepath.Join(home, "ttl.json")
	if err := os.WriteFile(cfg, []byte(`{"punch_ttl": 300}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"flag":   {"--punch-ttl", "-1"},
		"config": {"--config", cfg},
	} {
		t.Run(name, func(t *testing.T) {
			r := cli(t, home, nil, append([]string{"node", "--key", filepath.Join(home, name+".key"), "--listen", "127.0.0.1:0",
				"--control", "unix:" + filepath.Join(home, name+".sock")}, args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, "PunchTTL must be 0 (no openers) to 255") || strings.Contains(r.stderr, "ready") {
				t.Fatalf("node %v: %+v, want exit 1 naming PunchTTL", args, r)
			}
		})
	}
}

// TestControlPathNotReplaced: --control pointing at a file that is not a
// socket (here the node's own key) fails and leaves the file alone.
func TestControlPathNotReplaced(t *testing.T) {
	home := shortTempDir(t)
	key := filepath.Join(home, "node.key")
	if r := cli(t, home, nil, "keygen", "--out", key); r.code != 0 {
		t.Fatalf("keygen: %+v", r)
	}
	before, _ := os.ReadFile(key)
	// Should the control socket replace the key, the node still stops at
	// once: it cannot bind a TEST-NET address.
	r := cli(t, home, nil, "node", "--key", key, "--listen", "192.0.2.1:4242", "--control", "unix:"+key)
	after, err := os.ReadFile(key)
	if r.code != 1 || !strings.Contains(r.stderr, key) || err != nil || !bytes.Equal(before, after) {
		t.Fatalf("node --control unix:KEYFILE: %+v (key intact: %v, %v)", r, bytes.Equal(before, after), err)
	}
}

func TestDemo(t *testing.T) {
	home := shortTempDir(t)
	r := cli(t, home, nil, "demo", "--json", "--bytes", "65536")
	if r.code != 0 {
		t.Fatalf("demo: %+v", r)
	}
	var rep struct {
		OK        bool
		Transfers []struct{ OK bool }
		Checks    []struct {
			Name string
			OK   bool
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range rep.Checks {
		names = append(names, c.Name)
	}
	want := []string{"identity_mismatch", "unknown_service", "simultaneous_dial", "broadcast", "registry", "behind_nats", "nat_classification", "hole_punch", "circuit", "relay_drain", "path_change"}
	if !rep.OK || len(rep.Transfers) != 3 || !slices.Equal(names, want) {
		t.Fatalf("demo report: %+v, want checks %v", rep, want)
	}
}
