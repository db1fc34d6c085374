package sslsession_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/leakcheck"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/redistest"
)

func asError[T error](err error, target *T) bool { return errors.As(err, target) }

// Helpers for the cache tests (ctx_test.go, bridge_test.go,
// bridge_stress_test.go, fleet_redis_test.go, clientcache_test.go): a
// certificate, contexts, a server and dials. Their names start with
// "cache".

var (
	cacheCertOnce sync.Once
	cacheCertVal  *loopback.Cert
)

func cacheCert(t testing.TB) *loopback.Cert {
	cacheCertOnce.Do(func() {
		c, err := loopback.SelfSigned()
		if err != nil {
			panic(err)
		}
		cacheCertVal = c
	})
	return cacheCertVal
}

// cacheVersions are the protocol versions of the linked OpenSSL. On 1.0.2
// there is no TLS 1.3, which the check asserts rather than skips.
func cacheVersions(t testing.TB) []sslsession.Version {
	if cacheIs102() {
		require.Equal(t, sslsession.TLS12, sslsession.MaxSupportedVersion(), "OpenSSL 1.0.2 speaks up to TLS 1.2")
		return []sslsession.Version{sslsession.TLS12}
	}
	require.Equal(t, sslsession.TLS13, sslsession.MaxSupportedVersion())
	return []sslsession.Version{sslsession.TLS12, sslsession.TLS13}
}

func cacheIs102() bool {
	v := sslsession.RuntimeVersion()
	return v.Major() == 1 && v.Minor() == 0
}

// cacheServerCtx makes a server context pinned to v that resumes by session
// ID (TLS 1.2) or stateful ticket (TLS 1.3): no stateless tickets.
func cacheServerCtx(t testing.TB, v sslsession.Version, sidCtx string) (*openssl.Ctx, *sslsession.Ctx) {
	t.Helper()
	oc, err := loopback.ServerCtx(cacheCert(t), loopback.Config{Min: v, Max: v, NoTickets: true, SessionIDContext: []byte(sidCtx)})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	return oc, sc
}

func cacheClientCtx(t testing.TB, v sslsession.Version) *openssl.Ctx {
	t.Helper()
	oc, err := loopback.ClientCtx(cacheCert(t), v, v)
	require.NoError(t, err)
	// The server's only group is P-256: a client offering its default
	// X25519 key share gets a HelloRetryRequest, and OpenSSL then looks a
	// TLS 1.3 ticket up twice (once per ClientHello). Offer P-256 at once.
	require.NoError(t, oc.SetEllipticCurve(openssl.Prime256v1))
	return oc
}

func cacheServe(t testing.TB, oc *openssl.Ctx) *loopback.Server {
	t.Helper()
	srv, err := loopback.Serve(oc, cacheCert(t))
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv
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
