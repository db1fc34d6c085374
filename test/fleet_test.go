package test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// The README's "Sharing sessions across servers" example, run as written:
// two examples/fleet-server processes on one redis-server, with the same
// certificate and sealing key; a session made on host A resumes on host B.
func TestFleetServerExample(t *testing.T) {
	dir := t.TempDir()
	bin := fleetServerBinary(t)

	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	require.NoError(t, os.WriteFile(cert, sesstest.Cert(t).CertPEM, 0o600))
	require.NoError(t, os.WriteFile(key, sesstest.Cert(t).KeyPEM, 0o600))
	seal := make([]byte, 32)
	_, _ = rand.Read(seal)
	redis := sesstest.StartRedis(t)

	start := func(name string) string {
		addr := fmt.Sprintf("127.0.0.1:%d", sesstest.FreePort(t))
		cmd := exec.Command(bin, "-addr", addr, "-redis", redis.Addr, "-cert", cert, "-key", key,
			"-seal-key", hex.EncodeToString(seal))
		var log lockedBuffer
		cmd.Stdout, cmd.Stderr = &log, &log
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("%s log:\n%s", name, log.String())
			}
		})
		waitListening(t, addr, nil, &log)
		return addr
	}
	hostA, hostB := start("host A"), start("host B")

	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			cctx, err := loopback.ClientCtx(sesstest.Cert(t), v, v)
			require.NoError(t, err)
			a := sesstest.Dial(t, hostA, cctx, nil)
			echo(t, a)
			sess, err := a.AwaitSession(5 * time.Second)
			require.NoError(t, err)
			defer sess.Close()
			require.False(t, a.SessionReused())
			require.NoError(t, a.Close())

			b := sesstest.Dial(t, hostB, cctx, sess)
			echo(t, b)
			assert.True(t, b.SessionReused(), "a session made on host A must resume on host B")
			info, err := sess.Info()
			require.NoError(t, err)
			assert.Equal(t, v, info.Protocol)
		})
	}
	// The fleet's ticket ring is in Redis. So are the sessions by ID on
	// 1.1.1 and later, one per protocol (OpenSSL hands the store a session
	// that comes with a ticket too); 1.0.2 gives a TLS 1.2 session that
	// has a ticket no session ID, so there is nothing to store.
	ring, err := redis.Do(t.Context(), "KEYS", "{fleet-server-tickets}:*")
	require.NoError(t, err)
	assert.Equal(t, "{fleet-server-tickets}:ring", ring)
	keys, err := redis.Do(t.Context(), "KEYS", "fleet-server:*")
	require.NoError(t, err)
	if sesstest.Is102() {
		assert.Empty(t, keys)
	} else {
		assert.Len(t, strings.Fields(keys), len(sesstest.Versions(t)), "%q", keys)
	}
}
