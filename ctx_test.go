package sslsession_test

import (
	"context"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// The SSL_CTX session cache: its controls, counters, internal cache, expiry
// and bound (ctx.go).

func TestCacheCtxControls(t *testing.T) {
	sesstest.LeakCheck(t)
	oc, err := openssl.NewCtx()
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	require.Same(t, oc, sc.OpenSSL())

	require.Equal(t, sslsession.CacheServer, sc.CacheMode(), "OpenSSL's default mode")
	prev := sc.SetCacheMode(sslsession.CacheBoth | sslsession.CacheNoAutoClear)
	require.Equal(t, sslsession.CacheServer, prev)
	require.Equal(t, sslsession.CacheBoth|sslsession.CacheNoAutoClear, sc.CacheMode())
	require.Equal(t, sslsession.CacheNoInternalLookup|sslsession.CacheNoInternalStore, sslsession.CacheNoInternal)
	require.Equal(t, sslsession.CacheClient|sslsession.CacheServer, sslsession.CacheBoth)

	require.Equal(t, 20480, sc.CacheSize(), "SSL_SESSION_CACHE_MAX_SIZE_DEFAULT")
	require.Equal(t, 20480, sc.SetCacheSize(7))
	require.Equal(t, 7, sc.CacheSize())

	// The default timeout is the method's: 300 s for 1.0.2's SSLv23_method,
	// 7200 s for 1.1.0+'s TLS_method.
	def := 7200 * time.Second
	if sesstest.Is102() {
		def = 300 * time.Second
	}
	require.Equal(t, def, sc.Timeout(), "OpenSSL's default session timeout")
	require.Equal(t, def, sc.SetTimeout(42*time.Second+900*time.Millisecond))
	require.Equal(t, 42*time.Second, sc.Timeout(), "whole seconds")

	require.NoError(t, sc.SetSessionIDContext([]byte("ctx")))
	require.ErrorIs(t, sc.SetSessionIDContext(nil), sslsession.ErrInvalidArgument)
	require.ErrorIs(t, sc.SetSessionIDContext(make([]byte, 33)), sslsession.ErrInvalidArgument)
	require.NoError(t, sc.SetSessionIDContext(make([]byte, 32)))

	before := sc.Options(0, 0)
	after := sc.Options(sslsession.OptionNoTicket, 0)
	require.NotZero(t, after&sslsession.OptionNoTicket)
	require.Equal(t, before, sc.Options(0, sslsession.OptionNoTicket)&^sslsession.OptionNoTicket)
	require.Zero(t, sc.Options(0, 0)&sslsession.OptionNoTicket)

	require.Equal(t, sslsession.Stats{}, sc.Metrics().Cache, "a new context has counted nothing")
	require.Equal(t, sslsession.StoreStats{}, sc.Metrics().Store)
	require.Nil(t, sc.Store())
	require.NoError(t, sc.ClearStore(context.Background()), "no store: nothing to clear")
}

// Every SSL_CTX_sess_* counter, after real handshakes on both sides.
func TestCacheStats(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			oc, sc := sesstest.StatefulServerCtx(t, v, "stats")
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)
			cs, err := sslsession.NewCtx(cctx)
			require.NoError(t, err)
			cs.SetCacheMode(sslsession.CacheClient | sslsession.CacheNoInternalStore)

			_, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			reused, s2 := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
			require.True(t, reused)
			// A session ID the server never issued: a miss.
			bogus := cacheForeignSession(t, v)
			reused, s3 := sesstest.Roundtrip(t, srv.Addr, cctx, bogus)
			require.False(t, reused)
			for _, s := range []*sslsession.Session{s1, s2, s3, bogus} {
				s.Close()
			}
			require.NoError(t, srv.Close())

			st := sc.Metrics().Cache
			t.Logf("server: %+v", st)
			require.Equal(t, int64(3), st.Accept)
			require.Equal(t, int64(3), st.AcceptGood)
			require.Equal(t, int64(1), st.Hits)
			require.Equal(t, int64(1), st.Misses)
			require.Zero(t, st.CbHits, "no store")
			require.Zero(t, st.Timeouts)
			require.Zero(t, st.CacheFull)
			require.Zero(t, st.Connect)
			require.Zero(t, st.AcceptRenegotiate)
			// TLS 1.2: one session per full handshake; TLS 1.3 stateful
			// tickets: one entry per ticket, two tickets per handshake.
			perHandshake := int64(1)
			if v == sslsession.TLS13 {
				perHandshake = 2
			}
			require.GreaterOrEqual(t, st.Number, 2*perHandshake)

			cst := cs.Metrics().Cache
			t.Logf("client: %+v", cst)
			require.Equal(t, int64(3), cst.Connect)
			require.Equal(t, int64(3), cst.ConnectGood)
			require.Zero(t, cst.Accept)
			require.Zero(t, cst.Number, "no internal store on the client")

			// The cache bound: one entry left, the rest counted as full.
			sc.SetCacheSize(1)
			srv2 := sesstest.Serve(t, oc)
			_, s4 := sesstest.Roundtrip(t, srv2.Addr, cctx, nil)
			s4.Close()
			require.NoError(t, srv2.Close())
			st = sc.Metrics().Cache
			require.LessOrEqual(t, st.Number, int64(1))
			require.Positive(t, st.CacheFull)
		})
	}
}

