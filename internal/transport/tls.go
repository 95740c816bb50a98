package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/mycelium-net/mycelium/internal/identity"
)

// ALPN is the application protocol negotiated on every connection. The
// number is the wire version: a node refuses peers that speak another.
const ALPN = "mycelium/1"

// Errors from peer authentication.
var (
	// ErrIdentityMismatch: the peer proved a key other than the one dialed.
	ErrIdentityMismatch = errors.New("transport: peer identity mismatch")
	// ErrBadCertificate: the peer's certificate is not a mycelium node certificate.
	ErrBadCertificate = errors.New("transport: bad peer certificate")
)

// selfSignedCert makes the node's TLS certificate: self-signed with the node
// key, naming the node ID. Peers do not check names, dates or chains, only
// that the certificate's key is the expected node key; TLS 1.3's
// CertificateVerify proves the peer holds the matching private key.
func selfSignedCert(key *identity.Key) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: key.ID().String()},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Private().Public(), key.Private())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: create certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key.Private()}, nil
}

// PeerID extracts the node ID from a peer's certificates: exactly one, with
// an Ed25519 key that identity.IDFromPublicKey accepts. The certificate's
// own signature, names and dates are not checked: TLS 1.3's
// CertificateVerify already proves the peer holds the private key of the
// certificate's public key, and that key is what we pin. (Checking the
// self-signature too cost an Ed25519 verification per side per handshake,
// about 50 µs each, for no added assurance.)
//
// That proof is worth nothing for a small-order key: under the identity
// point, say, the signature R = identity, S = 0 verifies for every message,
// so anyone could "prove" it. IDFromPublicKey refuses those keys, and so
// PeerID refuses such a certificate. Every error wraps ErrBadCertificate
// only: it is the peer's certificate that is bad, not an ID the caller gave.
func PeerID(certs []*x509.Certificate) (identity.NodeID, error) {
	if len(certs) != 1 {
		return identity.NodeID{}, fmt.Errorf("%w: %d certificates, want 1", ErrBadCertificate, len(certs))
	}
	pub, ok := certs[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return identity.NodeID{}, fmt.Errorf("%w: key is %T, want Ed25519", ErrBadCertificate, certs[0].PublicKey)
	}
	id, err := identity.IDFromPublicKey(pub)
	if err != nil {
		return identity.NodeID{}, fmt.Errorf("%w: %v", ErrBadCertificate, err)
	}
	return id, nil
}

// serverTLS accepts any node except self as a client; which peers may
// connect is policy above this layer.
func serverTLS(cert tls.Certificate, self identity.NodeID) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{ALPN},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := PeerID(cs.PeerCertificates)
			if err != nil {
				return err
			}
			if id == self {
				return fmt.Errorf("%w: peer presented our own key", ErrBadCertificate)
			}
			return nil
		},
	}
}

// clientTLS accepts only a server that proves the key want. When the server
// proves another key, the returned *mismatch receives that key's ID.
func clientTLS(cert tls.Certificate, want identity.NodeID, mismatch *identity.NodeID) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		NextProtos:         []string{ALPN},
		ServerName:         "mycelium",
		InsecureSkipVerify: true, // replaced by VerifyConnection: we pin the key, not a CA chain
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := PeerID(cs.PeerCertificates)
			if err != nil {
				return err
			}
			if id != want {
				*mismatch = id
				return fmt.Errorf("%w: want %s, got %s", ErrIdentityMismatch, want, id)
			}
			return nil
		},
	}
}
