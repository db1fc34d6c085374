package cfloor

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// Every loop of the floor runs, and resumes when asked, on each protocol
// the running OpenSSL has: make bench-handshake would stop on a failure.
func TestFloor(t *testing.T) {
	cert, err := loopback.SelfSigned()
	require.NoError(t, err)
	codes := map[string]int{"TLS 1.2": 0x0303}
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		codes["TLS 1.3"] = 0x0304
	}
	for name, code := range codes {
		t.Run(name, func(t *testing.T) {
			f, err := New(cert.CertPEM, cert.KeyPEM, code)
			require.NoError(t, err)
			defer f.Close()
			for _, run := range []func(int, bool) (int, error){f.Run, f.Run2} {
				got, err := run(5, false)
				require.NoError(t, err)
				require.Zero(t, got, "full handshakes")
				got, err = run(5, true)
				require.NoError(t, err)
				require.Equal(t, 5, got, "every handshake resumed")
			}
			require.NoError(t, f.TCP(5))
		})
	}
	_, err = New([]byte("not a certificate"), cert.KeyPEM, 0x0303)
	require.Error(t, err)
}