// cacheForeignSession makes a resumable session on a server nobody else
// uses, so offering it elsewhere is a miss. It is decoded from DER: bound to
// no context, usable by any client.
func cacheForeignSession(t testing.TB, v sslsession.Version) *sslsession.Session {
	t.Helper()
	oc, _ := sesstest.StatefulServerCtx(t, v, "foreign")
	srv := sesstest.Serve(t, oc)
	_, c := sesstest.Roundtrip(t, srv.Addr, sesstest.ClientCtx(t, v), nil)
	require.NoError(t, srv.Close())
	d, err := sslsession.ParseDER(mustDER(t, c))
	require.NoError(t, err)
	c.Close()
	return d
}

// cacheServerSession makes a TLS 1.2 session on a new server with session
// ID context sidCtx and returns the client's session (of cctx) and the
// server's (from the server's store, decoded from DER).
func cacheServerSession(t testing.TB, cctx *openssl.Ctx, sidCtx string) (client, server *sslsession.Session) {
	t.Helper()
	oc, sc := sesstest.StatefulServerCtx(t, sslsession.TLS12, sidCtx)
	store := sesstest.NewRecordStore()
	require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{}))
	srv := sesstest.Serve(t, oc)
	_, client = sesstest.Roundtrip(t, srv.Addr, cctx, nil)
	require.NoError(t, srv.Close())
	value, err := store.MemoryStore.Get(context.Background(), sesstest.SessionID(t, client))
	require.NoError(t, err)
	der, ok := sslsession.OpenStored(sesstest.SessionID(t, client), value)
	require.True(t, ok, "the bridge's tag verifies")
	server, err = sslsession.ParseDER(der)
	require.NoError(t, err)
	return client, server
}

// AddSession, RemoveSession and Flush on the internal cache, with sessions
// decoded from DER.
func TestCacheAddRemoveFlush(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	oc, sc := sesstest.StatefulServerCtx(t, v, "addremove")
	sc.SetTimeout(100 * time.Second)
	srv := sesstest.Serve(t, oc)
	cctx := sesstest.ClientCtx(t, v)
	_, cs := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
	defer cs.Close()
	require.Equal(t, int64(1), sc.Metrics().Cache.Number)

	// A session the server does not hold yet: made by another server
	// context of the same session ID context.
	otherClient, other := cacheServerSession(t, cctx, "addremove")
	defer otherClient.Close()
	defer other.Close()
	added, err := sc.AddSession(other)
	require.NoError(t, err)
	require.True(t, added)
	require.Equal(t, int64(2), sc.Metrics().Cache.Number)
	added, err = sc.AddSession(other)
	require.NoError(t, err)
	require.False(t, added, "already there")

	// It now resumes on this server.
	reused, s2 := sesstest.Roundtrip(t, srv.Addr, cctx, otherClient)
	require.True(t, reused, "a session added with AddSession resumes")
	s2.Close()

	removed, err := sc.RemoveSession(other)
	require.NoError(t, err)
	require.True(t, removed)
	removed, err = sc.RemoveSession(other)
	require.NoError(t, err)
	require.False(t, removed)
	resumableInfo, err := other.Info()
	resumable := resumableInfo.Resumable
	require.NoError(t, err)
	require.False(t, resumable, "SSL_CTX_remove_session marks the session not resumable")
	require.Equal(t, int64(1), sc.Metrics().Cache.Number)

	// Flush: nothing has expired now; everything has in 101 s.
	require.NoError(t, sc.Flush(time.Now()))
	require.Equal(t, int64(1), sc.Metrics().Cache.Number)
	require.NoError(t, sc.Flush(time.Now().Add(101*time.Second)))
	require.Zero(t, sc.Metrics().Cache.Number, "flush removes expired sessions")
	require.Zero(t, sc.Metrics().Cache.Timeouts, "flush does not count timeouts")
	reused, s3 := sesstest.Roundtrip(t, srv.Addr, cctx, cs)
	require.False(t, reused, "a flushed session does not resume")
	s3.Close()

	closed, err := sslsession.ParseDER(mustDER(t, cs))
	require.NoError(t, err)
	closed.Close()
	_, err = sc.AddSession(closed)
	require.ErrorIs(t, err, sslsession.ErrClosed)
	_, err = sc.RemoveSession(closed)
	require.ErrorIs(t, err, sslsession.ErrClosed)
}

