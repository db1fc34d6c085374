// Package loopback makes what the tests, the demo and the command's
// embedded server share: a self-signed certificate made at start, OpenSSL
// contexts for a server and a client, and an echo server on 127.0.0.1.
package loopback

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
)

// Cert is a self-signed certificate for localhost and 127.0.0.1.
type Cert struct {
	CertPEM []byte
	KeyPEM  []byte
}

// SelfSigned makes a new ECDSA P-256 certificate valid for an hour, for
// "localhost", "127.0.0.1" and "::1".
func SelfSigned() (*Cert, error) { return SelfSignedNamed("sslsession loopback") }

// SelfSignedNamed is SelfSigned with org as the subject's organization.
func SelfSignedNamed(org string) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{org}},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Cert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	}, nil
}

// Config chooses how a server context resumes sessions. The zero value is
// OpenSSL's default: session IDs cached, tickets on, any protocol.
type Config struct {
	Min, Max  sslsession.Version // protocol range; 0 leaves it open
	NoTickets bool               // SSL_OP_NO_TICKET
	NoCache   bool               // server session cache off
	// SessionIDContext; "sslsession-loopback" when empty.
	SessionIDContext []byte
}

// ServerCtx makes a server context with cert.
func ServerCtx(cert *Cert, cfg Config) (*openssl.Ctx, error) {
	ctx, err := newCtx(cfg.Min, cfg.Max)
	if err != nil {
		return nil, err
	}
	c, err := openssl.LoadCertificateFromPEM(cert.CertPEM)
	if err != nil {
		return nil, err
	}
	k, err := openssl.LoadPrivateKeyFromPEM(cert.KeyPEM)
	if err != nil {
		return nil, err
	}
	if err := ctx.UseCertificate(c); err != nil {
		return nil, err
	}
	if err := ctx.UsePrivateKey(k); err != nil {
		return nil, err
	}
	// OpenSSL 1.0.2 has no ECDH curve by default: without one, no ECDHE
	// suite can be used with this ECDSA certificate. Later versions
	// negotiate a group (X25519 first); setting one there would restrict
	// the server to P-256 and cost TLS 1.3 clients a HelloRetryRequest.
	if v := sslsession.RuntimeVersion(); v.Major() == 1 && v.Minor() == 0 {
		if err := ctx.SetEllipticCurve(openssl.Prime256v1); err != nil {
			return nil, err
		}
	}
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		return nil, err
	}
	id := cfg.SessionIDContext
	if len(id) == 0 {
		id = []byte("sslsession-loopback")
	}
	if err := sc.SetSessionIDContext(id); err != nil {
		return nil, err
	}
	if cfg.NoTickets {
		sc.Options(sslsession.OptionNoTicket, 0)
	}
	if cfg.NoCache {
		sc.SetCacheMode(sslsession.CacheOff)
	} else {
		sc.SetCacheMode(sslsession.CacheServer)
	}
	return ctx, nil
}

// ClientCtx makes a client context that trusts cert (nil: trusts nothing;
// use InsecureSkipVerify).
func ClientCtx(cert *Cert, min, max sslsession.Version) (*openssl.Ctx, error) {
	ctx, err := newCtx(min, max)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		c, err := openssl.LoadCertificateFromPEM(cert.CertPEM)
		if err != nil {
			return nil, err
		}
		if err := ctx.GetCertificateStore().AddCertificate(c); err != nil {
			return nil, err
		}
	}
	return ctx, nil
}

// newCtx is NewCtx with TLS 1.2 as the lowest version by default.
func newCtx(min, max sslsession.Version) (*openssl.Ctx, error) {
	if min == 0 {
		min = sslsession.TLS12
	}
	ctx, _, err := NewCtx(min, max)
	return ctx, err
}

// NewCtx makes a context that speaks min to max (0: OpenSSL's own bound),
// without SSLv2 and SSLv3: the base of every context the tests, the demo
// and the command make.
func NewCtx(min, max sslsession.Version) (*openssl.Ctx, *sslsession.Ctx, error) {
	ctx, err := openssl.NewCtxWithVersion(openssl.AnyVersion)
	if err != nil {
		return nil, nil, err
	}
	ctx.SetOptions(openssl.NoSSLv2 | openssl.NoSSLv3)
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := sc.SetProtocolRange(min, max); err != nil {
		return nil, nil, err
	}
	return ctx, sc, nil
}

// Server is an echo server on 127.0.0.1: each connection is handshaken,
// then everything the client sends is sent back until the client closes;
// the server then shuts the connection down cleanly.
type Server struct {
	Addr string
	Ctx  *openssl.Ctx
	Cert *Cert

	ln       net.Listener
	wg       sync.WaitGroup
	accepted atomic.Int64
	reused   atomic.Int64
	failed   atomic.Int64
	closed   atomic.Bool
}

// Start starts an echo server with a new self-signed certificate.
func Start(cfg Config) (*Server, error) {
	cert, err := SelfSigned()
	if err != nil {
		return nil, err
	}
	ctx, err := ServerCtx(cert, cfg)
	if err != nil {
		return nil, err
	}
	return Serve(ctx, cert)
}

// Serve starts an echo server with a prepared context.
func Serve(ctx *openssl.Ctx, cert *Cert) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), Ctx: ctx, Cert: cert, ln: ln}
	s.wg.Add(1)
	go s.loop()
	return s, nil
}

func (s *Server) loop() {
	defer s.wg.Done()
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(raw)
		}()
	}
}

func (s *Server) handle(raw net.Conn) {
	defer raw.Close()
	c, err := sslsession.Server(raw, s.Ctx)
	if err != nil {
		s.failed.Add(1)
		return
	}
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.Handshake(); err != nil {
		s.failed.Add(1)
		return
	}
	s.accepted.Add(1)
	if c.SessionReused() {
		s.reused.Add(1)
	}
	_, _ = io.Copy(c, c)
	_ = c.Close()
}

// Accepted, Reused and Failed count the server's handshakes.
func (s *Server) Accepted() int64 { return s.accepted.Load() }

// Reused counts handshakes that resumed a session.
func (s *Server) Reused() int64 { return s.reused.Load() }

// Failed counts handshakes that failed.
func (s *Server) Failed() int64 { return s.failed.Load() }

// Close stops accepting and waits for open connections to end.
func (s *Server) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	err := s.ln.Close()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
