package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

func testKey(t *testing.T) *identity.Key {
	t.Helper()
	k, err := identity.NewKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func open(t *testing.T, k *identity.Key, nonQUIC func([]byte, net.Addr)) *Transport {
	t.Helper()
	tr, err := Open(Config{
		Key:                k,
		ListenAddr:         "127.0.0.1:0",
		HandshakeTimeout:   5 * time.Second,
		IdleTimeout:        30 * time.Second,
		KeepAlive:          15 * time.Second,
		MaxIncomingStreams: 10,
		NonQUIC:            nonQUIC,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func TestPeerID(t *testing.T) {
	k := testKey(t)
	cert, err := selfSignedCert(k)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := x509.ParseCertificate(cert.Certificate[0])
	id, err := PeerID([]*x509.Certificate{parsed})
	if err != nil || id != k.ID() {
		t.Fatalf("PeerID = %v, %v; want %v", id, err, k.ID())
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	ecCert, _ := x509.ParseCertificate(der)
	for name, certs := range map[string][]*x509.Certificate{
		"none":      nil,
		"two":       {parsed, parsed},
		"ecdsa_key": {ecCert},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := PeerID(certs); !errors.Is(err, ErrBadCertificate) {
				t.Fatalf("err = %v, want ErrBadCertificate", err)
			}
		})
	}
}

func TestMutualAuth(t *testing.T) {
	leakcheck.Check(t)
	ka, kb := testKey(t), testKey(t)
	a, b := open(t, ka, nil), open(t, kb, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	accepted := make(chan identity.NodeID, 1)
	go func() {
		_, id, err := b.Accept(ctx)
		if err == nil {
			accepted <- id
		}
	}()
	c, err := a.Dial(ctx, b.LocalAddr(), kb.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	if got := <-accepted; got != ka.ID() {
		t.Fatalf("server saw client %v, want %v", got, ka.ID())
	}
	if alpn := c.ConnectionState().TLS.NegotiatedProtocol; alpn != ALPN {
		t.Fatalf("ALPN = %q", alpn)
	}

	t.Run("wrong_key", func(t *testing.T) {
		other := testKey(t)
		_, err := a.Dial(ctx, b.LocalAddr(), other.ID())
		if !errors.Is(err, ErrIdentityMismatch) {
			t.Fatalf("err = %v, want ErrIdentityMismatch", err)
		}
		// VerifyConnection runs before CertificateVerify, so the key is
		// reported as presented, not as proven to be the node's.
		msg := err.Error()
		if !strings.Contains(msg, "presented key "+kb.ID().String()) || strings.Contains(msg, "the node there is") {
			t.Fatalf("err = %q, want it to say the node there presented key %s", msg, kb.ID())
		}
	})
	t.Run("self", func(t *testing.T) {
		if _, err := a.Dial(ctx, b.LocalAddr(), ka.ID()); err == nil {
			t.Fatal("dialing our own ID succeeded")
		}
	})
	t.Run("client_without_certificate", func(t *testing.T) {
		// A plain TLS client with no certificate is refused by the server.
		tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}}
		hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
		defer hcancel()
		conn, err := quic.DialAddr(hctx, b.LocalAddr().String(), tc, &quic.Config{})
		if err == nil {
			// The client may finish its side before the server refuses.
			_, err = conn.AcceptStream(hctx)
			conn.CloseWithError(0, "")
		}
		if err == nil {
			t.Fatal("a client without a certificate was served")
		}
	})
}

func TestNonQUICPacketsReachHandler(t *testing.T) {
	leakcheck.Check(t)
	got := make(chan []byte, 1)
	tr := open(t, testKey(t), func(b []byte, _ net.Addr) {
		select {
		case got <- append([]byte(nil), b...):
		default:
		}
	})
	c, err := net.Dial("udp", tr.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A STUN binding request header: first two bits 0.
	pkt := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if string(b) != string(pkt) {
			t.Fatalf("handler got %x, want %x", b, pkt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("non-QUIC packet never reached the handler")
	}
}

func TestCloseIdempotent(t *testing.T) {
	leakcheck.Check(t)
	tr := open(t, testKey(t), nil)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if _, _, err := tr.Accept(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}
