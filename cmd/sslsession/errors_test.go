package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
)

// TestNetworkErrors: each way a connection fails gives one line naming the
// cause, and exit status 2.
func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		for _, cmd := range [][]string{
			{"check", addr}, {"bench", addr, "--duration", "100ms"}, {"save", addr, "-o", filepath.Join(t.TempDir(), "x.pem")},
		} {
			r := runBinary(t, cmd...)
			requireError(t, r, exitError, `^sslsession: connection to `+regexp.QuoteMeta(addr)+` refused$`)
		}
	})
	t.Run("unresolvable host", func(t *testing.T) {
		t.Parallel()
		// Not a valid DNS name: Go's resolver refuses it without sending
		// any query, so the test stays off the network.
		r := runBinary(t, "check", "no_such_host!.invalid:443")
		requireError(t, r, exitError, `^sslsession: cannot resolve host "no_such_host!\.invalid": no such host$`)
	})
	t.Run("handshake timeout", func(t *testing.T) {
		t.Parallel()
		// Accepts, then says nothing.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		var mu sync.Mutex
		var conns []net.Conn
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		start := time.Now()
		r := runBinary(t, "check", ln.Addr().String(), "--timeout", "300ms")
		requireError(t, r, exitError, `^sslsession: TLS handshake with `+regexp.QuoteMeta(ln.Addr().String())+` timed out$`)
		assert.Less(t, time.Since(start), 10*time.Second)
	})
	t.Run("not TLS", func(t *testing.T) {
		t.Parallel()
		// Accepts and closes at once, like a server that speaks no TLS.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
				c.Close()
			}
		}()
		r := runBinary(t, "check", ln.Addr().String())
		requireError(t, r, exitError, `^sslsession: TLS handshake with `+regexp.QuoteMeta(ln.Addr().String())+` failed: `)
	})
	t.Run("TLS alert", func(t *testing.T) {
		t.Parallel()
		// The server requires a client certificate; the client has none,
		// and the server ends the handshake with an alert.
		srv := startSServer(t, "-Verify", "1", "-tls1_2")
		r := runBinary(t, "check", srv.addr, "--tls1.2", "--insecure")
		requireError(t, r, exitError, `^sslsession: TLS handshake with `+regexp.QuoteMeta(srv.addr)+` failed: .*alert handshake failure$`)
		// A protocol the server does not speak.
		if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
			r = runBinary(t, "check", srv.addr, "--tls1.3", "--insecure")
			requireError(t, r, exitError, `^sslsession: TLS handshake with `+regexp.QuoteMeta(srv.addr)+` failed: .*alert protocol version$`)
		}
	})
	t.Run("certificate", func(t *testing.T) {
		t.Parallel()
		srv := startSServer(t)
		// Not trusted: a self-signed certificate against the system's roots.
		r := runBinary(t, "check", srv.addr)
		requireError(t, r, exitError, `^sslsession: certificate of `+regexp.QuoteMeta(srv.addr)+` not trusted: `+regexp.QuoteMeta(sslsession.VerifyErrorString(18))+` \(X509 error 18\)$`)
		// Trusted, but for another name.
		r = runBinary(t, "check", srv.addr, "--cafile", srv.certPath, "--servername", "wrong.example")
		requireError(t, r, exitError, `^sslsession: certificate of `+regexp.QuoteMeta(srv.addr)+` is not valid for "wrong\.example"$`)
		// --insecure accepts it.
		r = runBinary(t, "check", srv.addr, "--insecure", "-n", "1", "--ticket-wait", "300ms")
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `(?m)^certificate\s+not verified \(--insecure\)$`, r.stdout)
		// A CA file that does not exist.
		r = runBinary(t, "check", srv.addr, "--cafile", filepath.Join(t.TempDir(), "none.pem"))
		requireError(t, r, exitError, `^sslsession: cannot \w+ .*none\.pem: no such file or directory$`)
	})
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// TestFileErrors: unreadable or malformed session files.
func TestFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	cert, _, _ := certFiles(t)
	cases := []struct {
		name string
		path string
		want string
	}{
		{"missing", missing, `^sslsession: cannot read .*missing\.pem: no such file or directory$`},
		{"directory", dir, `^sslsession: cannot read .*: is a directory$`},
		{"empty", writeTemp(t, "empty.pem", nil), `^sslsession: .*empty\.pem is not an SSL session: the file is empty$`},
		{"garbage DER", writeTemp(t, "junk.der", []byte{0x30, 0x03, 0x02, 0x01}), `^sslsession: .*junk\.der is not an SSL session: d2i_SSL_SESSION failed`},
		{"text", writeTemp(t, "junk.txt", []byte("hello\n")), `^sslsession: .*junk\.txt is not an SSL session: `},
		{"certificate PEM", writeTemp(t, "cert.pem", cert.CertPEM), `^sslsession: .*cert\.pem is not an SSL session: PEM_read_SSL_SESSION failed: PEM block is "CERTIFICATE", want "SSL SESSION PARAMETERS"$`},
		{"truncated PEM", writeTemp(t, "trunc.pem", []byte("-----BEGIN SSL SESSION PARAMETERS-----\nMIIB\n")), `^sslsession: .*trunc\.pem is not an SSL session: `},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runBinary(t, "inspect", tc.path)
			requireError(t, r, exitError, tc.want)
			require.Empty(t, r.stdout)
			r = runBinary(t, "resume", "127.0.0.1:1", "-i", tc.path)
			requireError(t, r, exitError, tc.want)
		})
	}
	t.Run("unwritable output", func(t *testing.T) {
		t.Parallel()
		srv, certPath := startEmbedded(t, embeddedTLS12)
		r := runBinary(t, "save", srv.Addr, "--cafile", certPath, "-o", filepath.Join(dir, "no", "such", "dir.pem"))
		requireError(t, r, exitError, `^sslsession: cannot \w+ .*dir\.pem: no such file or directory$`)
	})
}

