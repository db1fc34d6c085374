package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
)

// startHAProxy starts Debian's haproxy in TCP mode on a free loopback port,
// in front of backends with balance (roundrobin, random), and returns its
// address.
func startHAProxy(t *testing.T, balance string, backends []string) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		bin = "/usr/sbin/haproxy" // not on PATH for non-root users
	}
	_, err = os.Stat(bin)
	require.NoError(t, err, "haproxy is needed (make deps installs it)")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n")
	fmt.Fprintf(&cfg, "frontend vip\n  bind %s\n  default_backend fleet\nbackend fleet\n  balance %s\n", addr, balance)
	for i, b := range backends {
		fmt.Fprintf(&cfg, "  server s%d %s\n", i, b)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	require.NoError(t, os.WriteFile(path, []byte(cfg.String()), 0o600))
	cmd := exec.Command(bin, "-f", path, "-db") // -db: foreground
	var log lockedLog
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy log:\n%s", log.String())
		}
	})
	waitPort(t, addr, exited)
	return addr
}

// parseRate decodes check --rate --json, refusing unknown fields.
func parseRate(t *testing.T, out string) rateReport {
	t.Helper()
	var rep rateReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep), "check --rate --json output: %s", out)
	return rep
}

// rates maps "protocol mechanism" to a mechanism's result, checking that
// every protocol and mechanism was tried n times.
func rates(t *testing.T, rep rateReport, n int) map[string]rateMechanism {
	t.Helper()
	out := map[string]rateMechanism{}
	var protos []string
	for _, p := range rep.Protocols {
		protos = append(protos, p.Protocol)
		var mechs []string
		for _, m := range p.Mechanisms {
			mechs = append(mechs, m.Mechanism)
			assert.Equal(t, n, m.Attempted+m.NotOffered, "%s %s", p.Protocol, m.Mechanism)
			out[p.Protocol+" "+m.Mechanism] = m
		}
		if p.Protocol == "TLSv1.3" {
			assert.Equal(t, []string{mechTicket}, mechs)
		} else {
			assert.Equal(t, []string{mechSessionID, mechTicket}, mechs)
		}
	}
	assert.Equal(t, wantProtocols(), protos)
	return out
}

// Three examples/fleet-server processes behind haproxy's round robin share
// sessions and ticket keys: every offer resumes, whichever server it lands
// on, by ticket under each protocol and by session ID; one certificate and
// one ticket key name are seen.
func TestCheckRateFleet(t *testing.T) {
	t.Parallel()
	hosts, certPath := startFleetServers(t, 3)
	vip := startHAProxy(t, "roundrobin", hosts)
	n := 6
	r := runBinary(t, "check", vip, "--rate", fmt.Sprint(n), "--cafile", certPath, "--servername", "localhost",
		"--require-rate", "0.9", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseRate(t, r.stdout)
	for k, m := range rates(t, rep, n) {
		assert.Equal(t, 1.0, m.Rate, k)
		assert.Equal(t, n, m.Resumed, k)
	}
	assert.Len(t, rep.Certificates, 1)
	assert.Len(t, rep.TicketKeyNames, 1, "one ring key for the whole run: %v", rep.TicketKeyNames)
	assert.True(t, rep.MeetsRequiredRate)
	require.NotNil(t, rep.RequiredRate)
	assert.Equal(t, 0.9, *rep.RequiredRate)
	assert.Empty(t, rep.Interrupted)
	assert.Equal(t, vip, rep.Target)
}

// Three unrelated openssl s_server processes: with strict round robin each
// offer lands on the next server and nothing resumes; with balance random
// about one in three does. Three certificates, and as many ticket key
// names, are seen.
func TestCheckRateUnrelated(t *testing.T) {
	t.Parallel()
	var hosts []string
	for i := 0; i < 3; i++ {
		hosts = append(hosts, startSServer(t).addr)
	}
	t.Run("roundrobin", func(t *testing.T) {
		t.Parallel()
		vip := startHAProxy(t, "roundrobin", hosts)
		n := 6
		r := runBinary(t, "check", vip, "--rate", fmt.Sprint(n), "--insecure", "--require-rate", "0.5", "--json")
		require.Equal(t, exitNoResume, r.code, r.stderr)
		require.Equal(t, "sslsession: the resumption rate is below 0.50 under some protocol (--require-rate)\n", r.stderr)
		rep := parseRate(t, r.stdout)
		for k, m := range rates(t, rep, n) {
			assert.Equal(t, 0.0, m.Rate, k)
		}
		assert.Len(t, rep.Certificates, 3)
		assert.Len(t, rep.TicketKeyNames, 3)
		assert.False(t, rep.MeetsRequiredRate)

		r = runBinary(t, "check", vip, "--rate", "3", "--insecure", "--tls1.2")
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `(?m)^session-ID resumption\s+rate 0\.00 \(0 of 3 resumed\)$`, r.stdout)
		require.Regexp(t, `(?m)^server certificates\s+3 distinct$`, r.stdout)
		require.Regexp(t, `(?m)^note\s+3 servers answered and some rate is low: a fleet that shares no sessions resumes about 1/n of them$`, r.stdout)
	})
	t.Run("random", func(t *testing.T) {
		t.Parallel()
		vip := startHAProxy(t, "random", hosts)
		n := 30
		r := runBinary(t, "check", vip, "--rate", fmt.Sprint(n), "--insecure", "--tls1.2", "--json")
		require.Equal(t, 0, r.code, r.stderr)
		rep := parseRate(t, r.stdout)
		require.Len(t, rep.Protocols, 1)
		for _, m := range rep.Protocols[0].Mechanisms {
			// Binomial(30, 1/3): 0 or 21 and more have odds below 1e-5.
			assert.Equal(t, n, m.Attempted)
			assert.Greater(t, m.Resumed, 0, m.Mechanism)
			assert.Less(t, m.Resumed, 21, m.Mechanism)
		}
		assert.Len(t, rep.Certificates, 3)
	})
}

