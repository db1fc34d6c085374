package main

import (
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// The client floors against a crypto/tls server in this process: they
// resume with the held ticket and tally what they negotiated, and refuse a
// server whose certificate they do not trust, as the C client does.
func TestFloorClient(t *testing.T) {
	cert, err := loopback.SelfSigned()
	require.NoError(t, err)
	other, err := loopback.SelfSigned()
	require.NoError(t, err)
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	require.NoError(t, err)
	addr := serveGoTLS(t, pair, func(c *tls.Conn) {
		_, _ = io.Copy(io.Discard, c) // to close_notify; Close answers it
	})
	dir := t.TempDir()
	trusted, untrusted := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem")
	require.NoError(t, os.WriteFile(trusted, cert.CertPEM, 0o600))
	require.NoError(t, os.WriteFile(untrusted, other.CertPEM, 0o600))
	suite, group := mode{"12", "full"}.expect()

	for _, blocking := range []bool{false, true} {
		name := "Go+C"
		if blocking {
			name += " blocking"
		}
		t.Run(name, func(t *testing.T) {
			c, err := newFloorClient(trusted, versionCode(sslsession.TLS12), blocking)
			require.NoError(t, err)
			require.NoError(t, c.seed(addr, "full"))
			resumed, err := c.one()
			require.NoError(t, err)
			require.False(t, resumed)
			require.Equal(t, "suites="+suite+":1 groups="+group+":1", c.tallies())
			require.Equal(t, "suites=- groups=-", c.tallies(), "a tally starts anew")

			require.NoError(t, c.seed(addr, "ticket"))
			for i := 0; i < 3; i++ {
				resumed, err := c.one()
				require.NoError(t, err)
				require.True(t, resumed, "connection %d", i+1)
			}
			require.Equal(t, "suites="+suite+":3 groups=none:3", c.tallies())

			bad, err := newFloorClient(untrusted, versionCode(sslsession.TLS12), blocking)
			require.NoError(t, err)
			require.ErrorContains(t, bad.seed(addr, "ticket"), "certificate verify failed")
			require.NoError(t, bad.seed(addr, "full"))
			_, err = bad.one()
			require.ErrorContains(t, err, "certificate verify failed")
		})
	}
	_, err = newFloorClient(filepath.Join(dir, "missing.pem"), versionCode(sslsession.TLS12), false)
	require.Error(t, err)
}
