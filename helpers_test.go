package sslsession_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/leakcheck"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/redistest"
	"github.com/sslsession/sslsession/internal/sesstest"
)

func asError[T error](err error, target *T) bool { return errors.As(err, target) }

// Helpers for the cache tests (ctx_test.go, bridge_test.go,
// bridge_stress_test.go, fleet_redis_test.go, clientcache_test.go):
// contexts, dials and the leak check. Their names start with "cache"; what
// test/ needs too is in internal/sesstest.

// cacheServerCtx makes a server context pinned to v that resumes by session
// ID (TLS 1.2) or stateful ticket (TLS 1.3): no stateless tickets.
func cacheServerCtx(t testing.TB, v sslsession.Version, sidCtx string) (*openssl.Ctx, *sslsession.Ctx) {
	t.Helper()
	oc, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{Min: v, Max: v, NoTickets: true, SessionIDContext: []byte(sidCtx)})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	return oc, sc
}

func cacheClientCtx(t testing.TB, v sslsession.Version) *openssl.Ctx {
	t.Helper()
	oc, err := loopback.ClientCtx(sesstest.Cert(t), v, v)
	require.NoError(t, err)
	// The server's only group is P-256: a client offering its default
	// X25519 key share gets a HelloRetryRequest, and OpenSSL then looks a
	// TLS 1.3 ticket up twice (once per ClientHello). Offer P-256 at once.
	require.NoError(t, oc.SetEllipticCurve(openssl.Prime256v1))
	return oc
}

// cacheDial makes one connection offering sess, echoes a message (so the
// server has finished its handshake, and stored its session, when it
// returns) and returns whether the session was reused and the connection's
// resumable session (owned; with TLS 1.3 read from a ticket).
func cacheDial(t testing.TB, addr string, cctx *openssl.Ctx, sess *sslsession.Session) (bool, *sslsession.Session) {
	t.Helper()
	reused, next, err := cacheTryDial(addr, cctx, sess)
	require.NoError(t, err)
	return reused, next
}

func cacheTryDial(addr string, cctx *openssl.Ctx, sess *sslsession.Session) (bool, *sslsession.Session, error) {
	c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost", Session: sess, Timeout: 10 * time.Second})
	if err != nil {
		return false, nil, err
	}
	defer c.Close()
	reused := c.SessionReused()
	if _, err := c.Write([]byte("ping")); err != nil {
		return false, nil, err
	}
	next, err := c.AwaitSession(5 * time.Second)
	if err != nil {
		return false, nil, err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		next.Close()
		return false, nil, fmt.Errorf("echo: %q, %v", buf, err)
	}
	return reused, next, nil
}

// cacheSettle is the leak check: after the test, every owned session is
// given back once the garbage collector has run.
func cacheSettle(t testing.TB) {
	t.Helper()
	require.Zero(t, leakcheck.Settle(), "owned sessions still live after GC")
}

func cacheLeakCheck(t testing.TB) {
	t.Cleanup(func() { cacheSettle(t) })
}

// cacheAwaitStored waits until h's store holds s. A server's new-session
// callback, and so the store's Put, runs after OpenSSL has written its last
// flight to the socket: a client can be done before the session is stored.
func cacheAwaitStored(t testing.TB, rs *redistest.Server, h *cacheHost, s *sslsession.Session) {
	t.Helper()
	key := h.store.Key(cacheSessionID(t, s))
	require.Eventually(t, func() bool {
		_, err := rs.Do(context.Background(), "GET", key)
		return err == nil
	}, 5*time.Second, 2*time.Millisecond, "session stored by the server")
}

func cacheSessionID(t testing.TB, s *sslsession.Session) []byte {
	t.Helper()
	id, err := s.ID()
	require.NoError(t, err)
	require.NotEmpty(t, id)
	return id
}
