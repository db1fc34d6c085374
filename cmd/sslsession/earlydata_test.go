package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// startEarlyLibServer serves TLS 1.3 with early data on a context of this
// library: it reads the early data (ReadEarlyData), completes the
// handshake and closes. The hosts made with one key and one cache form a
// fleet: tickets from one resume on the others.
func startEarlyLibServer(t *testing.T, key sslsession.TicketKey, cache sslsession.ReplayCache, noAntiReplay bool) string {
	t.Helper()
	cert, _, _ := certFiles(t)
	oc, err := loopback.ServerCtx(cert, loopback.Config{Min: sslsession.TLS13, Max: sslsession.TLS13, SessionIDContext: []byte("early")})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	require.NoError(t, sc.SetMaxEarlyData(4096, 0))
	require.NoError(t, sc.SetTicketKeys([]sslsession.TicketRingKey{{Key: key, Encrypt: true}}))
	if cache != nil {
		require.NoError(t, sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{ReplayCache: cache}))
	}
	if noAntiReplay {
		sc.Options(sslsession.OptionNoAntiReplay, 0)
	}
	addr := sesstest.ServeTCP(t, func(raw net.Conn) {
		c, err := sslsession.Server(raw, oc)
		if err != nil {
			raw.Close()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.EarlyData(1 << 20); err != nil {
			return
		}
		if c.Handshake() == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	})
	return addr
}

func earlyJSON(t *testing.T, r result) earlyReport {
	t.Helper()
	var rep earlyReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return rep
}

// Against openssl s_server -early_data: accepted, and the replay refused
// (s_server's tickets are single use: the replayed ticket is not resumed).
// With -no_anti_replay the replay is accepted, and --require-no-replay
// exits 1.
func TestCheckEarlyDataSServer(t *testing.T) {
	if is102() {
		r := runInProcess("check", "127.0.0.1:1", "--early-data")
		requireError(t, r, exitError, "early data needs OpenSSL 1.1.1 or later")
		return
	}
	s := startSServer(t, "-tls1_3", "-early_data")
	r := runInProcess("check", s.addr, "--cafile", s.certPath, "--servername", "localhost", "--early-data", "--require-no-replay", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := earlyJSON(t, r)
	require.Equal(t, uint32(16384), rep.MaxEarlyData)
	require.True(t, rep.Accepted)
	require.Len(t, rep.Replays, 1)
	require.False(t, rep.Replays[0].Accepted)
	require.Contains(t, rep.Replays[0].Result, "ticket not resumed")

	open := startSServer(t, "-tls1_3", "-early_data", "-no_anti_replay")
	r = runInProcess("check", open.addr, "--cafile", open.certPath, "--servername", "localhost", "--early-data", "--require-no-replay")
	require.Equal(t, exitNoResume, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "REPLAY ACCEPTED")
	require.Contains(t, r.stderr, "--require-no-replay")
}

// Against this library's fleet: three hosts sharing a ticket key and a
// replay cache refuse every replay, the ticket still resumed and the early
// data rejected; without the cache and with OpenSSL's anti-replay off, all
// three accept it.
func TestCheckEarlyDataLibraryFleet(t *testing.T) {
	if is102() {
		return // TestCheckEarlyDataSServer covers 1.0.2
	}
	for _, protected := range []bool{true, false} {
		key, err := sslsession.NewTicketKey()
		require.NoError(t, err)
		var cache sslsession.ReplayCache
		if protected {
			cache = sslsession.NewMemoryReplayCache(0)
		}
		var hosts []string
		for i := 0; i < 3; i++ {
			hosts = append(hosts, startEarlyLibServer(t, key, cache, !protected))
		}
		args := append([]string{"check"}, hosts...)
		r := runInProcess(append(args, "--insecure", "--early-data", "--require-no-replay", "--json")...)
		rep := earlyJSON(t, r)
		require.True(t, rep.Accepted, "protected=%t", protected)
		require.Equal(t, uint32(4096), rep.MaxEarlyData)
		require.Len(t, rep.Replays, 3)
		for _, p := range rep.Replays {
			require.Equal(t, !protected, p.Accepted, "%s: %s", p.Host, p.Result)
			if protected {
				require.Contains(t, p.Result, "ticket resumed, early data rejected")
			}
		}
		if protected {
			require.Equal(t, 0, r.code, r.stderr)
		} else {
			require.Equal(t, exitNoResume, r.code)
		}
	}
}

// The flags that go with --early-data only, and a server that allows none.
func TestCheckEarlyDataUsage(t *testing.T) {
	requireError(t, runInProcess("check", "--require-no-replay"), exitError, "need --early-data")
	requireError(t, runInProcess("check", "--early-data"), exitError, "needs host:port")
	requireError(t, runInProcess("check", "127.0.0.1:1", "--early-data", "--rate", "2"), exitError, "cannot be used with --rate")
	requireError(t, runInProcess("check", "127.0.0.1:1", "--early-data", "--tls1.2"), exitError, "TLS 1.3")
	if is102() {
		return
	}
	srv, certPath := startEmbedded(t, loopback.Config{Min: sslsession.TLS13, Max: sslsession.TLS13})
	r := runInProcess("check", srv.Addr, "--cafile", certPath, "--servername", "localhost", "--early-data")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "allow no early data")
	require.True(t, strings.Contains(r.stdout, "max_early_data          0 bytes"), r.stdout)
}

