package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
	"github.com/sslsession/sslsession/keyfile"
	"github.com/sslsession/sslsession/ticketring"
)

// The ring keeps nginx in step by itself: its OnPublish hook writes
// nginx's key files on every change and reloads nginx, and through two
// rotations a ticket from nginx resumes on the ring's sslsession server and
// back, each issuing under the ring's key of the moment.
func TestMixedFleetNginxFollowsRing(t *testing.T) {
	nginx := "/usr/sbin/nginx"
	v := sslsession.TLS12
	dir := t.TempDir()
	cert, key, _ := certFiles(t, dir)
	files := &keyfile.NginxFiles{Paths: []string{
		filepath.Join(dir, "ticket.0.key"), filepath.Join(dir, "ticket.1.key"), filepath.Join(dir, "ticket.2.key")}}

	var nginxPid atomic.Int64
	var reloads, slowReloads, hookErrors atomic.Int64
	var reloading atomic.Int32 // a reload is waiting for nginx's old workers
	srv := sesstest.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	interval := 4 * time.Second
	ring, err := ticketring.New(client, ticketring.Options{Prefix: t.Name(), Keys: [][]byte{make([]byte, 32)},
		Interval: interval, Lifetime: 30 * time.Second, Refresh: 200 * time.Millisecond,
		OnPublish: files.Hook(func() {
			if pid := nginxPid.Load(); pid != 0 {
				reloading.Add(1)
				defer reloading.Add(-1)
				reloads.Add(1)
				if reloadNginx(int(pid), filepath.Join(dir, "error.log")) != nil {
					slowReloads.Add(1) // an old worker outlived the wait
				}
			}
		}, func(error) { hookErrors.Add(1) })})
	require.NoError(t, err)
	t.Cleanup(func() { ring.Close() })
	require.NoError(t, ring.Sync(t.Context()))
	for _, p := range files.Paths {
		_, err := os.Stat(p)
		require.NoError(t, err, "the first Sync wrote nginx's files")
	}

	oc := sesstest.ServerCtx(t, v, loopback.Config{NoCache: true, SessionIDContext: nginxSessionIDContext(t)})
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	require.NoError(t, ring.Install(sc))
	ours := peer{name: "sslsession", addr: sesstest.Serve(t, oc).Addr}

	addr := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "tmp"), 0o700))
	require.NoError(t, os.WriteFile(conf, []byte(nginxConf(dir, addr, cert, key, v, files.Paths)), 0o600))
	cmd := startProc(t, addr, nginx, "-e", filepath.Join(dir, "startup.log"), "-p", dir, "-c", conf)
	nginxPid.Store(int64(cmd.Process.Pid))
	ng := peer{name: "nginx", addr: addr, http: true}

	var old *mixedClient
	prev, _ := sc.EncryptingTicketKey(time.Now())
	// A turn is short; on a loaded machine (the race detector, a reload
	// that waits for nginx's old workers) the next one may begin during a
	// turn's checks. The checks of names then start again with the next
	// turn; the resumptions hold across turns and are asserted each time.
	for rotation, again := 0, 0; rotation < 3; {
		// Start right after a rotation, with a whole turn ahead: the
		// background refresh has written the files and reloaded nginx.
		var name [16]byte
		require.Eventually(t, func() bool {
			name, _ = sc.EncryptingTicketKey(time.Now())
			return name != prev
		}, interval+2*time.Second, 20*time.Millisecond)
		prev = name
		sameTurn := func(got [16]byte) bool {
			if cur, _ := sc.EncryptingTicketKey(time.Now()); cur != name {
				again++
				require.Less(t, again, 5, "the next turn began during the checks too often")
				t.Logf("rotation %d: the next turn began during the checks; again with it", rotation)
				return false
			}
			require.Equal(t, name, got, "rotation %d", rotation)
			return true
		}
		// nginx serves under the ring's key once its reload is done:
		// three connections in a row under it, and no reload still
		// waiting for an old worker, which may accept a few more.
		probe, streak := newMixedClient(t, v), 0
		require.Eventually(t, func() bool {
			probe.dial(t, ng)
			if probe.lastName(t) != name {
				streak = 0
				return false
			}
			streak++
			return streak >= 3 && reloading.Load() == 0
		}, interval, 20*time.Millisecond, "rotation %d: nginx encrypts under the ring's key", rotation)
		mc := newMixedClient(t, v)
		require.False(t, mc.dial(t, ng))
		if !sameTurn(mc.lastName(t)) {
			continue
		}
		assert.Equal(t, resumes(ng, ours), mc.dial(t, ours), "rotation %d: nginx's ticket resumes on sslsession", rotation)
		mc = newMixedClient(t, v)
		require.False(t, mc.dial(t, ours))
		if !sameTurn(mc.lastName(t)) {
			continue
		}
		assert.Equal(t, resumes(ours, ng), mc.dial(t, ng), "rotation %d: sslsession's ticket resumes on nginx", rotation)
		if old != nil {
			assert.Equal(t, resumes(ng, ours), old.dial(t, ours), "rotation %d: a ticket from the last turn resumes", rotation)
		}
		old = newMixedClient(t, v)
		require.False(t, old.dial(t, ng))
		rotation++
	}
	assert.GreaterOrEqual(t, reloads.Load(), int64(3), "nginx reloaded on each change")
	assert.Zero(t, hookErrors.Load())
	t.Logf("%d reloads, %d of them with an old worker still up after 10 s", reloads.Load(), slowReloads.Load())
}

// reloadNginx sends nginx's master SIGHUP and waits until its old workers
// have stopped accepting (they log "gracefully shutting down", or are
// gone): until then an old worker may still answer under the old key.
func reloadNginx(master int, errorLog string) error {
	m := strconv.Itoa(master)
	b, err := os.ReadFile(filepath.Join("/proc", m, "task", m, "children"))
	if err != nil {
		return err
	}
	old := strings.Fields(string(b))
	if err := syscall.Kill(master, syscall.SIGHUP); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		log, _ := os.ReadFile(errorLog)
		done := true
		for _, pid := range old {
			if _, err := os.Stat(filepath.Join("/proc", pid)); err == nil &&
				!strings.Contains(string(log), pid+"#"+pid+": gracefully shutting down") {
				done = false
			}
		}
		if done {
			return nil
		}
	}
	return fmt.Errorf("nginx's old workers %v still accept", old)
}