// TestUsageErrors: mistakes on the command line exit with status 2 and one
// line, without the usage text.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"check", "--nope"}, `^sslsession: unknown flag: --nope \(see 'sslsession check --help'\)$`},
		{[]string{"check", "--tls1.2", "--tls1.3"}, `^sslsession: if any flags in the group \[tls1\.2 tls1\.3\] are set none of the others can be; \[tls1\.2 tls1\.3\] were all set$`},
		{[]string{"check", "--cafile", "x", "--insecure"}, `^sslsession: if any flags in the group \[cafile insecure\] are set none of the others can be`},
		{[]string{"check", "a:1", "b:2"}, `^sslsession: the hosts have different names \(a, b\): give the one name their certificates share with --servername`},
		{[]string{"check", "-n", "0"}, `^sslsession: -n must be between 1 and 1000$`},
		{[]string{"check", "localhost"}, `^sslsession: target "localhost" is not host:port$`},
		{[]string{"save", "127.0.0.1:1"}, `^sslsession: required flag\(s\) "out" not set$`},
		{[]string{"resume", "127.0.0.1:1"}, `^sslsession: required flag\(s\) "in" not set$`},
		{[]string{"save", "-o", "x"}, `^sslsession: save: accepts 1 arg\(s\), received 0`},
		{[]string{"inspect"}, `^sslsession: inspect: accepts 1 arg\(s\), received 0`},
		{[]string{"bench", "--progress", "sometimes"}, `^sslsession: --progress must be auto, always or never, not "sometimes"$`},
		{[]string{"bench", "--duration", "0s"}, `^sslsession: --duration must be between 0 and 1h$`},
		{[]string{"version", "extra"}, `^sslsession: version: unknown command "extra" for "sslsession version"`},
		{[]string{"frobnicate"}, `^sslsession: unknown command "frobnicate" for "sslsession"$`},
	}
	for _, tc := range cases {
		r := runBinary(t, tc.args...)
		requireError(t, r, exitError, tc.want)
		require.NotContains(t, r.stdout+r.stderr, "Usage:", "%v", tc.args)
	}
}

// TestNetErrorText covers the causes a test on loopback cannot provoke.
func TestNetErrorText(t *testing.T) {
	op := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	cases := []struct {
		err  error
		want string
	}{
		{op(syscall.EHOSTUNREACH), "host 192.0.2.1:443 unreachable: no route to host"},
		{op(syscall.ENETUNREACH), "host 192.0.2.1:443 unreachable: network is unreachable"},
		{op(syscall.ECONNREFUSED), "connection to 192.0.2.1:443 refused"},
		{op(syscall.ECONNRESET), "connection to 192.0.2.1:443 reset by peer"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, "connection to 192.0.2.1:443 timed out"},
		{&net.DNSError{Err: "server misbehaving", Name: "example.com"}, `cannot resolve host "example.com": server misbehaving`},
		{errors.New("something\nelse"), "cannot connect to 192.0.2.1:443: something; else"},
	}
	for _, tc := range cases {
		code, msg := exitCode(netError("192.0.2.1:443", tc.err))
		assert.Equal(t, exitError, code)
		assert.Equal(t, tc.want, msg)
	}
	code, msg := exitCode(handshakeError("h:1", errors.New("SSL errors: SSL routines:ssl3_read_bytes:sslv3 alert handshake failure\nSSL routines:ssl3_read_bytes:sslv3 alert handshake failure")))
	assert.Equal(t, exitError, code)
	assert.Equal(t, "TLS handshake with h:1 failed: sslv3 alert handshake failure", msg)
	_, msg = exitCode(handshakeError("h:1", errors.New("SSL errors: error:0A000410:SSL routines::sslv3 alert handshake failure")))
	assert.Equal(t, "TLS handshake with h:1 failed: sslv3 alert handshake failure", msg)
}

