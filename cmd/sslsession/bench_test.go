package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// embeddedTLS12 is a loopback server configuration every OpenSSL speaks the
// same way.
var embeddedTLS12 = loopback.Config{Max: sslsession.TLS12}

func parseBench(t *testing.T, out string) benchReport {
	t.Helper()
	var rep benchReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep), "bench --json output: %s", out)
	return rep
}

func requireBench(t *testing.T, rep benchReport, mechanism string, resumes bool) {
	t.Helper()
	assert.Equal(t, mechanism, rep.Mechanism)
	assert.Positive(t, rep.Full.Handshakes)
	assert.Zero(t, rep.Full.Resumed, "a full handshake offers no session")
	assert.Positive(t, rep.Full.PerSecond)
	assert.Positive(t, rep.Resumed.Handshakes)
	if resumes {
		assert.Equal(t, rep.Resumed.Handshakes, rep.Resumed.Resumed)
		assert.Positive(t, rep.Resumed.PerSecond)
		require.NotNil(t, rep.Ratio)
		assert.Positive(t, *rep.Ratio)
	} else {
		assert.Zero(t, rep.Resumed.Resumed)
		assert.Zero(t, rep.Resumed.PerSecond)
		assert.Nil(t, rep.Ratio)
	}
}

func TestBenchEmbedded(t *testing.T) {
	r := runInProcess("bench", "--duration", "200ms", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseBench(t, r.stdout)
	assert.True(t, rep.Embedded)
	assert.Equal(t, sslsession.MaxSupportedVersion().String(), rep.Protocol)
	assert.Equal(t, 0.2, rep.DurationSeconds)
	requireBench(t, rep, "ticket", true)

	// Human report, golden with the numbers masked; no progress bar when
	// the output is not a terminal.
	r = runInProcess("bench", "--duration", "100ms", "--tls1.2")
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stdout, "%")
	require.NotContains(t, r.stdout, "\r")
	golden(t, "bench-tls12.golden", r.stdout)
}

func TestBenchProgressBar(t *testing.T) {
	r := runInProcess("bench", "--duration", "300ms", "--progress", "always")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "full handshakes")
	require.Regexp(t, `\d+%`, r.stdout)
	require.Contains(t, r.stdout, "\r")
	// The report follows the bar, whole.
	require.Regexp(t, `(?m)^ratio\s+\d+\.\d{2}x resumed/full$`, r.stdout)

	// The binary with its output piped draws none.
	b := runBinary(t, "bench", "--duration", "100ms")
	require.Equal(t, 0, b.code, b.stderr)
	require.NotContains(t, b.stdout, "\r")
	require.NotContains(t, b.stdout+b.stderr, "%")
}