func mustDER(t testing.TB, s *sslsession.Session) []byte {
	t.Helper()
	der, err := s.MarshalBinary()
	require.NoError(t, err)
	return der
}

// Expiry in the internal cache: sessions expire by their own time and
// timeout, and Flush removes exactly the expired ones.
func TestCacheFlushExpiry(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			oc, sc := sesstest.StatefulServerCtx(t, v, "expiry")
			sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoAutoClear)
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)

			sc.SetTimeout(10 * time.Second)
			_, short := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer short.Close()
			n := sc.Metrics().Cache.Number
			require.Positive(t, n)
			sc.SetTimeout(1000 * time.Second)
			_, long := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer long.Close()
			require.Equal(t, 2*n, sc.Metrics().Cache.Number)

			require.NoError(t, sc.Flush(time.Now().Add(20*time.Second)))
			require.Equal(t, n, sc.Metrics().Cache.Number, "only the short-lived sessions expired")
			if v == sslsession.TLS12 {
				reused, s := sesstest.Roundtrip(t, srv.Addr, cctx, short)
				require.False(t, reused)
				s.Close()
				// The long-lived session still resumes.
				reused, s = sesstest.Roundtrip(t, srv.Addr, cctx, long)
				require.True(t, reused)
				s.Close()
			}
			require.NoError(t, sc.Flush(time.Now().Add(2000*time.Second)))
			require.Zero(t, sc.Metrics().Cache.Number)
		})
	}
}

// The internal cache's bound, SSL_CTX_sess_set_cache_size(3): the oldest
// sessions go first, each counted in CacheFull. OpenSSL 1.0.2 holds up to
// the bound; 3.0 evicts while the count (the new session already counted)
// is at the bound, so it holds one session less.
func TestCacheSizeBound(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	oc, sc := sesstest.StatefulServerCtx(t, v, "bound")
	require.Equal(t, 20480, sc.SetCacheSize(3))
	srv := sesstest.Serve(t, oc)
	cctx := sesstest.ClientCtx(t, v)
	var sessions []*sslsession.Session
	for i := 0; i < 5; i++ {
		_, s := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
		sessions = append(sessions, s)
	}
	// SSL_CTX_sess_set_cache_size(n): 1.0.2 and 1.1.1 hold n sessions;
	// 3.x evicts when the cache reaches n and holds n-1.
	held := 3
	if sslsession.RuntimeVersion().Major() >= 3 {
		held = 2
	}
	st := sc.Metrics().Cache
	require.Equal(t, int64(held), st.Number)
	require.Equal(t, int64(5-held), st.CacheFull)
	// Newest first: the held ones resume, the evicted ones do not.
	for i := len(sessions) - 1; i >= 0; i-- {
		reused, next := sesstest.Roundtrip(t, srv.Addr, cctx, sessions[i])
		require.Equal(t, i >= len(sessions)-held, reused, "session %d", i)
		next.Close()
		sessions[i].Close()
	}
}

// SetProtocolRange replaces the range before it on every version: a
// server narrowed to TLS 1.1 and widened again speaks TLS 1.2 (on 1.0.2
// the range is SSL_OP_NO_* options, which must be cleared as well as set).
func TestSetProtocolRangeWidens(t *testing.T) {
	const tls11 = sslsession.Version(0x0302)
	sctx := sesstest.ServerCtx(t, sslsession.TLS12, loopback.Config{})
	ssc := sesstest.NewCtx(t, sctx)
	require.NoError(t, ssc.SetProtocolRange(tls11, tls11))
	require.NoError(t, ssc.SetProtocolRange(tls11, sslsession.TLS12))
	srv := sesstest.Serve(t, sctx)
	c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: sesstest.ClientCtx(t, sslsession.TLS12), ServerName: "localhost", Timeout: 10 * time.Second})
	require.NoError(t, err)
	c.Close()
}