// One server, no balancer: every offer resumes; the human report is
// golden.
func TestCheckRateSingleHost(t *testing.T) {
	t.Parallel()
	srv := startSServer(t)
	r := runBinary(t, "check", srv.addr, "--rate", "4", "--cafile", srv.certPath, "--servername", "localhost", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseRate(t, r.stdout)
	for k, m := range rates(t, rep, 4) {
		assert.Equal(t, 1.0, m.Rate, k)
	}
	assert.Len(t, rep.Certificates, 1)
	assert.Len(t, rep.TicketKeyNames, 1)
	assert.Nil(t, rep.RequiredRate)
	assert.True(t, rep.MeetsRequiredRate)

	r = runBinary(t, "check", "--rate", "3", "--tls1.2")
	require.Equal(t, 0, r.code, r.stderr)
	golden(t, "check-rate-tls12.golden", r.stdout)
}

func TestCheckRateWatchUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "2", "--watch", "1s"}, `--rate and --watch cannot be used together`},
		{[]string{"127.0.0.1:1", "127.0.0.1:2", "--rate", "2"}, `--rate and --watch take one host:port`},
		{[]string{"--rate", "0"}, `--rate must be between 1 and 100000`},
		{[]string{"--rate", "2", "-n", "2"}, `-n does not apply to --rate or --watch`},
		{[]string{"--rate", "2", "--require-resume"}, `--require-resume does not apply`},
		{[]string{"--require-rate", "0.5"}, `--require-rate needs --rate`},
		{[]string{"--rate", "2", "--require-rate", "1.5"}, `--require-rate must be between 0 and 1`},
		{[]string{"--every", "1s"}, `--every needs --watch`},
		{[]string{"--watch", "1s", "--every", "2s"}, `--every must be between 100ms and --watch`},
		{[]string{"--watch", "1s", "--every", "1ms"}, `--every must be between 100ms and --watch`},
		{[]string{"--progress", "always"}, `--progress applies to --rate and --watch only`},
		{[]string{"--rate", "2", "--progress", "sometimes"}, `--progress must be auto, always or never`},
	} {
		r := runInProcess(append([]string{"check"}, c.args...)...)
		requireError(t, r, exitError, `^sslsession: `+c.want)
	}
	if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
		requireError(t, runInProcess("check", "--rate", "2", "--tls1.3"), exitError, `TLS 1\.3 is not available`)
	}
}
