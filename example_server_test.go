package sslsession_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
)

// The servers of the examples, made as a program makes its own: a
// certificate from crypto/x509, contexts from spacemonkeygo, connections
// from sslsession.Server. Nothing here is internal to this module.

// exampleCert is a self-signed certificate for localhost, and its key.
type exampleCert struct {
	cert *openssl.Certificate
	key  openssl.PrivateKey
}

func newExampleCert() exampleCert {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		log.Fatal(err)
	}
	c, err := openssl.LoadCertificateFromPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		log.Fatal(err)
	}
	k, err := openssl.LoadPrivateKeyFromPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	if err != nil {
		log.Fatal(err)
	}
	return exampleCert{cert: c, key: k}
}

// exampleCtx is a context for TLS 1.2 up to max (0: the newest OpenSSL
// speaks).
func exampleCtx(max sslsession.Version) *openssl.Ctx {
	ctx, err := openssl.NewCtxWithVersion(openssl.AnyVersion)
	if err != nil {
		log.Fatal(err)
	}
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := sc.SetProtocolRange(sslsession.TLS12, max); err != nil {
		log.Fatal(err)
	}
	return ctx
}

// exampleServerCtx is a server context with c and a session ID context.
func exampleServerCtx(c exampleCert, max sslsession.Version) *openssl.Ctx {
	ctx := exampleCtx(max)
	if err := ctx.UseCertificate(c.cert); err != nil {
		log.Fatal(err)
	}
	if err := ctx.UsePrivateKey(c.key); err != nil {
		log.Fatal(err)
	}
	// OpenSSL 1.0.2 has no ECDH curve by default, which ECDHE with an
	// ECDSA certificate needs. On later versions a curve set here would be
	// the only group, costing TLS 1.3 clients that offer X25519 a
	// HelloRetryRequest.
	if v := sslsession.RuntimeVersion(); v.Major() == 1 && v.Minor() == 0 {
		if err := ctx.SetEllipticCurve(openssl.Prime256v1); err != nil {
			log.Fatal(err)
		}
	}
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := sc.SetSessionIDContext([]byte("example")); err != nil {
		log.Fatal(err)
	}
	return ctx
}

// exampleClientCtx is a client context that trusts c.
func exampleClientCtx(c exampleCert, max sslsession.Version) *openssl.Ctx {
	ctx := exampleCtx(max)
	if err := ctx.GetCertificateStore().AddCertificate(c.cert); err != nil {
		log.Fatal(err)
	}
	return ctx
}

// exampleServer echoes on 127.0.0.1 what each client sends, until it closes.
type exampleServer struct {
	Addr string
	ln   net.Listener
	wg   sync.WaitGroup
}

func exampleServe(ctx *openssl.Ctx) *exampleServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	s := &exampleServer{Addr: ln.Addr().String(), ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer raw.Close()
				c, err := sslsession.Server(raw, ctx)
				if err != nil {
					return
				}
				_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	}()
	return s
}

// Close stops accepting and waits for the connections to end.
func (s *exampleServer) Close() {
	s.ln.Close()
	s.wg.Wait()
}