// SSL_CTX_set_ciphersuites(3): the TLS 1.3 suites, in order; an empty list,
// or one OpenSSL refuses (1.1.1: any unknown name; 3.x: no known name), is
// refused and changes nothing; TLS 1.2 is not affected. On 1.0.2, which has
// no TLS 1.3, ErrUnsupported.
func TestSetCipherSuites(t *testing.T) {
	sesstest.LeakCheck(t)
	sc := sesstest.NewCtx(t, sesstest.ClientCtx(t, sslsession.TLS12))
	require.ErrorIs(t, sc.SetCipherSuites(""), sslsession.ErrInvalidArgument)
	require.ErrorIs(t, sc.SetCipherSuites("TLS_AES_128_GCM_SHA256\x00"), sslsession.ErrInvalidArgument)
	if sesstest.Is102() {
		require.ErrorIs(t, sc.SetCipherSuites("TLS_AES_128_GCM_SHA256"), sslsession.ErrUnsupported)
		return
	}
	suite := func(t *testing.T, addr string, ctx *openssl.Ctx) uint16 {
		t.Helper()
		_, sess := sesstest.Roundtrip(t, addr, ctx, nil)
		defer sess.Close()
		info, err := sess.Info()
		require.NoError(t, err)
		return uint16(info.CipherID)
	}
	srv := sesstest.Serve(t, sesstest.ServerCtx(t, sslsession.TLS13, loopback.Config{}))
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	csc := sesstest.NewCtx(t, cctx)
	require.Equal(t, uint16(0x1302), suite(t, srv.Addr, cctx), "OpenSSL's default: TLS_AES_256_GCM_SHA384 first")

	require.NoError(t, csc.SetCipherSuites("TLS_AES_128_GCM_SHA256"))
	require.Equal(t, uint16(0x1301), suite(t, srv.Addr, cctx))
	require.NoError(t, csc.SetCipherSuites("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"))
	require.Equal(t, uint16(0x1303), suite(t, srv.Addr, cctx), "the client's first choice")

	err := csc.SetCipherSuites("TLS_NOT_A_SUITE")
	require.ErrorIs(t, err, sslsession.ErrInvalidArgument)
	var se *sslsession.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, "SSL_CTX_set_ciphersuites", se.Func)
	require.ErrorIs(t, csc.SetCipherSuites(""), sslsession.ErrInvalidArgument)
	require.Equal(t, uint16(0x1303), suite(t, srv.Addr, cctx), "a refused list changes nothing")

	// A known name beside an unknown one: 1.1.1 refuses the list, 3.x
	// skips the unknown name.
	err = csc.SetCipherSuites("TLS_NOT_A_SUITE:TLS_AES_128_GCM_SHA256")
	if sslsession.RuntimeVersion().Major() == 1 {
		require.ErrorIs(t, err, sslsession.ErrInvalidArgument)
		require.Equal(t, uint16(0x1303), suite(t, srv.Addr, cctx), "a refused list changes nothing")
	} else {
		require.NoError(t, err)
		require.Equal(t, uint16(0x1301), suite(t, srv.Addr, cctx), "the known name is kept")
	}

	// The server's list bounds what it accepts: a client offering only
	// suites the server left out fails its handshake.
	sctx := sesstest.ServerCtx(t, sslsession.TLS13, loopback.Config{})
	require.NoError(t, sesstest.NewCtx(t, sctx).SetCipherSuites("TLS_AES_256_GCM_SHA384"))
	only := sesstest.Serve(t, sctx)
	require.Equal(t, uint16(0x1302), suite(t, only.Addr, sesstest.ClientCtx(t, sslsession.TLS13)))
	_, _, err = sesstest.TryRoundtrip(only.Addr, cctx, nil)
	require.ErrorIs(t, err, sslsession.ErrHandshake)

	// TLS 1.2 keeps the cipher list, whatever the TLS 1.3 suites.
	srv12 := sesstest.Serve(t, sesstest.ServerCtx(t, sslsession.TLS12, loopback.Config{}))
	c12 := sesstest.ClientCtx(t, sslsession.TLS12)
	require.NoError(t, c12.SetCipherList("ECDHE-ECDSA-AES128-GCM-SHA256"))
	require.NoError(t, sesstest.NewCtx(t, c12).SetCipherSuites("TLS_CHACHA20_POLY1305_SHA256"))
	require.Equal(t, uint16(0xc02b), suite(t, srv12.Addr, c12))
}
