package mycelium

// Benchmarks of a mycelium connection against raw quic-go on loopback, for
// `make bench`. Each iteration runs the same operation once on mycelium and
// once on quic-go, alternating which goes first, so machine load falls on
// both alike. Each operation is timed on its own with time.Now, and the
// results are reported as metrics; the ratio (mycelium / quic-go) is the
// number to read. Goal: throughput ratio >= 0.9, dial ratio <= 1.1.
// Throughput is total bytes over total time; dial times are medians. The
// ratios are noisy at small iteration counts on a busy machine (-benchtime
// 20x moved the dial ratio by +-0.25 on a shared 2-CPU box); a few hundred
// iterations give a stable dial ratio.
//
// The raw side runs with the quic.Config and connection ID length that
// transport.Open gives a node with DefaultConfig, on a plain UDP socket. It
// uses an Ed25519 certificate like a node's, but ordinary server-only TLS:
// no client certificate and no key pinning, which is what a plain quic-go
// application does.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycelium-net/mycelium/internal/transport"
)

const (
	benchChunk   = 4 << 20          // bytes per stream in the throughput benchmark
	benchTimeout = 10 * time.Second // bound on one benchmark operation
	benchALPN    = "bench"
)

// benchStream is what the benchmarks need of a stream; a mycelium stream
// (streamConn) has it, a quic-go stream gets it from rawStream.
type benchStream interface {
	io.ReadWriteCloser
	CloseWrite() error
	SetDeadline(time.Time) error
}

// rawStream gives a quic-go stream mycelium's half-close names.
type rawStream struct{ *quic.Stream }

func (s rawStream) CloseWrite() error { return s.Stream.Close() } // FIN
func (s rawStream) Close() error      { s.CancelRead(0); return nil }

// benchQUICConfig is the quic.Config transport.Open builds for a node with
// DefaultConfig.
func benchQUICConfig() *quic.Config {
	c := DefaultConfig()
	return &quic.Config{
		HandshakeIdleTimeout:  c.HandshakeTimeout,
		MaxIdleTimeout:        c.IdleTimeout,
		KeepAlivePeriod:       c.KeepAlive,
		MaxIncomingStreams:    c.Resources.MaxStreamsPerPeer,
		MaxIncomingUniStreams: -1,
		EnableDatagrams:       true,
	}
}

// benchQUICTransport opens a plain loopback UDP socket under a
// quic.Transport with a node's connection ID length, and listens on it (as
// every node does, which also initialises the transport outside the timed
// part). Close it with closeQUICTransport.
func benchQUICTransport(tb testing.TB, serverTLS *tls.Config) (*quic.Transport, *quic.Listener) {
	tb.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp, ConnectionIDLength: transport.ConnectionIDLength}
	ln, err := tr.Listen(serverTLS, benchQUICConfig())
	if err != nil {
		udp.Close()
		tb.Fatal(err)
	}
	return tr, ln
}

// closeQUICTransport closes tr and the socket it was given.
func closeQUICTransport(tr *quic.Transport) {
	tr.Close()
	tr.Conn.Close() // quic.Transport does not close a socket it was handed
}

var benchTLS = sync.OnceValues(func() (server, client *tls.Config) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		panic(err)
	}
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
		NextProtos:   []string{benchALPN},
	}
	client = &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{benchALPN},
		InsecureSkipVerify: true,
	}
	return server, client
})

// benchMutualTLS is benchTLS with a client certificate required, as every
// mycelium connection has: the like-for-like baseline for an authenticated
// peer-to-peer link.
var benchMutualTLS = sync.OnceValues(func() (server, client *tls.Config) {
	s, c := benchTLS()
	server, client = s.Clone(), c.Clone()
	server.ClientAuth = tls.RequireAnyClientCert
	client.Certificates = s.Certificates
	return server, client
})

// startRawServer runs a quic-go server on loopback that hands every inbound
// stream to handle, and returns its address.
func startRawServer(tb testing.TB, handle func(benchStream)) net.Addr {
	tb.Helper()
	serverTLS, _ := benchTLS()
	return startRawServerTLS(tb, handle, serverTLS)
}

// startRawServerTLS is startRawServer with the given server TLS config.
func startRawServerTLS(tb testing.TB, handle func(benchStream), serverTLS *tls.Config) net.Addr {
	tb.Helper()
	tr, ln := benchQUICTransport(tb, serverTLS)
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); closeQUICTransport(tr); wg.Wait() })
	wg.Go(func() {
		for {
			qc, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				for {
					s, err := qc.AcceptStream(context.Background())
					if err != nil {
						return
					}
					wg.Go(func() { handle(rawStream{s}) })
				}
			})
		}
	})
	return tr.Conn.LocalAddr()
}

