package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// fleetBin is examples/fleet-server, built once beside the command's binary
// (TestMain removes that directory).
var fleetBin struct {
	once sync.Once
	path string
	err  error
}

// startFleetServers starts n examples/fleet-server processes on one new
// redis-server, with one certificate and sealing key, and returns their
// addresses and the certificate's file; extra flags go to every server.
func startFleetServers(t *testing.T, n int, extra ...string) ([]string, string) {
	t.Helper()
	fleetBin.once.Do(func() {
		fleetBin.path = filepath.Join(filepath.Dir(binPath), "fleet-server")
		out, err := exec.Command(goCommand(), "build", "-o", fleetBin.path, "../../examples/fleet-server").CombinedOutput()
		if err != nil {
			fleetBin.err = fmt.Errorf("go build examples/fleet-server: %v: %s", err, out)
		}
	})
	require.NoError(t, fleetBin.err)
	redisSrv := sesstest.StartRedis(t)
	_, certPath, keyPath := certFiles(t)
	seal := make([]byte, 32)
	_, _ = rand.Read(seal)
	var addrs []string
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		args := append([]string{"-addr", addr, "-redis", redisSrv.Addr, "-cert", certPath, "-key", keyPath,
			"-seal-key", hex.EncodeToString(seal)}, extra...)
		startProgram(t, addr, fleetBin.path, args...)
		addrs = append(addrs, addr)
	}
	return addrs, certPath
}

// lockedLog is a process's output, written by exec's copying goroutine.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// parseCross decodes check --json with several hosts, refusing unknown
// fields, and checks that the raw object has exactly the documented keys.
func parseCross(t *testing.T, out string) crossReport {
	t.Helper()
	var rep crossReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep), "check --json output: %s", out)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(out), &raw))
	keys := []string{"hosts", "openssl", "server_name", "verified", "protocols", "protocols_refused", "resumptions", "tls13_tickets_flooded", "resumed"}
	require.Len(t, raw, len(keys))
	for _, k := range keys {
		require.Contains(t, raw, k)
	}
	var entries []map[string]any
	require.NoError(t, json.Unmarshal(raw["resumptions"], &entries))
	for _, e := range entries {
		require.Len(t, e, 7, "resumption keys: %v", e)
		for _, k := range []string{"from", "to", "protocol", "mechanism", "resumed", "why_not", "handshake_ms"} {
			require.Contains(t, e, k)
		}
	}
	return rep
}

// wantProtocols are the protocols a check without a version flag covers:
// TLS 1.3 and TLS 1.2, or TLS 1.2 alone on OpenSSL 1.0.2.
func wantProtocols() []string {
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		return []string{"TLSv1.3", "TLSv1.2"}
	}
	return []string{"TLSv1.2"}
}

// requireMatrix checks that rep has, for every protocol and its mechanisms,
// one entry per ordered pair of hosts (a host with itself included), and
// that an entry resumed exactly when resumed(from, to) says.
func requireMatrix(t *testing.T, rep crossReport, resumed func(from, to string) bool) {
	t.Helper()
	type key struct{ from, to, proto, mech string }
	got := map[key]crossResumption{}
	for _, r := range rep.Resumptions {
		k := key{r.From, r.To, r.Protocol, r.Mechanism}
		_, dup := got[k]
		require.False(t, dup, "entry twice: %+v", r)
		got[k] = r
	}
	want := 0
	for _, p := range rep.Protocols {
		mechs := []string{mechSessionID, mechTicket}
		if p == "TLSv1.3" {
			mechs = []string{mechTicket}
		}
		for _, m := range mechs {
			for _, a := range rep.Hosts {
				for _, b := range rep.Hosts {
					want++
					r, ok := got[key{a, b, p, m}]
					require.True(t, ok, "no entry %s -> %s %s %s", a, b, p, m)
					assert.Equal(t, resumed(a, b), r.Resumed, "%s -> %s %s %s: %s", a, b, p, m, r.WhyNot)
					assert.Greater(t, r.HandshakeMS, 0.0)
					if r.Resumed {
						assert.Empty(t, r.WhyNot)
					} else {
						assert.Regexp(t, `^offered a `+regexp.QuoteMeta(p)+` session \(.*\); the server made a full handshake with `, r.WhyNot)
					}
				}
			}
		}
	}
	require.Len(t, rep.Resumptions, want)
}