// TestNewerOpenSSLFile: session files written by OpenSSL 3 (openssl
// s_client -sess_out, testdata/session-openssl3-*.pem). OpenSSL 3 reads
// them; 1.0.2 and 1.1.1 cannot, and the command says the file probably
// comes from a newer OpenSSL rather than only what the decoder said.
func TestNewerOpenSSLFile(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"session-openssl3-tls12.pem", "session-openssl3-tls13.pem"} {
		path := filepath.Join("testdata", name)
		r := runBinary(t, "inspect", path)
		if sslsession.RuntimeVersion().Major() >= 3 {
			require.Equal(t, 0, r.code, r.stderr)
			require.Regexp(t, `(?m)^protocol\s+TLSv1\.[23]$`, r.stdout)
			continue
		}
		requireError(t, r, exitError, `^sslsession: testdata/`+regexp.QuoteMeta(name)+
			` was probably written by a newer OpenSSL, whose session format OpenSSL `+regexp.QuoteMeta(sslsession.RuntimeVersion().String())+
			` cannot read \((wrong tag|field \[1[3-9]\] is not in OpenSSL )`)
		r = runBinary(t, "resume", "127.0.0.1:1", "-i", path)
		requireError(t, r, exitError, `was probably written by a newer OpenSSL`)
	}
	// Damaged data that is not a session is not blamed on a newer OpenSSL.
	for _, data := range [][]byte{{0x30, 0x03, 0x02, 0x01}, {0x30, 0x06, 0x02, 0x01, 0x01, 0x04, 0x01, 0x00}, []byte("hello\n")} {
		r := runBinary(t, "inspect", writeTemp(t, "junk.der", data))
		requireError(t, r, exitError, `is not an SSL session: `)
	}
}

// TestInputFileLimit: every file the command reads is read up to 1 MiB; a
// larger one, or one without end, is one line and exit 2, at once (inspect
// /dev/zero grew to 255 MiB in 3 s before).
func TestInputFileLimit(t *testing.T) {
	t.Parallel()
	big := writeTemp(t, "big.pem", make([]byte, maxInputFile+1))
	_, certPath, keyPath := certFiles(t)
	srv, caPath := startEmbedded(t, embeddedTLS12)
	for _, c := range []struct {
		args []string
		file string
		what string
	}{
		{[]string{"inspect", "/dev/zero"}, "/dev/zero", "session file"},
		{[]string{"inspect", big}, big, "session file"},
		{[]string{"resume", srv.Addr, "--cafile", caPath, "-i", "/dev/zero"}, "/dev/zero", "session file"},
		{[]string{"check", srv.Addr, "--cafile", caPath, "--cert", "/dev/zero", "--key", keyPath}, "/dev/zero", `certificate file \(--cert\)`},
		{[]string{"save", srv.Addr, "--cafile", caPath, "-o", filepath.Join(t.TempDir(), "s.pem"), "--cert", certPath, "--key", "/dev/zero"}, "/dev/zero", `key file \(--key\)`},
		{[]string{"reference", "--against", "/dev/zero"}, "/dev/zero", `reference report \(--against\)`},
		{[]string{"reference", "--against", big}, big, `reference report \(--against\)`},
	} {
		start := time.Now()
		r := runBinary(t, c.args...)
		requireError(t, r, exitError, `^sslsession: `+regexp.QuoteMeta(c.file)+` is larger than 1 MiB, the limit for a `+c.what+`$`)
		assert.Less(t, time.Since(start), 5*time.Second, "%v", c.args)
	}
	// A file of exactly the limit is read (and is not a session).
	r := runBinary(t, "inspect", writeTemp(t, "limit.der", make([]byte, maxInputFile)))
	requireError(t, r, exitError, `is not an SSL session`)
}