// TestBenchMechanisms: bench resumes with session IDs when the server sends
// no ticket, and reports nothing resumed when the server cannot resume.
func TestBenchMechanisms(t *testing.T) {
	t.Parallel()
	srv, certPath := startEmbedded(t, loopback.Config{Max: sslsession.TLS12, NoTickets: true})
	r := runBinary(t, "bench", srv.Addr, "--cafile", certPath, "--duration", "200ms", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	requireBench(t, parseBench(t, r.stdout), "session_id", true)

	off, offCert := startEmbedded(t, loopback.Config{Max: sslsession.TLS12, NoTickets: true, NoCache: true})
	r = runBinary(t, "bench", off.Addr, "--cafile", offCert, "--duration", "200ms", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	requireBench(t, parseBench(t, r.stdout), "none", false)
	r = runBinary(t, "bench", off.Addr, "--cafile", offCert, "--duration", "100ms")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^ratio\s+n/a \(nothing resumed\)$`, r.stdout)

	s := startSServer(t)
	r = runBinary(t, "bench", s.addr, "--cafile", s.certPath, "--servername", "localhost", "--duration", "200ms", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseBench(t, r.stdout)
	assert.False(t, rep.Embedded)
	requireBench(t, rep, "ticket", true)
}

func TestVersion(t *testing.T) {
	r := runInProcess("version")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^built against\s+OpenSSL `+regexp.QuoteMeta(sslsession.BuildVersion().String())+`$`, r.stdout)
	require.Regexp(t, `(?m)^running with\s+`+regexp.QuoteMeta(sslsession.RuntimeVersionText())+`$`, r.stdout)
	require.Regexp(t, `(?m)^newest TLS\s+`+regexp.QuoteMeta(sslsession.MaxSupportedVersion().String())+`$`, r.stdout)

	b := runBinary(t, "version", "--json")
	require.Equal(t, 0, b.code, b.stderr)
	var rep versionReport
	dec := json.NewDecoder(strings.NewReader(b.stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep))
	assert.Equal(t, sslsession.BuildVersion().String(), rep.BuildOpenSSL)
	assert.Equal(t, sslsession.RuntimeVersion().String(), rep.RuntimeOpenSSL)
	assert.True(t, strings.HasPrefix(rep.RuntimeOpenSSLText, "OpenSSL "+rep.RuntimeOpenSSL), rep.RuntimeOpenSSLText)
	assert.True(t, strings.HasPrefix(rep.Go, "go"))
}

// TestHelp: every command has --help with an example.
func TestHelp(t *testing.T) {
	root := newRootCmd(nil, nil)
	names := []string{""}
	for _, c := range root.Commands() {
		names = append(names, c.Name())
	}
	require.Subset(t, names, []string{"check", "save", "resume", "inspect", "bench", "version"})
	for _, name := range names {
		args := []string{"--help"}
		if name != "" {
			args = []string{name, "--help"}
		}
		r := runInProcess(args...)
		require.Equal(t, 0, r.code, "%s: %s", name, r.stderr)
		require.Contains(t, r.stdout, "Usage:", name)
		require.Contains(t, r.stdout, "Examples:", name)
		require.Contains(t, r.stdout, "  sslsession "+name, name)
		require.Empty(t, r.stderr, name)
	}
}

// syncBuffer is a bytes.Buffer safe for a subprocess's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBenchSignal: bench stopped by SIGINT or SIGTERM prints what it
// measured, says it was interrupted, and exits with 128 + the signal.
func TestBenchSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig  syscall.Signal
		name string
		json bool
	}{{syscall.SIGINT, "SIGINT", false}, {syscall.SIGTERM, "SIGTERM", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"bench", "--duration", "1h", "--tls1.2", "--progress", "always"}
			if tc.json {
				args = append(args, "--json")
			}
			cmd := exec.Command(binPath, args...)
			var out, errb syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			require.NoError(t, cmd.Start())
			// The progress bar is drawn once handshakes are under way (the
			// signal handler is installed before the first one).
			deadline := time.Now().Add(20 * time.Second)
			for out.String() == "" && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			require.NoError(t, cmd.Process.Signal(tc.sig))
			err := cmd.Wait()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "stderr: %s", errb.String())
			require.Equal(t, 128+int(tc.sig), ee.ExitCode(), "stderr: %s", errb.String())
			requireError(t, result{out.String(), errb.String(), ee.ExitCode()}, 128+int(tc.sig),
				`^sslsession: interrupted by `+tc.name+` after \d+\.\d{3} s; the report covers what was measured until then$`)
			stdout := out.String()
			if tc.json {
				rep := parseBench(t, stdout[strings.Index(stdout, "{"):])
				assert.Equal(t, tc.name, rep.Interrupted)
				assert.Positive(t, rep.Full.Handshakes)
				assert.Positive(t, rep.Full.PerSecond)
				return
			}
			require.Regexp(t, `(?m)^interrupted\s+by SIGINT: partial results$`, stdout)
			require.Regexp(t, `(?m)^full handshakes\s+\d+\.\d/s \([1-9]\d* in \d+\.\d{3} s\)$`, stdout)
		})
	}
}
