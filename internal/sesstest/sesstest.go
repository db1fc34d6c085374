// Package sesstest holds the helpers the tests of the root package and of
// test/ share: one certificate for the process, the protocol versions of the
// linked OpenSSL, and loopback's echo server ending with the test.
package sesstest

import (
	"sync"
	"testing"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

var (
	certOnce sync.Once
	cert     *loopback.Cert
	certErr  error
)

// Cert is the process's self-signed certificate for localhost.
func Cert(t testing.TB) *loopback.Cert {
	t.Helper()
	certOnce.Do(func() { cert, certErr = loopback.SelfSigned() })
	require.NoError(t, certErr)
	return cert
}

// Is102 reports whether the linked OpenSSL is 1.0.2.
func Is102() bool {
	v := sslsession.RuntimeVersion()
	return v.Major() == 1 && v.Minor() == 0
}

// Versions are the protocol versions of the linked OpenSSL: TLS 1.2, and
// TLS 1.3 except on 1.0.2, which the check asserts rather than skips.
func Versions(t testing.TB) []sslsession.Version {
	t.Helper()
	if Is102() {
		require.Equal(t, sslsession.TLS12, sslsession.MaxSupportedVersion(), "OpenSSL 1.0.2 speaks up to TLS 1.2")
		return []sslsession.Version{sslsession.TLS12}
	}
	require.Equal(t, sslsession.TLS13, sslsession.MaxSupportedVersion())
	return []sslsession.Version{sslsession.TLS12, sslsession.TLS13}
}

// Serve runs loopback's echo server with ctx and Cert until the test ends,
// after the test's connections are closed (cleanups run last-in,
// first-out).
func Serve(t testing.TB, ctx *openssl.Ctx) *loopback.Server {
	t.Helper()
	srv, err := loopback.Serve(ctx, Cert(t))
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv
}