// serveBench hands every stream accepted on l to handle until l closes.
func serveBench(tb testing.TB, l net.Listener, handle func(benchStream)) {
	tb.Helper()
	var wg sync.WaitGroup
	tb.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { handle(c.(benchStream)) })
		}
	})
}

// benchSink reads a stream to EOF, reports the byte count on counts, and
// acks with one byte.
func benchSink(counts chan<- int64) func(benchStream) {
	return func(s benchStream) {
		defer s.Close()
		n, _ := io.Copy(io.Discard, s)
		counts <- n
		s.Write([]byte{1})
		s.CloseWrite()
	}
}

// benchEcho echoes a stream back until EOF.
func benchEcho(s benchStream) {
	defer s.Close()
	io.Copy(s, s)
	s.CloseWrite()
}

// timeTransfer opens a stream, writes data, half-closes, and waits for the
// sink's ack. It returns the time from open to ack and fails tb if the sink
// did not receive exactly len(data) bytes.
func timeTransfer(tb testing.TB, name string, open func(context.Context) (benchStream, error), data []byte, counts <-chan int64) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	start := time.Now()
	s, err := open(ctx)
	if err != nil {
		tb.Fatalf("%s: open stream: %v", name, err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(benchTimeout))
	if _, err := s.Write(data); err != nil {
		tb.Fatalf("%s: write: %v", name, err)
	}
	if err := s.CloseWrite(); err != nil {
		tb.Fatalf("%s: close write: %v", name, err)
	}
	ack, err := io.ReadAll(s)
	d := time.Since(start)
	if err != nil || !bytes.Equal(ack, []byte{1}) {
		tb.Fatalf("%s: ack = %v, %v; want one byte 1", name, ack, err)
	}
	if n := <-counts; n != int64(len(data)) {
		tb.Fatalf("%s: sink received %d bytes, sent %d", name, n, len(data))
	}
	return d
}

