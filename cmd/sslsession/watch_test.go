package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parseWatch decodes check --watch --json, refusing unknown fields.
func parseWatch(t *testing.T, out string) watchReport {
	t.Helper()
	var rep watchReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep), "check --watch --json output: %s", out)
	return rep
}

// requireKeyNames checks that key names are 32 upper-case hex digits, each
// seen once, and that their tickets add up to the probes.
func requireKeyNames(t *testing.T, rep watchReport) {
	t.Helper()
	seen := map[string]bool{}
	tickets := 0
	for _, k := range rep.KeyNames {
		require.Regexp(t, `^[0-9A-F]{32}$`, k.Name)
		require.False(t, seen[k.Name], "key %s twice", k.Name)
		seen[k.Name] = true
		tickets += k.Tickets
		assert.LessOrEqual(t, k.FirstIssuedSeconds, k.LastIssuedSeconds)
	}
	assert.Equal(t, rep.Probes, tickets+rep.NoTicketProbes)
	assert.Zero(t, rep.NoTicketProbes)
}

// A server that never rotates: one key name for the whole watch, no
// rotation, and the first ticket still resumes at the end. Golden human
// report, times masked.
func TestCheckWatchNoRotation(t *testing.T) {
	t.Parallel()
	r := runBinary(t, "check", "--watch", "2s", "--every", "500ms", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseWatch(t, r.stdout)
	assert.Equal(t, 5, rep.Probes)
	require.Len(t, rep.KeyNames, 1)
	requireKeyNames(t, rep)
	assert.Zero(t, rep.Rotations)
	assert.Nil(t, rep.Overlap)
	k := rep.KeyNames[0]
	assert.Equal(t, 5, k.Tickets)
	assert.False(t, k.Whole)
	assert.Nil(t, k.RotatedOutSeconds)
	assert.Nil(t, k.ResumedAfterRotation)
	assert.Nil(t, k.StoppedResumingSeconds)
	assert.Nil(t, k.TurnSeconds)
	require.NotNil(t, rep.OldestResumedSeconds)
	assert.GreaterOrEqual(t, *rep.OldestResumedSeconds, 1.9)
	assert.Equal(t, k.Name, rep.OldestResumedKey)

	r = runBinary(t, "check", "--watch", "1s", "--every", "500ms", "--tls1.2")
	require.Equal(t, 0, r.code, r.stderr)
	golden(t, "check-watch-tls12.golden", regexp.MustCompile(`\b\d+\.\d( s|-)`).ReplaceAllString(r.stdout, "N.N$1"))
}

// examples/fleet-server with a one-second ticket interval: the key name
// changes about every second, the tickets of every earlier key still
// resume (the ring keeps decrypting), and the oldest ticket resumed is
// about as old as the watch.
func TestCheckWatchFleetRotation(t *testing.T) {
	t.Parallel()
	hosts, certPath := startFleetServers(t, 1, "-ticket-interval", "1s")
	r := runBinary(t, "check", hosts[0], "--watch", "5s", "--every", "250ms",
		"--cafile", certPath, "--servername", "localhost", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseWatch(t, r.stdout)
	requireKeyNames(t, rep)
	assert.GreaterOrEqual(t, rep.Rotations, 3, "%+v", rep.KeyNames)
	assert.Equal(t, len(rep.KeyNames)-1, rep.Rotations, "no key issues twice")
	require.NotNil(t, rep.Overlap)
	assert.True(t, *rep.Overlap)
	whole := 0
	for _, k := range rep.KeyNames[:len(rep.KeyNames)-1] {
		require.NotNil(t, k.ResumedAfterRotation, k.Name)
		assert.True(t, *k.ResumedAfterRotation, k.Name)
		assert.Nil(t, k.StoppedResumingSeconds, k.Name)
		if k.Whole {
			whole++
			// One interval, seen to within a probe.
			require.NotNil(t, k.TurnSeconds, k.Name)
			assert.InDelta(t, 1.0, *k.TurnSeconds, 0.35, k.Name)
			assert.LessOrEqual(t, k.IssuingSeconds, *k.TurnSeconds, k.Name)
		} else {
			assert.Nil(t, k.TurnSeconds, k.Name)
		}
	}
	assert.GreaterOrEqual(t, whole, 2)
	require.NotNil(t, rep.OldestResumedSeconds)
	assert.Greater(t, *rep.OldestResumedSeconds, 4.0)
	assert.Equal(t, rep.KeyNames[0].Name, rep.OldestResumedKey)
}

// nginx with one ssl_session_ticket_key file, replaced and reloaded during
// the watch: a new key name issues, and the old key's tickets no longer
// resume (nginx kept no copy of it): no overlap.
func TestCheckWatchNginxReload(t *testing.T) {
	t.Parallel()
	ng := startNginx(t)
	cmd := exec.Command(binPath, "check", ng.addr, "--watch", "4s", "--every", "250ms",
		"--cafile", ng.certPath, "--servername", "localhost", "--json")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Start())
	time.Sleep(1500 * time.Millisecond)
	// The watch waits while both nginx's old and new workers accept: one
	// probe could reach each and see the old key resume after the new one
	// issued, which this nginx does not do once the reload is done.
	require.NoError(t, cmd.Process.Signal(syscall.SIGSTOP))
	ng.newKey(t)
	ng.reload(t)
	require.NoError(t, cmd.Process.Signal(syscall.SIGCONT))
	require.NoError(t, cmd.Wait(), "stderr: %s", errb.String())
	rep := parseWatch(t, out.String())
	requireKeyNames(t, rep)
	require.Len(t, rep.KeyNames, 2, "%+v", rep.KeyNames)
	assert.Equal(t, 1, rep.Rotations)
	old := rep.KeyNames[0]
	assert.Equal(t, strings.ToUpper(fmt.Sprintf("%x", ng.keys[0][:16])), old.Name)
	assert.Equal(t, strings.ToUpper(fmt.Sprintf("%x", ng.keys[1][:16])), rep.KeyNames[1].Name)
	require.NotNil(t, old.ResumedAfterRotation)
	assert.False(t, *old.ResumedAfterRotation)
	require.NotNil(t, old.StoppedResumingSeconds)
	assert.GreaterOrEqual(t, *old.StoppedResumingSeconds, 1.0)
	require.NotNil(t, rep.Overlap)
	assert.False(t, *rep.Overlap)
	assert.Nil(t, rep.KeyNames[1].StoppedResumingSeconds)
}

// nginxServer is an nginx started by a test, on a free loopback port, with
// a temporary prefix, not as a daemon.
type nginxServer struct {
	bin, prefix, addr, certPath string
	keys                        [][]byte // the ticket key files written, in turn
}

func startNginx(t *testing.T) *nginxServer {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx" // not on PATH for non-root users
	}
	_, err = os.Stat(bin)
	require.NoError(t, err, "nginx is needed (make deps installs it)")
	_, certPath, keyPath := certFiles(t)
	ng := &nginxServer{bin: bin, prefix: t.TempDir(), certPath: certPath,
		addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	ng.newKey(t)
	conf := loopback.NginxConf(ng.prefix, "info", 64, fmt.Sprintf(`  server {
    listen %[2]s ssl;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    ssl_session_tickets on;
    ssl_session_ticket_key %[1]s/ticket.key;
    location / { return 200 "ok\n"; }
  }
`, ng.prefix, ng.addr, certPath, keyPath))
	require.NoError(t, os.WriteFile(filepath.Join(ng.prefix, "nginx.conf"), []byte(conf), 0o600))
	cmd := exec.Command(bin, ng.args()...)
	// Its own process group: the workers go with the master at the end.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	var log lockedLog
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			errLog, _ := os.ReadFile(filepath.Join(ng.prefix, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", log.String(), errLog)
		}
	})
	waitPort(t, ng.addr, exited)
	return ng
}