// Two examples/fleet-server processes on one redis-server: every host
// resumes every host's sessions, by session ID (through Redis) and by ticket
// (shared ticket keys), under every protocol.
func TestCheckCrossHostFleet(t *testing.T) {
	t.Parallel()
	hosts, certPath := startFleetServers(t, 2)
	args := []string{"check", hosts[0], hosts[1], "--cafile", certPath, "--servername", "localhost", "--require-resume"}
	r := runBinary(t, append(args, "--json")...)
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseCross(t, r.stdout)
	assert.Equal(t, hosts, rep.Hosts)
	assert.Equal(t, wantProtocols(), rep.Protocols)
	assert.Empty(t, rep.ProtocolsRefused)
	assert.Equal(t, "localhost", rep.ServerName)
	assert.True(t, rep.Verified)
	assert.Equal(t, sslsession.RuntimeVersion().String(), rep.OpenSSL)
	requireMatrix(t, rep, func(_, _ string) bool { return true })
	assert.True(t, rep.Resumed)
	assert.NotContains(t, r.stdout, "master")

	// The human report, TLS 1.2 (the same on every OpenSSL).
	r = runBinary(t, append(args, "--tls1.2")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	golden(t, "check-crosshost-fleet-tls12.golden", r.stdout)
}

// Two unrelated openssl s_server processes: each resumes its own sessions,
// neither the other's; --require-resume exits 1.
func TestCheckCrossHostUnrelated(t *testing.T) {
	t.Parallel()
	a, b := startSServer(t), startSServer(t)
	// Two self-signed certificates with one subject cannot share a CA file
	// (OpenSSL finds the issuer by subject): the fleet test verifies.
	args := []string{"check", a.addr, b.addr, "--insecure", "--servername", "localhost", "--require-resume"}
	r := runBinary(t, append(args, "--json")...)
	require.Equal(t, exitNoResume, r.code, r.stderr)
	require.Equal(t, "sslsession: sessions were not resumed across every pair of hosts (--require-resume)\n", r.stderr)
	rep := parseCross(t, r.stdout)
	assert.Equal(t, wantProtocols(), rep.Protocols)
	requireMatrix(t, rep, func(from, to string) bool { return from == to })
	assert.False(t, rep.Resumed)

	// The human report, TLS 1.2; the ticket's length depends on the
	// session's encoding and is masked.
	r = runBinary(t, append(args, "--tls1.2")...)
	require.Equal(t, exitNoResume, r.code, r.stderr)
	golden(t, "check-crosshost-unrelated-tls12.golden", regexp.MustCompile(`ticket \d+ bytes`).ReplaceAllString(r.stdout, "ticket N bytes"))
	if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
		return
	}
	r = runBinary(t, append(args, "--tls1.3")...)
	require.Equal(t, exitNoResume, r.code, r.stderr)
	require.Regexp(t, `(?m)^protocols\s+TLSv1\.3$`, r.stdout)
	require.Regexp(t, `(?m)^TLSv1\.3 ticket\s+to A    to B\n  from A\s+yes     no\n  from B\s+no      yes$`, r.stdout)
	require.Regexp(t, `(?m)^  TLSv1\.3 ticket A -> B: offered a TLSv1\.3 session \(TLS_\w+, ticket \d+ bytes\); the server made a full handshake with 2 new ticket\(s\)$`, r.stdout)
	require.Regexp(t, `(?m)^result\s+cross-host resumption NOT confirmed \(nothing resumed for TLSv1\.3: A -> B, B -> A\)$`, r.stdout)
}