// timeDialEcho dials a stream, writes one byte, reads its echo, and returns
// the time taken. It closes the stream; the caller closes the connection.
func timeDialEcho(tb testing.TB, name string, dial func(context.Context) (benchStream, error)) time.Duration {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	var b [1]byte
	start := time.Now()
	s, err := dial(ctx)
	if err != nil {
		tb.Fatalf("%s: dial: %v", name, err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(benchTimeout))
	if _, err := s.Write([]byte{42}); err != nil {
		tb.Fatalf("%s: write: %v", name, err)
	}
	_, err = io.ReadFull(s, b[:])
	d := time.Since(start)
	if err != nil || b[0] != 42 {
		tb.Fatalf("%s: echo = %d, %v; want 42", name, b[0], err)
	}
	return d
}

// alternate runs fs in an order rotated by i, so none always goes first.
func alternate(i int, fs ...func()) {
	for j := range fs {
		fs[(i+j)%len(fs)]()
	}
}

// median returns the median of ds, which must not be empty.
func median(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	if n := len(ds); n%2 == 0 {
		return (ds[n/2-1] + ds[n/2]) / 2
	}
	return ds[len(ds)/2]
}

// rawSinkConn starts a raw quic-go sink server and an established
// connection to it; open opens a stream on that connection, and the sink
// reports each stream's byte count on counts.
func rawSinkConn(b *testing.B) (open func(context.Context) (benchStream, error), counts chan int64) {
	b.Helper()
	counts = make(chan int64, 1)
	addr := startRawServer(b, benchSink(counts))
	serverTLS, clientTLS := benchTLS()
	tr, _ := benchQUICTransport(b, serverTLS)
	b.Cleanup(func() { closeQUICTransport(tr) })
	qc, err := tr.Dial(ctxT(b), addr, clientTLS, benchQUICConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { qc.CloseWithError(0, "") })
	return func(ctx context.Context) (benchStream, error) {
		s, err := qc.OpenStreamSync(ctx)
		if err != nil {
			return nil, err
		}
		return rawStream{s}, nil
	}, counts
}

// BenchmarkThroughputVsQUIC sends benchChunk bytes over a new stream on an
// established mycelium connection and on an established raw quic-go
// connection, each iteration. Timing runs from opening the stream (for
// mycelium, Dial with its service-header round trip) to the sink's ack
// after the FIN.
//
// It does not call b.SetBytes: an op moves the chunk twice, once per
// system, so the MB/s Go would print is neither system's throughput, and
// ns/op is the sum of the two transfers. Read myc_MB/s, quic_MB/s, ratio.
func BenchmarkThroughputVsQUIC(b *testing.B) {
	data := make([]byte, benchChunk)
	rand.Read(data)

	// mycelium: a dials, s sinks.
	a := newTestNode(b)
	s := newTestNode(b)
	l, err := s.Listen("sink")
	if err != nil {
		b.Fatal(err)
	}
	mycCounts := make(chan int64, 1)
	serveBench(b, l, benchSink(mycCounts))
	if err := a.Connect(ctxT(b), s.ID(), s.LocalAddr()); err != nil {
		b.Fatal(err)
	}
	mycOpen := func(ctx context.Context) (benchStream, error) {
		c, err := a.Dial(ctx, s.ID(), "sink")
		if err != nil {
			return nil, err
		}
		return c.(benchStream), nil
	}

	rawOpen, rawCounts := rawSinkConn(b)

	// One untimed transfer each, out of slow start.
	timeTransfer(b, "mycelium", mycOpen, data, mycCounts)
	timeTransfer(b, "quic-go", rawOpen, data, rawCounts)

	var myc, raw time.Duration
	n := 0
	for ; b.Loop(); n++ {
		alternate(n,
			func() { myc += timeTransfer(b, "mycelium", mycOpen, data, mycCounts) },
			func() { raw += timeTransfer(b, "quic-go", rawOpen, data, rawCounts) })
	}
	mbps := func(d time.Duration) float64 { return float64(n) * benchChunk / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(myc), "myc_MB/s")
	b.ReportMetric(mbps(raw), "quic_MB/s")
	b.ReportMetric(mbps(myc)/mbps(raw), "ratio")
}

// BenchmarkDialVsQUIC measures connection setup to a usable stream: from a
// dialer with no connection to the target until a one-byte echo returns.
// For mycelium that is Node.Dial (handshake, then the service header and its
// status byte) and the echo; for quic-go, Transport.Dial, OpenStreamSync and
// the echo. Every iteration uses a fresh dialer (a new node; a new socket
// and quic.Transport) made and closed with the timer stopped, so ns/op is
// roughly the sum of the two (mean) dials. Read myc_dial_us, quic_dial_us
// (medians) and their ratio.
func BenchmarkDialVsQUIC(b *testing.B) {
	target := newTestNode(b)
	l, err := target.Listen("echo")
	if err != nil {
		b.Fatal(err)
	}
	serveEcho(b, l)
	addr := startRawServer(b, benchEcho)
	mutualAddr := startRawServerTLS(b, benchEcho, func() *tls.Config { s, _ := benchMutualTLS(); return s }())
	serverTLS, clientTLS := benchTLS()
	_, mutualClientTLS := benchMutualTLS()
	qconf := benchQUICConfig()

	var myc, raw, mutual []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		a := newTestNode(b)
		if err := a.AddPeerAddr(target.ID(), target.LocalAddr()); err != nil {
			b.Fatal(err)
		}
		tr, _ := benchQUICTransport(b, serverTLS)
		trM, _ := benchQUICTransport(b, serverTLS)
		var qc, qcM *quic.Conn
		b.StartTimer()

		alternate(i,
			func() {
				myc = append(myc, timeDialEcho(b, "mycelium", func(ctx context.Context) (benchStream, error) {
					c, err := a.Dial(ctx, target.ID(), "echo")
					if err != nil {
						return nil, err
					}
					return c.(benchStream), nil
				}))
			},
			func() {
				raw = append(raw, timeDialEcho(b, "quic-go", func(ctx context.Context) (benchStream, error) {
					var err error
					qc, err = tr.Dial(ctx, addr, clientTLS, qconf)
					if err != nil {
						return nil, err
					}
					s, err := qc.OpenStreamSync(ctx)
					if err != nil {
						return nil, err
					}
					return rawStream{s}, nil
				}))
			},
			func() {
				mutual = append(mutual, timeDialEcho(b, "quic-go mutual TLS", func(ctx context.Context) (benchStream, error) {
					var err error
					qcM, err = trM.Dial(ctx, mutualAddr, mutualClientTLS, qconf)
					if err != nil {
						return nil, err
					}
					s, err := qcM.OpenStreamSync(ctx)
					if err != nil {
						return nil, err
					}
					return rawStream{s}, nil
				}))
			})

		b.StopTimer()
		a.Close()
		qc.CloseWithError(0, "")
		qcM.CloseWithError(0, "")
		closeQUICTransport(tr)
		closeQUICTransport(trM)
		b.StartTimer()
	}
	// Medians, not means: on a busy machine a few dials stall for a GC
	// cycle or a descheduled goroutine, and such outliers would swamp the
	// difference being measured.
	m, r := median(myc), median(raw)
	b.ReportMetric(float64(m)/1e3, "myc_dial_us")
	b.ReportMetric(float64(r)/1e3, "quic_dial_us")
	b.ReportMetric(float64(m)/float64(r), "ratio")
	mm := median(mutual)
	b.ReportMetric(float64(mm)/1e3, "quic_mtls_dial_us")
	b.ReportMetric(float64(m)/float64(mm), "ratio_vs_mtls")
}
