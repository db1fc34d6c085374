package sslsession_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/redistest"
	"github.com/sslsession/sslsession/internal/sesstest"
)

func asError[T error](err error, target *T) bool { return errors.As(err, target) }

// statefulServerCtx makes a server context pinned to v that resumes by
// session ID (TLS 1.2) or stateful ticket (TLS 1.3): no stateless tickets.
func statefulServerCtx(t testing.TB, v sslsession.Version, sidCtx string) (*openssl.Ctx, *sslsession.Ctx) {
	t.Helper()
	oc := sesstest.ServerCtx(t, v, loopback.Config{NoTickets: true, SessionIDContext: []byte(sidCtx)})
	return oc, sesstest.NewCtx(t, oc)
}

// awaitStored waits until h's store holds s. A server's new-session
// callback, and so the store's Put, runs after OpenSSL has written its last
// flight to the socket: a client can be done before the session is stored.
func awaitStored(t testing.TB, rs *redistest.Server, h *cacheHost, s *sslsession.Session) {
	t.Helper()
	key := h.store.Key(sessionID(t, s))
	require.Eventually(t, func() bool {
		_, err := rs.Do(context.Background(), "GET", key)
		return err == nil
	}, 5*time.Second, 2*time.Millisecond, "session stored by the server")
}

func sessionID(t testing.TB, s *sslsession.Session) []byte {
	t.Helper()
	idInfo, err := s.Info()
	id := idInfo.ID
	require.NoError(t, err)
	require.NotEmpty(t, id)
	return id
}