// A host that refuses a protocol the others speak: that protocol is not
// checked, and says why.
func TestCheckCrossHostProtocolRefused(t *testing.T) {
	t.Parallel()
	if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
		// Only TLS 1.2 exists: no host can refuse another protocol; a
		// pinned TLS 1.2 run against two TLS 1.2 servers checks TLS 1.2.
		require.Equal(t, sslsession.TLS12, sslsession.MaxSupportedVersion())
		a, b := startSServer(t, "-tls1_2"), startSServer(t, "-tls1_2")
		r := runBinary(t, "check", a.addr, b.addr, "--insecure", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		rep := parseCross(t, r.stdout)
		assert.Equal(t, []string{"TLSv1.2"}, rep.Protocols)
		assert.Empty(t, rep.ProtocolsRefused)
		assert.False(t, rep.Verified)
		return
	}
	a, b := startSServer(t, "-tls1_2"), startSServer(t)
	r := runBinary(t, "check", a.addr, b.addr, "--insecure", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseCross(t, r.stdout)
	assert.Equal(t, []string{"TLSv1.2"}, rep.Protocols)
	require.Len(t, rep.ProtocolsRefused, 1)
	assert.Equal(t, "TLSv1.3", rep.ProtocolsRefused[0].Protocol)
	assert.Equal(t, a.addr, rep.ProtocolsRefused[0].Host)
	assert.Regexp(t, `^TLS handshake with `+regexp.QuoteMeta(a.addr)+` failed: .*protocol version`, rep.ProtocolsRefused[0].Error)
	assert.False(t, rep.Verified)
	assert.Equal(t, "127.0.0.1", rep.ServerName, "the hosts' shared host part")
	requireMatrix(t, rep, func(from, to string) bool { return from == to })

	// Pinned to the protocol one host refuses: nothing to check, exit 2.
	r = runBinary(t, "check", a.addr, b.addr, "--insecure", "--tls1.3")
	requireError(t, r, exitError, `^sslsession: the hosts share no protocol: TLS handshake with `+regexp.QuoteMeta(a.addr)+` failed: .*protocol version`)
}

// Error paths of check with several hosts, each with its exit status.
func TestCheckCrossHostErrors(t *testing.T) {
	t.Parallel()
	srv := startSServer(t)
	down := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens
	requireError(t, runBinary(t, "check", srv.addr, down, "--insecure"), exitError,
		`^sslsession: connection to `+regexp.QuoteMeta(down)+` refused$`)
	requireError(t, runBinary(t, "check", down, srv.addr, "--insecure", "--json", "--require-resume"), exitError,
		`^sslsession: connection to `+regexp.QuoteMeta(down)+` refused$`)
	requireError(t, runBinary(t, "check", srv.addr, srv.addr), exitError,
		`^sslsession: host `+regexp.QuoteMeta(srv.addr)+` is given twice$`)
	requireError(t, runBinary(t, "check", srv.addr, "localhost:1"), exitError,
		`^sslsession: the hosts have different names \(127\.0\.0\.1, localhost\): give the one name their certificates share with --servername`)
	requireError(t, runBinary(t, "check", srv.addr, "nothostport"), exitError,
		`^sslsession: target "nothostport" is not host:port$`)
	requireError(t, runBinary(t, "check", srv.addr, down, "-n", "2"), exitError,
		`^sslsession: -n does not apply to several hosts: each pair is tried once per mechanism$`)
	// Certificates are checked for every host: the second host's is not in
	// the CA file.
	other := startSServer(t)
	requireError(t, runBinary(t, "check", srv.addr, other.addr, "--cafile", srv.certPath, "--servername", "localhost"), exitError,
		`^sslsession: certificate of `+regexp.QuoteMeta(other.addr)+` not trusted: `+regexp.QuoteMeta(sslsession.VerifyErrorString(18))+` \(X509 error 18\)$`)
}

// One server written two ways is one host: 127.0.0.1:P beside
// 127.0.0.1:0P, or beside localhost:P. Without the check, it resumed its
// own sessions and passed for a fleet (exit 0, "cross-host resumption
// confirmed").
func TestCheckCrossHostSameServer(t *testing.T) {
	t.Parallel()
	srv := startSServer(t)
	_, port, err := net.SplitHostPort(srv.addr)
	require.NoError(t, err)
	for _, other := range []string{"127.0.0.1:0" + port, "localhost:" + port} {
		r := runBinary(t, "check", srv.addr, other, "--insecure", "--servername", "localhost", "--require-resume")
		requireError(t, r, exitError, `^sslsession: `+regexp.QuoteMeta(srv.addr)+` and `+regexp.QuoteMeta(other)+
			` are one server \(both reach `+regexp.QuoteMeta(srv.addr)+`\): give each host once; cross-host resumption needs distinct servers$`)
		assert.Empty(t, r.stdout)
	}
}
