package mycelium

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mycelium-net/mycelium/internal/echo"
	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

// newTestNode starts a node on loopback and closes it at cleanup.
func newTestNode(t testing.TB, mutate ...func(*Config)) *Node {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Key = key
	cfg.ListenAddr = "127.0.0.1:0"
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// serveEcho echoes every stream on l until l closes (at cleanup).
func serveEcho(t testing.TB, l net.Listener) {
	t.Helper()
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() { echo.Serve(l); close(done) }()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echoRoundTrip sends size random bytes through c, half-closes, and checks
// the echo.
func echoRoundTrip(t testing.TB, c net.Conn, size int) {
	t.Helper()
	if err := echo.RoundTrip(c, size); err != nil {
		t.Fatal(err)
	}
}

func TestDialEcho(t *testing.T) {
	leakcheck.Check(t)
	a := newTestNode(t)
	b := newTestNode(t)
	l, err := b.Listen("echo")
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	if err := a.AddPeerAddr(b.ID(), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	c, err := a.Dial(ctxT(t), b.ID(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoRoundTrip(t, c, 1<<20)
	if got := c.RemoteAddr().String(); got != b.ID().String()+"/echo" {
		t.Errorf("RemoteAddr = %q", got)
	}

	// The second stream reuses the connection, from either side.
	c2, err := a.Dial(ctxT(t), b.ID(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, c2, 1000)
	c2.Close()
	st := a.Stats()
	if len(st.Peers) != 1 || st.Peers[0].ID != b.ID() || st.Peers[0].Path != "direct" || !st.Peers[0].Outbound {
		t.Fatalf("a's peers = %+v, want one outbound direct peer b", st.Peers)
	}
	if st.Counters.ConnsOut != 1 || st.Counters.StreamsOut != 2 {
		t.Fatalf("counters = %+v, want 1 connection and 2 streams", st.Counters)
	}
	if bs := b.Stats(); bs.Counters.ConnsIn != 1 || bs.Counters.StreamsIn != 2 || len(bs.Services) != 1 {
		t.Fatalf("b's stats = %+v", bs)
	}
}

func TestDialIdentityMismatch(t *testing.T) {
	leakcheck.Check(t)
	a := newTestNode(t)
	b := newTestNode(t)
	l, _ := b.Listen("echo")
	var accepted sync.WaitGroup
	accepted.Add(1)
	got := make(chan net.Conn, 1)
	go func() {
		defer accepted.Done()
		if c, err := l.Accept(); err == nil {
			got <- c
		}
	}()
	other, _ := GenerateKey()
	a.AddPeerAddr(other.ID(), b.LocalAddr())
	_, err := a.Dial(ctxT(t), other.ID(), "echo")
	if !errors.Is(err, ErrIdentityMismatch) {
		t.Fatalf("err = %v, want ErrIdentityMismatch", err)
	}
	l.Close()
	accepted.Wait()
	if len(got) != 0 {
		t.Fatal("b accepted a stream from a dial that failed authentication")
	}
	if n := b.Stats().Counters.StreamsIn; n != 0 {
		t.Fatalf("b saw %d streams", n)
	}
}

func TestDialUnknownService(t *testing.T) {
	leakcheck.Check(t)
	a := newTestNode(t)
	b := newTestNode(t)
	a.AddPeerAddr(b.ID(), b.LocalAddr())
	_, err := a.Dial(ctxT(t), b.ID(), "nope")
	if !errors.Is(err, ErrUnknownService) {
		t.Fatalf("err = %v, want ErrUnknownService", err)
	}
	if n := b.Stats().Counters.StreamsRefused; n != 1 {
		t.Fatalf("b refused %d streams, want 1", n)
	}
}

func TestDialBadInput(t *testing.T) {
	leakcheck.Check(t)
	a := newTestNode(t)
	other, _ := GenerateKey()
	tests := []struct {
		name    string
		id      NodeID
		service string
		want    error
	}{
		{"bad_service_name", other.ID(), "Bad Name", ErrBadServiceName},
		{"empty_service_name", other.ID(), "", ErrBadServiceName},
		{"self", a.ID(), "echo", ErrSelf},
		{"no_address", other.ID(), "echo", ErrNoAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := a.Dial(ctxT(t), tt.id, tt.service); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDialUnreachableIsBounded(t *testing.T) {
	leakcheck.Check(t)
	a := newTestNode(t, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	// A bound UDP socket that never answers.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	other, _ := GenerateKey()
	a.AddPeerAddr(other.ID(), silent.LocalAddr())
	_, err = a.Dial(context.Background(), other.ID(), "echo")
	if err == nil {
		t.Fatal("dial to a silent address succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Dial(ctx, other.ID(), "echo"); !errors.Is(err, context.Canceled) {
		t.Fatalf("dial with a cancelled context: err = %v, want context.Canceled", err)
	}
	if a.Stats().Counters.DialsFailed == 0 {
		t.Fatal("failed dial not counted")
	}
}

func TestListenErrors(t *testing.T) {
	leakcheck.Check(t)
	a := newTestNode(t)
	l, err := a.Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Listen("svc"); !errors.Is(err, ErrServiceInUse) {
		t.Fatalf("second Listen: err = %v, want ErrServiceInUse", err)
	}
	if _, err := a.Listen("no/slash"); !errors.Is(err, ErrBadServiceName) {
		t.Fatalf("bad name: err = %v", err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: err = %v, want net.ErrClosed", err)
	}
	if _, err := a.Listen("svc"); err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	leakcheck.Check(t)
	a := newTestNode(t)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Dial(context.Background(), a.ID(), "x"); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
	other, _ := GenerateKey()
	if _, err := a.Dial(context.Background(), other.ID(), "x"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial after Close: err = %v, want net.ErrClosed", err)
	}
}