func (ng *nginxServer) args(extra ...string) []string {
	return append([]string{"-p", ng.prefix + "/", "-c", filepath.Join(ng.prefix, "nginx.conf"),
		"-e", filepath.Join(ng.prefix, "error.log")}, extra...)
}

// newKey writes a new 80-byte ticket key file (key name, HMAC and AES
// keys), replacing the last.
func (ng *nginxServer) newKey(t *testing.T) {
	t.Helper()
	key := make([]byte, 80)
	_, _ = rand.Read(key)
	tmp := filepath.Join(ng.prefix, "ticket.key.new")
	require.NoError(t, os.WriteFile(tmp, key, 0o600))
	require.NoError(t, os.Rename(tmp, filepath.Join(ng.prefix, "ticket.key")))
	ng.keys = append(ng.keys, key)
}

// reload runs nginx -s reload and waits until the new worker serves.
// reload reloads nginx and waits until its old workers have stopped
// accepting (they log "gracefully shutting down", or are gone): until then
// an old worker may still answer, without the new key.
func (ng *nginxServer) reload(t *testing.T) {
	t.Helper()
	old := ng.workers(t)
	out, err := exec.Command(ng.bin, ng.args("-s", "reload")...).CombinedOutput()
	require.NoError(t, err, "nginx -s reload: %s", out)
	require.Eventually(t, func() bool {
		log, _ := os.ReadFile(filepath.Join(ng.prefix, "error.log"))
		for _, pid := range old {
			_, err := os.Stat(filepath.Join("/proc", pid))
			if err == nil && !strings.Contains(string(log), pid+"#"+pid+": gracefully shutting down") {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "nginx's old workers %v did not stop accepting", old)
}

// workers are the process IDs of the nginx master's children.
func (ng *nginxServer) workers(t *testing.T) []string {
	t.Helper()
	master, err := os.ReadFile(filepath.Join(ng.prefix, "nginx.pid"))
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join("/proc", strings.TrimSpace(string(master)), "task",
		strings.TrimSpace(string(master)), "children"))
	require.NoError(t, err)
	return strings.Fields(string(b))
}