// The parser of a server's first flight never reads past its input.
func TestParseServerFlightHostile(t *testing.T) {
	for _, b := range [][]byte{nil, {22, 3, 3, 0, 50}, {22, 3, 3, 0, 4, 2, 0, 0, 200}, {22, 3, 3, 0, 1, 2},
		append([]byte{22, 3, 3, 0, 40, 2, 0, 0, 36, 3, 3}, make([]byte, 34)...)} {
		_, ok := parseServerFlight(b)
		require.False(t, ok, "%x", b)
	}
}

// lookProgram finds a server program that may be outside a non-root PATH.
func lookProgram(t *testing.T, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		bin = "/usr/sbin/" + name
	}
	_, err = os.Stat(bin)
	require.NoError(t, err, "%s is needed (make deps installs it)", name)
	return bin
}

// startProgram runs bin with args until the test ends and waits for addr.
func startProgram(t *testing.T, addr, bin string, args ...string) *lockedLog {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var log lockedLog
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", bin, log.String())
		}
	})
	waitPort(t, addr, exited)
	return &log
}

// nginx with ssl_early_data on: it takes early data and answers it at
// once, and it accepts the replay: its access log has the request twice.
// nginx documents this: requests in early data are open to replay, and the
// application is to look at $ssl_early_data.
func TestCheckEarlyDataNginx(t *testing.T) {
	if is102() {
		return // no TLS 1.3
	}
	bin := lookProgram(t, "nginx")
	_, certPath, keyPath := certFiles(t)
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen %[2]s ssl;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    ssl_protocols TLSv1.3;
    ssl_early_data on;
    location / { return 200 "ok\n"; }
  }
}
`, dir, addr, certPath, keyPath)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600))
	startProgram(t, addr, bin, "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	r := runInProcess("check", addr, "--cafile", certPath, "--servername", "localhost", "--early-data", "--require-no-replay", "--early-request", `HEAD /zero-rtt HTTP/1.1\r\nHost: localhost\r\n\r\n`)
	require.Equal(t, exitNoResume, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "max_early_data          16384 bytes")
	require.Contains(t, r.stdout, "REPLAY ACCEPTED")
	require.Eventually(t, func() bool {
		log, _ := os.ReadFile(filepath.Join(dir, "access.log"))
		return strings.Count(string(log), "HEAD /zero-rtt") == 2
	}, 5*time.Second, 20*time.Millisecond, "nginx ran the request twice: the original and the replay")
}

// haproxy with allow-0rtt: OpenSSL in haproxy accepts the replayed early
// data (its single-use tickets are off: the replay's EncryptedExtensions
// carry early_data); haproxy documents 0-RTT as open to replay and offers
// wait-for-handshake for requests that are not safe to repeat.
func TestCheckEarlyDataHAProxy(t *testing.T) {
	if is102() {
		return // no TLS 1.3
	}
	bin := lookProgram(t, "haproxy")
	cert, _, _ := certFiles(t)
	dir := t.TempDir()
	pemPath := filepath.Join(dir, "both.pem")
	require.NoError(t, os.WriteFile(pemPath, append(append([]byte{}, cert.CertPEM...), cert.KeyPEM...), 0o600))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf("global\n  maxconn 64\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n"+
		"frontend fe\n  bind %s ssl crt %s allow-0rtt ssl-min-ver TLSv1.3\n  http-request return status 200 content-type text/plain string ok\n", addr, pemPath)
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	startProgram(t, addr, bin, "-f", cfgPath, "-db")
	r := runInProcess("check", addr, "--insecure", "--servername", "localhost", "--early-data", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := earlyJSON(t, r)
	require.Positive(t, rep.MaxEarlyData)
	require.True(t, rep.Accepted)
	require.True(t, rep.ReplayAccepted, "%+v", rep.Replays)
}
