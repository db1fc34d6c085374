package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// goServer is a Go crypto/tls echo server started in the test.
type goServer struct {
	addr     string
	certPath string // its certificate, for --cafile
}

// startGoServer starts a crypto/tls echo server on 127.0.0.1 with a new
// self-signed certificate; cfg is completed with it. clientCA, when not
// nil, is the only client certificate it accepts, and it requires one.
// configure, when given, changes the config last.
func startGoServer(t *testing.T, min, max uint16, clientCA *loopback.Cert, configure ...func(*tls.Config)) *goServer {
	t.Helper()
	cert, certPath, _ := certFiles(t)
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	require.NoError(t, err)
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: min, MaxVersion: max}
	if clientCA != nil {
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(clientCA.CertPEM))
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	for _, f := range configure {
		f(cfg)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return &goServer{addr: ln.Addr().String(), certPath: certPath}
}

// TestClientCertificate: a server that requires a client certificate. TLS
// 1.3 sends its certificate_required alert after the client's side of the
// handshake: check and save must report it (exit 2, one line) rather than
// "no ticket", save must write nothing, and --cert/--key make the server
// checkable.
func TestClientCertificate(t *testing.T) {
	t.Parallel()
	clientCert, clientCertPath, clientKeyPath := certFiles(t)
	versions := []struct {
		name string
		v    uint16
		flag string
	}{{"tls1.2", tls.VersionTLS12, "--tls1.2"}}
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		versions = append(versions, struct {
			name string
			v    uint16
			flag string
		}{"tls1.3", tls.VersionTLS13, "--tls1.3"})
	}
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			t.Parallel()
			srv := startGoServer(t, ver.v, ver.v, clientCert)
			base := []string{srv.addr, "--cafile", srv.certPath, "--servername", "localhost", ver.flag}

			r := runBinary(t, append([]string{"check", "-n", "1"}, base...)...)
			if ver.v == tls.VersionTLS13 {
				requireError(t, r, exitError, `^sslsession: TLS handshake with `+regexp.QuoteMeta(srv.addr)+
					` failed: the server requires a client certificate \(alert certificate_required\); give one with --cert and --key$`)
			} else {
				requireError(t, r, exitError, `^sslsession: TLS handshake with `+regexp.QuoteMeta(srv.addr)+` failed: `)
			}
			require.Empty(t, r.stdout)

			out := filepath.Join(t.TempDir(), "s.pem")
			r = runBinary(t, append([]string{"save", "-o", out}, base...)...)
			require.Equal(t, exitError, r.code, r.stdout)
			_, err := os.Stat(out)
			require.True(t, os.IsNotExist(err), "save wrote %s after a failed handshake", out)

			r = runBinary(t, append([]string{"check", "-n", "2", "--json", "--require-resume",
				"--cert", clientCertPath, "--key", clientKeyPath}, base...)...)
			require.Equal(t, 0, r.code, r.stderr)
			rep := parseCheck(t, r.stdout)
			assert.True(t, rep.Resumed)
			requireMechanism(t, rep.TicketResumption, 2, 2)

			// The key may be in the --cert file, as with s_client.
			both := filepath.Join(t.TempDir(), "both.pem")
			require.NoError(t, os.WriteFile(both, append(append([]byte{}, clientCert.CertPEM...), clientCert.KeyPEM...), 0o600))
			r = runBinary(t, append([]string{"save", "-o", out, "--cert", both}, base...)...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Regexp(t, `(?m)^resumable\s+yes$`, r.stdout)
		})
	}
	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		junk := filepath.Join(dir, "junk.pem")
		require.NoError(t, os.WriteFile(junk, []byte("not a certificate\n"), 0o600))
		addr := "127.0.0.1:1"
		requireError(t, runBinary(t, "check", addr, "--key", clientKeyPath), exitError, `^sslsession: --key needs --cert$`)
		requireError(t, runBinary(t, "check", addr, "--cert", filepath.Join(dir, "none.pem")), exitError,
			`^sslsession: cannot read .*none\.pem: no such file or directory$`)
		requireError(t, runBinary(t, "check", addr, "--cert", junk, "--key", clientKeyPath), exitError,
			`^sslsession: .*junk\.pem holds no PEM certificate: `)
		requireError(t, runBinary(t, "check", addr, "--cert", clientCertPath), exitError,
			`^sslsession: .*cert\.pem holds no PEM private key: `)
		other, _, otherKey := certFiles(t)
		_ = other
		requireError(t, runBinary(t, "check", addr, "--cert", clientCertPath, "--key", otherKey), exitError,
			`^sslsession: cannot use the client key \(does it match --cert\?\): `)
		_ = net.IPv4len
	})
}
