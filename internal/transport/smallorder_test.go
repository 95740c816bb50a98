package transport

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mycelium-net/mycelium/internal/identity"
	"github.com/mycelium-net/mycelium/internal/leakcheck"
)

// identityPoint is the Ed25519 encoding of the neutral element. Under it,
// R = identity, S = 0 is a valid signature of every message.
var identityPoint = ed25519.PublicKey(append([]byte{1}, make([]byte, 31)...))

// smallOrderID is identityPoint as a NodeID (ParseID refuses its text).
var smallOrderID = identity.NodeID(identityPoint)

// forgingSigner "holds" the identity point's private key: its signatures
// verify under identityPoint without any secret.
type forgingSigner struct{}

func (forgingSigner) Public() crypto.PublicKey { return identityPoint }

func (forgingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	sig := make([]byte, ed25519.SignatureSize)
	copy(sig, identityPoint) // R = identity, S = 0
	return sig, nil
}

// forgedCert is a certificate for the identity point, "signed" by
// forgingSigner. x509.CreateCertificate verifies the signature it made, so
// its success already shows the forgery verifies.
func forgedCert(t *testing.T) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: smallOrderID.String()},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, identityPoint, forgingSigner{})
	if err != nil {
		t.Fatalf("create forged certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: forgingSigner{}}
}

func TestPeerIDRefusesSmallOrderKey(t *testing.T) {
	parsed, err := x509.ParseCertificate(forgedCert(t).Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	id, err := PeerID([]*x509.Certificate{parsed})
	if !errors.Is(err, ErrBadCertificate) {
		t.Fatalf("PeerID(identity-point certificate) = %v, %v; want ErrBadCertificate", id, err)
	}
	// The peer's certificate is bad; no ID the caller gave is.
	if errors.Is(err, identity.ErrBadID) {
		t.Fatalf("PeerID error %v wraps identity.ErrBadID", err)
	}
	if !strings.Contains(err.Error(), "small-order") {
		t.Fatalf("PeerID error %q does not say why", err)
	}
}

// TestServerRefusesSmallOrderClient: a client presenting the identity point
// and a forged CertificateVerify is refused, and Accept never returns it.
func TestServerRefusesSmallOrderClient(t *testing.T) {
	leakcheck.Check(t)
	ks, kc := testKey(t), testKey(t)
	server, honest := open(t, ks, nil), open(t, kc, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	accepted := make(chan identity.NodeID, 4)
	acceptDone := make(chan struct{})
	actx, acancel := context.WithCancel(ctx)
	defer func() { acancel(); <-acceptDone }()
	go func() {
		defer close(acceptDone)
		for {
			c, id, err := server.Accept(actx)
			if err != nil {
				return
			}
			accepted <- id
			c.CloseWithError(0, "")
		}
	}()

	tc := &tls.Config{
		Certificates:       []tls.Certificate{forgedCert(t)},
		NextProtos:         []string{ALPN},
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS13,
	}
	conn, err := quic.DialAddr(ctx, server.LocalAddr().String(), tc, &quic.Config{HandshakeIdleTimeout: 5 * time.Second})
	if err == nil {
		// The client finishes its side of the handshake before the server
		// checks its certificate; the server's refusal then closes it.
		defer conn.CloseWithError(0, "")
		select {
		case id := <-accepted:
			t.Fatalf("Accept returned the forged client as %v", id)
		case <-conn.Context().Done():
			err = context.Cause(conn.Context())
		case <-ctx.Done():
			t.Fatal("the forged client's connection was never refused")
		}
	}
	var te *quic.TransportError
	if !errors.As(err, &te) || !te.Remote || !te.ErrorCode.IsCryptoError() {
		t.Fatalf("forged client failed with %v, want a TLS alert from the server", err)
	}

	// The server still serves an honest client, and the first connection
	// Accept returns is that one.
	c, err := honest.Dial(ctx, server.LocalAddr(), ks.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	select {
	case id := <-accepted:
		if id != kc.ID() {
			t.Fatalf("Accept returned %v, want the honest client %v", id, kc.ID())
		}
	case <-ctx.Done():
		t.Fatal("the honest client was never accepted")
	}
}

// TestDialRefusesSmallOrderServer: a server presenting the identity point
// and a forged CertificateVerify is refused by Dial, whether the dialer
// asked for that "ID" or another.
func TestDialRefusesSmallOrderServer(t *testing.T) {
	leakcheck.Check(t)
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{forgedCert(t)},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{ALPN},
	}, &quic.Config{HandshakeIdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	acceptDone := make(chan struct{})
	defer func() { ln.Close(); <-acceptDone }()
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			c.CloseWithError(0, "")
		}
	}()

	tr := open(t, testKey(t), nil)
	for name, want := range map[string]identity.NodeID{
		"want_small_order_id": smallOrderID,
		"want_other_id":       testKey(t).ID(),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := tr.Dial(ctx, ln.Addr(), want)
			if err == nil {
				c.CloseWithError(0, "")
				t.Fatal("Dial to a server proving a small-order key succeeded")
			}
			if !errors.Is(err, ErrBadCertificate) {
				t.Fatalf("Dial error = %v, want ErrBadCertificate", err)
			}
			if errors.Is(err, ErrIdentityMismatch) || errors.Is(err, identity.ErrBadID) {
				t.Fatalf("Dial error = %v: the peer's certificate is bad, not the ID dialed", err)
			}
		})
	}
}
