package sslsession_test

import (
	"encoding/json"
	"expvar"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// The context's counters published through expvar (metrics.go).

func TestCachePublishExpvar(t *testing.T) {
	sesstest.LeakCheck(t)
	oc, sc := sesstest.StatefulServerCtx(t, sslsession.TLS12, "expvar")
	require.NoError(t, sc.SetStore(sslsession.NewMemoryStore(0), sslsession.StoreOptions{}))
	name := fmt.Sprintf("sslsession_test_%d", time.Now().UnixNano())
	require.NoError(t, sslsession.PublishExpvar(name, sc))
	require.NoError(t, sslsession.PublishExpvar(name, sc), "publishing twice does not panic")
	srv := sesstest.Serve(t, oc)
	_, s := sesstest.Roundtrip(t, srv.Addr, sesstest.ClientCtx(t, sslsession.TLS12), nil)
	s.Close()

	var m sslsession.Metrics
	require.NoError(t, json.Unmarshal([]byte(expvar.Get(name).String()), &m))
	require.True(t, m.HasStore)
	require.Equal(t, int64(1), m.Cache.AcceptGood)
	require.Equal(t, int64(1), m.Store.Puts)
	require.Equal(t, sc.Metrics(), m)
	raw := expvar.Get(name).String()
	for _, field := range []string{`"cache"`, `"store"`, `"hits"`, `"cb_hits"`, `"errors"`, `"invalid"`} {
		require.Contains(t, raw, field)
	}

	// Pointing the name at another context.
	_, sc2 := sesstest.StatefulServerCtx(t, sslsession.TLS12, "expvar2")
	require.NoError(t, sslsession.PublishExpvar(name, sc2))
	require.NoError(t, json.Unmarshal([]byte(expvar.Get(name).String()), &m))
	require.False(t, m.HasStore)
	require.Zero(t, m.Cache.AcceptGood)
	runtime.KeepAlive(sc2)

	// A name published by other code is refused, not a panic.
	taken := name + "_taken"
	expvar.NewInt(taken)
	require.Error(t, sslsession.PublishExpvar(taken, sc))
	require.ErrorIs(t, sslsession.PublishExpvar(name, nil), sslsession.ErrNilCtx)
}
