package main

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// binPath is the sslsession binary TestMain builds, for the tests that run
// it as a subprocess (exit statuses, stderr).
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "sslsession-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binPath = filepath.Join(dir, "sslsession")
	build := exec.Command(goCommand(), "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the sslsession binary:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	// The in-process tests make sessions too: none may be left live.
	if n := sesstest.SettleLive(); code == 0 && n != 0 {
		fmt.Fprintf(os.Stderr, "leak check: %d owned sessions still live after GC\n", n)
		code = 1
	}
	os.Exit(code)
}

// goCommand is the go command: the one on PATH, else GOROOT's.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// result is what one run of the command gave.
type result struct {
	stdout, stderr string
	code           int
}

// runInProcess runs the command line in this process, as main does.
func runInProcess(args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return result{out.String(), errb.String(), code}
}

// runBinary runs the built binary with args.
func runBinary(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "running %v: %v", args, err)
		code = ee.ExitCode()
	}
	return result{out.String(), errb.String(), code}
}

// requireError checks a failed run: the exit status, and exactly one line on
// stderr, "sslsession: ..." matching want, with no stack trace.
func requireError(t *testing.T, r result, code int, want string) {
	t.Helper()
	require.Equal(t, code, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.True(t, strings.HasSuffix(r.stderr, "\n"), "stderr %q", r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	require.Len(t, lines, 1, "stderr must be one line: %q", r.stderr)
	require.True(t, strings.HasPrefix(lines[0], "sslsession: "), "stderr %q", r.stderr)
	require.NotContains(t, r.stderr, "goroutine")
	require.NotContains(t, r.stderr, "panic")
	require.Regexp(t, want, lines[0])
}

// opensslBin is the openssl command of the OpenSSL the library links: the
// Makefile exports SSLSESSION_OPENSSL; otherwise the one on PATH. It must
// be the same major.minor version as the linked library.
func opensslBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SSLSESSION_OPENSSL")
	if bin == "" {
		var err error
		bin, err = exec.LookPath("openssl")
		require.NoError(t, err, "no openssl command: set SSLSESSION_OPENSSL")
	}
	out, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	v := sslsession.RuntimeVersion()
	want := fmt.Sprintf("OpenSSL %d.%d.", v.Major(), v.Minor())
	require.True(t, strings.HasPrefix(string(out), want),
		"%s is %q but the library runs OpenSSL %s: set SSLSESSION_OPENSSL to the openssl of the same OpenSSL", bin, strings.TrimSpace(string(out)), v)
	return bin
}

// is102 reports whether the library runs OpenSSL 1.0.2 (no TLS 1.3, no
// s_server -no_cache).
func is102() bool {
	return sslsession.RuntimeVersion().Major() < 3 && sslsession.RuntimeVersion().Minor() == 0
}

// defaultTimeout is the session timeout a new SSL_CTX of the linked OpenSSL
// has: 300 s on 1.0.2, 7200 s on 1.1.1 and later. It is the one value of
// the golden reports that differs by version; reports name it instead, so
// that one golden file serves every version whose output is otherwise the
// same. Any other number in its place still shows as a difference.
var defaultTimeout = sync.OnceValue(func() string {
	oc, err := openssl.NewCtx()
	if err != nil {
		panic(err)
	}
	c, err := sslsession.NewCtx(oc)
	if err != nil {
		panic(err)
	}
	return strconv.Itoa(int(c.Timeout() / time.Second))
})

// certFiles writes a new self-signed certificate and its key to a temporary
// directory.
func certFiles(t *testing.T) (cert *loopback.Cert, certPath, keyPath string) {
	t.Helper()
	cert, err := loopback.SelfSigned()
	require.NoError(t, err)
	dir := t.TempDir()
	certPath = filepath.Join(dir, "cert.pem")
	keyPath = filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certPath, cert.CertPEM, 0o600))
	require.NoError(t, os.WriteFile(keyPath, cert.KeyPEM, 0o600))
	return cert, certPath, keyPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// waitPort waits until something accepts TCP connections on addr.
func waitPort(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	require.NoError(t, loopback.WaitListening(addr, 10*time.Second, exited))
}

// sServer is a running `openssl s_server`.
type sServer struct {
	addr     string
	certPath string // its certificate, to pass as --cafile
}

// startSServer starts `openssl s_server` of the linked OpenSSL on a free
// loopback port with a new self-signed certificate and extra flags, and
// kills it when the test ends.
func startSServer(t *testing.T, extra ...string) *sServer {
	t.Helper()
	bin := opensslBin(t)
	_, certPath, keyPath := certFiles(t)
	port := freePort(t)
	accept := fmt.Sprintf("127.0.0.1:%d", port)
	if is102() {
		// 1.0.2 takes a port only (and listens on every interface).
		accept = fmt.Sprint(port)
	}
	args := append([]string{"s_server", "-accept", accept, "-cert", certPath, "-key", keyPath, "-quiet"}, extra...)
	cmd := exec.Command(bin, args...)
	// s_server reads its standard input; keep it open and silent.
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("s_server %v output:\n%s", extra, logs.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitPort(t, addr, exited)
	return &sServer{addr: addr, certPath: certPath}
}

// startEmbedded starts an echo server of internal/loopback with cfg in this
// process and returns it with its certificate's file.
func startEmbedded(t *testing.T, cfg loopback.Config) (*loopback.Server, string) {
	t.Helper()
	cert, certPath, _ := certFiles(t)
	ctx, err := loopback.ServerCtx(cert, cfg)
	require.NoError(t, err)
	srv, err := loopback.Serve(ctx, cert)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	return srv, certPath
}

// Masks for golden files: what changes from run to run.
var masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:PORT"},
	{regexp.MustCompile(`\d+\.\d{3} ms`), "X.XXX ms"},
	{regexp.MustCompile(`\d+\.\dx`), "N.Nx"},
	{regexp.MustCompile(`\d+\.\d{2}x`), "N.NNx"},
	{regexp.MustCompile(`\d+\.\d/s \(\d+ in \d+\.\d{3} s\)`), "N.N/s (N in N.NNN s)"},
	{regexp.MustCompile(`\d+\.\d/s \(\d+ of \d+ resumed in \d+\.\d{3} s\)`), "N.N/s (N of N resumed in N.NNN s)"},
	{regexp.MustCompile(`(?m)^(openssl {17})\S+$`), "${1}VERSION"},
	{regexp.MustCompile(`\b[0-9A-F]{32,}\b`), "HEX"},
	{regexp.MustCompile(`yes, \d+ bytes, lifetime`), "yes, N bytes, lifetime"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`), "DATE"},
	{regexp.MustCompile(`/\S*/(\S+\.(pem|der))`), "DIR/$1"},
}

func mask(s string) string {
	for _, m := range masks {
		s = m.re.ReplaceAllString(s, m.with)
	}
	def := regexp.MustCompile(`(lifetime hint |timeout +)` + defaultTimeout() + ` s\b`)
	return def.ReplaceAllString(s, "${1}DEFAULT s")
}

// golden compares got, masked, with testdata/name, or rewrites it with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = mask(got)
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run go test -run %s -update", t.Name())
	require.Equal(t, string(want), got, "golden %s differs (run with -update after checking the change)", path)
}
