package test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// sServerEarly runs `openssl s_server -early_data` (TLS 1.3, not quiet: it
// prints the early data it reads) on a free port until the test ends.
func sServerEarly(t testing.TB, extra ...string) (string, *lockedBuffer) {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, sesstest.Cert(t).CertPEM, 0o600))
	require.NoError(t, os.WriteFile(key, sesstest.Cert(t).KeyPEM, 0o600))
	addr := fmt.Sprintf("127.0.0.1:%d", sesstest.FreePort(t))
	args := append([]string{"s_server", "-accept", addr, "-cert", cert, "-key", key, "-tls1_3", "-early_data"}, extra...)
	cmd := exec.Command(openSSLTool(t), args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return addr, out
		}
		require.True(t, time.Now().Before(deadline), "s_server did not start: %s", out.String())
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOutput waits until out contains s.
func waitOutput(t testing.TB, out *lockedBuffer, s string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), s) }, 10*time.Second, 10*time.Millisecond,
		"waiting for %q in: %s", s, out)
}

// This library's client against `openssl s_server -early_data`: a session
// from s_server carries its max_early_data, Dial's early data is accepted
// and printed by s_server as early data; the same ticket again is not
// resumed (s_server's anti-replay: single-use tickets in its one process),
// the early data rejected and sent after the handshake instead.
func TestEarlyDataPeerSServer(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sslsession.EarlyDataSupported() {
		require.True(t, sesstest.Is102())
		return // the root package's TestEarlyDataUnsupported
	}
	addr, out := sServerEarly(t)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost", Timeout: 10 * time.Second})
	require.NoError(t, err)
	sess, err := c.AwaitSession(5 * time.Second)
	require.NoError(t, err)
	defer sess.Close()
	require.NoError(t, c.Close())
	info, err := sess.Info()
	require.NoError(t, err)
	require.Equal(t, uint32(16384), info.MaxEarlyData, "s_server -early_data allows a record's worth")

	dial := func(req string) *sslsession.Conn {
		c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, Session: sess, ServerName: "localhost",
			Timeout: 10 * time.Second, EarlyData: []byte(req)})
		require.NoError(t, err)
		return c
	}
	c = dial("EARLY-ONE\n")
	require.True(t, c.SessionReused())
	require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
	// s_server writes the data itself unbuffered and its headers through
	// a buffered BIO: the lines may come in either order.
	waitOutput(t, out, "End of early data")
	waitOutput(t, out, "EARLY-ONE\n")
	require.NoError(t, c.Close())

	c = dial("EARLY-TWO\n")
	require.False(t, c.SessionReused(), "s_server's tickets are single use")
	require.Equal(t, sslsession.EarlyDataRejected, c.EarlyDataStatus())
	waitOutput(t, out, "Early data was rejected")
	waitOutput(t, out, "EARLY-TWO") // re-sent as ordinary data
	require.Equal(t, 1, strings.Count(out.String(), "Early data received:"), "the second request came as ordinary data")
	require.NoError(t, c.Close())
}

// `openssl s_client -early_data -sess_in` against this library's server:
// the server reads the early data apart from the rest (ReadEarlyData) and
// s_client reports it accepted; the same session file again is refused
// (OpenSSL's single-use tickets on this library's server).
func TestEarlyDataPeerSClient(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sslsession.EarlyDataSupported() {
		require.True(t, sesstest.Is102())
		return
	}
	oc := sesstest.ServerCtx(t, sslsession.TLS13, loopback.Config{})
	sc := sesstest.NewCtx(t, oc)
	require.NoError(t, sc.SetMaxEarlyData(4096, 0))
	addr, got := earlyReadServer(t, oc)

	dir := t.TempDir()
	sessFile, reqFile := filepath.Join(dir, "sess.pem"), filepath.Join(dir, "req.txt")
	require.NoError(t, os.WriteFile(reqFile, []byte("GET /zero-rtt\n"), 0o600))
	// The pause lets s_client read the tickets before stdin ends.
	runToolDelayedInput(t, "", 500*time.Millisecond, "s_client", "-connect", addr, "-tls1_3", "-servername", "localhost",
		"-sess_out", sessFile)
	require.Empty(t, <-got)

	for i, want := range []string{"GET /zero-rtt\n", ""} {
		out := runToolDelayedInput(t, "", 500*time.Millisecond, "s_client", "-connect", addr, "-tls1_3", "-servername", "localhost",
			"-sess_in", sessFile, "-early_data", reqFile)
		require.Equal(t, want, <-got, "connection %d", i)
		if want != "" {
			require.Contains(t, out, "Early data was accepted")
			require.Contains(t, out, "Reused, TLSv1.3")
		} else {
			require.Contains(t, out, "Early data was rejected")
		}
	}
	m := sc.Metrics().EarlyData
	require.Equal(t, int64(1), m.Accepted)
	require.Equal(t, int64(1), m.Rejected)
}

// earlyReadServer serves TLS with oc; for each connection it sends the
// early data read on the channel, completes the handshake, writes "ok" and
// closes.
func earlyReadServer(t testing.TB, oc *openssl.Ctx) (string, <-chan string) {
	t.Helper()
	got := make(chan string, 16)
	addr := sesstest.ServeTCP(t, func(raw net.Conn) {
		c, err := sslsession.Server(raw, oc)
		if err != nil {
			raw.Close()
			got <- "error: " + err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		early, err := c.EarlyData(1 << 20)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(early)
		if c.Handshake() == nil {
			_, _ = io.WriteString(c, "ok\n")
		}
	})
	return addr, got
}
