// Package test holds the integration tests: real TLS handshakes over
// 127.0.0.1 between OpenSSL objects, and the openssl command-line tool of the
// same OpenSSL as a second peer. Each claim of SSL_get_session(3) has its own
// TestManPage… test, run on whatever OpenSSL the package is built against.
package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

func TestMain(m *testing.M) {
	sesstest.Main(m, func() {
		if fleetBin.dir != "" {
			_ = os.RemoveAll(fleetBin.dir)
		}
	})
}

// fleetBin is examples/fleet-server, built once for the tests that run it.
var fleetBin struct {
	once      sync.Once
	dir, path string
	err       error
}

// fleetServerBinary builds examples/fleet-server on first use and returns
// its path.
func fleetServerBinary(t testing.TB) string {
	t.Helper()
	fleetBin.once.Do(func() {
		if fleetBin.dir, fleetBin.err = os.MkdirTemp("", "sslsession-fleet-server-"); fleetBin.err != nil {
			return
		}
		fleetBin.path = filepath.Join(fleetBin.dir, "fleet-server")
		out, err := exec.Command("go", "build", "-o", fleetBin.path, "../examples/fleet-server").CombinedOutput()
		if err != nil {
			fleetBin.err = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	require.NoError(t, fleetBin.err)
	return fleetBin.path
}

// openSSLTool is the openssl command of the OpenSSL the package links (the
// Makefile exports SSLSESSION_OPENSSL).
func openSSLTool(t testing.TB) string {
	t.Helper()
	p := os.Getenv("SSLSESSION_OPENSSL")
	if p == "" {
		var err error
		p, err = exec.LookPath("openssl")
		require.NoError(t, err, "the openssl command is required (make test finds it)")
	}
	out, err := exec.Command(p, "version").CombinedOutput()
	require.NoError(t, err, string(out))
	// The tool must be the library's own OpenSSL, or the comparison means nothing.
	want := sslsession.RuntimeVersion().String()
	require.Contains(t, string(out), want, "openssl command %s is not OpenSSL %s", p, want)
	return p
}

// runTool runs the openssl command with args and returns its output.
func runTool(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	return runToolDelayedInput(t, stdin, 0, args...)
}

// runToolDelayedInput is runTool with its input written after a pause.
func runToolDelayedInput(t testing.TB, stdin string, pause time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openSSLTool(t), args...)
	r, w := io.Pipe()
	cmd.Stdin = r
	go func() {
		time.Sleep(pause)
		_, _ = io.WriteString(w, stdin)
		_ = w.Close()
	}()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "openssl %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// sServer runs `openssl s_server` on a free 127.0.0.1 port until the test ends.
func sServer(t testing.TB, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, sesstest.Cert(t).CertPEM, 0o600))
	require.NoError(t, os.WriteFile(key, sesstest.Cert(t).KeyPEM, 0o600))
	port := sesstest.FreePort(t)
	// 1.0.2's s_server takes a bare port (and listens on every address);
	// later ones take host:port.
	accept := fmt.Sprintf("127.0.0.1:%d", port)
	v := sslsession.RuntimeVersion()
	old := v.Major() == 1 && v.Minor() == 0
	if old {
		accept = fmt.Sprint(port)
	}
	args := append([]string{"s_server", "-accept", accept, "-cert", cert, "-key", key, "-quiet"}, extra...)
	if old {
		args = append(args, "-named_curve", "prime256v1")
	}
	cmd := exec.Command(openSSLTool(t), args...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	require.NoError(t, loopback.WaitListening(addr, 10*time.Second, nil), "s_server: %s", out.String())
	return addr
}

// lockedBuffer is a bytes.Buffer a process writes to while a test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
