package test

// Session tests of OpenSSL's test/sslapitest.c, written again for this
// API. Each names the test it follows; what it checks is this package's
// behaviour on the running OpenSSL, each side asserted where versions
// differ.

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// ticketCount dials addr through cache, echoes a message and returns how
// many resumable sessions (TLS 1.3: tickets) the cache was given meanwhile,
// and whether the connection resumed. The server writes its tickets right
// after the handshake, before the echo: once the echo is read, every ticket
// has been.
func ticketCount(t *testing.T, addr string, cache *sslsession.ClientCache) (int64, bool) {
	t.Helper()
	before := cache.Stats().Puts
	c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Cache: cache, ServerName: "localhost", Timeout: 10 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))
	return cache.Stats().Puts - before, c.SessionReused()
}

// After OpenSSL test/sslapitest.c, test_stateful_tickets and
// test_stateless_tickets: a server set to send 0, 1 or 3 TLS 1.3 tickets
// (SSL_CTX_set_num_tickets) sends that many after a full handshake, stateless
// or stateful, and the client receives them all; a stateful server keeps
// one session per ticket in its cache. On OpenSSL 1.0.2, which has no TLS
// 1.3, the setting is refused with ErrUnsupported.
func TestPeerOpenSSLNumTickets(t *testing.T) {
	sesstest.LeakCheck(t)
	if sesstest.Is102() {
		sc := sesstest.NewCtx(t, sesstest.ServerCtx(t, sslsession.TLS12, loopback.Config{}))
		require.ErrorIs(t, sc.SetNumTickets(1), sslsession.ErrUnsupported)
		assert.Zero(t, sc.NumTickets())
		require.ErrorIs(t, sc.SetNumTickets(-1), sslsession.ErrInvalidArgument)
		return
	}
	v := sslsession.TLS13
	for _, stateful := range []bool{false, true} {
		name := "stateless"
		if stateful {
			name = "stateful"
		}
		for _, n := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				oc := sesstest.ServerCtx(t, v, loopback.Config{NoTickets: stateful, SessionIDContext: []byte("sslapi-tickets")})
				sc := sesstest.NewCtx(t, oc)
				assert.Equal(t, 2, sc.NumTickets(), "OpenSSL's default")
				require.ErrorIs(t, sc.SetNumTickets(-1), sslsession.ErrInvalidArgument)
				assert.Equal(t, 2, sc.NumTickets(), "a refused setting changes nothing")
				require.NoError(t, sc.SetNumTickets(n))
				assert.Equal(t, n, sc.NumTickets())
				srv := sesstest.Serve(t, oc)
				cache, err := sslsession.NewClientCache(sesstest.ClientCtx(t, v), 4)
				require.NoError(t, err)
				defer cache.Close()

				got, reused := ticketCount(t, srv.Addr, cache)
				assert.False(t, reused)
				assert.Equal(t, int64(n), got, "tickets after a full handshake")
				if stateful {
					assert.Equal(t, int64(n), sc.Metrics().Cache.Number, "one cached session per stateful ticket")
				}
				if n == 0 {
					assert.Zero(t, cache.Len(), "nothing to resume")
					return
				}
				got, reused = ticketCount(t, srv.Addr, cache)
				assert.True(t, reused, "a received ticket resumes")
				assert.Equal(t, int64(1), got, "tickets after a resumption")
				// Set to 0 later, the server sends none after a resumption either.
				require.NoError(t, sc.SetNumTickets(0))
				got, reused = ticketCount(t, srv.Addr, cache)
				assert.True(t, reused)
				assert.Zero(t, got, "no ticket after a resumption with 0")
			})
		}
	}
}

// cacheMode names the client or server side caches of execute_test_session:
// OpenSSL's internal cache, an external one, or both.
type cacheMode struct {
	name          string
	internal, ext bool
}

var cacheModes = []cacheMode{
	{"int", true, false}, // test_session_with_only_int_cache
	{"ext", false, true}, // test_session_with_only_ext_cache
	{"both", true, true}, // test_session_with_both_cache
}

// echoVia dials addr with cctx, through cache when it is not nil, offering
// sess, echoes a message and returns whether the connection resumed and its
// resumable session (TLS 1.3: from a ticket).
func echoVia(t *testing.T, addr string, cctx *openssl.Ctx, cache *sslsession.ClientCache, sess *sslsession.Session) (bool, *sslsession.Session) {
	t.Helper()
	c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, Cache: cache, Session: sess, ServerName: "localhost", Timeout: 10 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	next, err := c.AwaitSession(5 * time.Second)
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))
	return c.SessionReused(), next
}

// After OpenSSL test/sslapitest.c, execute_test_session, client side
// (test_session_with_only_int_cache, _only_ext_cache, _both_cache): a client
// keeps its sessions in OpenSSL's internal cache (CacheClient), in a
// ClientCache (OpenSSL's new-session callback), or both. A full handshake
// gives the external cache one session per ticket, TLS 1.2 one; a
// resumption gives TLS 1.3 one more ticket (and TLS 1.2 its session back,
// put by Dial); RemoveSession takes a session out of the internal cache and
// makes it not resumable, so offering it is a full handshake. OpenSSL
// 1.0.2 marks it so only when its cache held it: a session kept only in a
// ClientCache stays resumable there.
func TestPeerOpenSSLClientSessionCaches(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		tickets := int64(1) // sessions per full handshake: TLS 1.3 sends 2 tickets
		if v == sslsession.TLS13 {
			tickets = 2
		}
		for _, m := range cacheModes {
			t.Run(v.String()+"/"+m.name, func(t *testing.T) {
				srv := sesstest.Serve(t, sesstest.ServerCtx(t, v, loopback.Config{SessionIDContext: []byte("sslapi-client-caches")}))
				cctx := sesstest.ClientCtx(t, v)
				ccs := sesstest.NewCtx(t, cctx)
				var cache *sslsession.ClientCache
				if m.ext {
					var err error
					cache, err = sslsession.NewClientCache(cctx, 8)
					require.NoError(t, err)
					defer cache.Close()
				}
				if m.internal {
					ccs.SetCacheMode(sslsession.CacheClient) // the internal store on, with or without the ClientCache
				}
				key := sslsession.ClientCacheKey("localhost", srv.Addr)
				puts := func() int64 {
					if cache == nil {
						return 0
					}
					return cache.Stats().Puts
				}
				fresh := func() (bool, *sslsession.Session) { // a connection offering nothing
					if cache != nil {
						cache.Remove(key)
					}
					return echoVia(t, srv.Addr, cctx, cache, nil)
				}

				p := puts()
				reused, s1 := fresh()
				defer s1.Close()
				require.False(t, reused)
				if m.internal {
					added, err := ccs.AddSession(s1)
					require.NoError(t, err)
					assert.False(t, added, "the handshake already put it in the internal cache")
				}
				if m.ext {
					assert.Equal(t, tickets, puts()-p, "the external cache got each new session")
				}

				p = puts()
				reused, s2 := echoVia(t, srv.Addr, cctx, cache, s1)
				defer s2.Close()
				require.True(t, reused)
				if m.ext {
					// TLS 1.3: the resumption's one new ticket. TLS 1.2:
					// OpenSSL reports no new session, but Dial puts the
					// resumed one back, under the same ID.
					assert.Equal(t, int64(1), puts()-p)
				}

				p = puts()
				reused, s3 := fresh()
				defer s3.Close()
				require.False(t, reused)
				if m.ext {
					assert.Equal(t, tickets, puts()-p)
				}
				removed, err := ccs.RemoveSession(s3)
				require.NoError(t, err)
				assert.Equal(t, m.internal, removed, "only the internal cache held it")
				removed, err = ccs.RemoveSession(s3)
				require.NoError(t, err)
				assert.False(t, removed, "removed once")
				// 1.1.0 and later mark the session not resumable whether
				// or not the cache held it; 1.0.2 only when it did.
				want := !m.internal && sesstest.Is102()
				okInfo, err := s3.Info()
				ok := okInfo.Resumable
				require.NoError(t, err)
				assert.Equal(t, want, ok, "resumable after RemoveSession")
				reused, s4 := echoVia(t, srv.Addr, cctx, cache, s3)
				defer s4.Close()
				assert.Equal(t, want, reused, "a removed session is a full handshake")
			})
		}
	}
}

// After OpenSSL test/sslapitest.c, test_session_timeout: sessions added to
// a cache with short timeouts leave it in the order they expire, whatever
// the order they were added in; a flush removes exactly the expired ones
// (SSL_CTX_flush_sessions) and the Timeouts counter does not count them.
// The owned sessions stay readable and are no longer resumable.
func TestPeerOpenSSLSessionTimeout(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	srv := sesstest.Serve(t, sesstest.ServerCtx(t, v, loopback.Config{NoTickets: true}))
	cctx := sesstest.ClientCtx(t, v)
	ccs := sesstest.NewCtx(t, cctx)
	require.Zero(t, ccs.Metrics().Cache.Number)

	base := time.Now().Add(-100 * time.Second).Truncate(time.Second)
	sess := make([]*sslsession.Session, 3)
	for i := range sess {
		_, s := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
		defer s.Close()
		require.NoError(t, s.SetCreated(base))
		require.NoError(t, s.SetTimeout(time.Duration(i+1)*10*time.Second)) // expires base+10s, +20s, +30s
		require.ErrorIs(t, s.SetTimeout(time.Millisecond), sslsession.ErrInvalidArgument)
		sess[i] = s
	}
	for _, i := range []int{2, 0, 1} { // added out of order
		added, err := ccs.AddSession(sess[i])
		require.NoError(t, err)
		require.True(t, added)
	}
	require.Equal(t, int64(3), ccs.Metrics().Cache.Number)

	present := func(i int) bool { // AddSession reports false for a session already held
		added, err := ccs.AddSession(sess[i])
		require.NoError(t, err)
		return !added
	}
	require.NoError(t, ccs.Flush(base.Add(5*time.Second)))
	assert.Equal(t, int64(3), ccs.Metrics().Cache.Number, "none expired yet")
	require.NoError(t, ccs.Flush(base.Add(15*time.Second)))
	assert.Equal(t, int64(2), ccs.Metrics().Cache.Number, "the first to expire is gone")
	assert.True(t, present(1))
	assert.True(t, present(2))
	require.NoError(t, ccs.Flush(base.Add(25*time.Second)))
	assert.Equal(t, int64(1), ccs.Metrics().Cache.Number)
	assert.True(t, present(2), "the last to expire stays")
	require.NoError(t, ccs.Flush(base.Add(35*time.Second)))
	assert.Zero(t, ccs.Metrics().Cache.Number)
	assert.Zero(t, ccs.Metrics().Cache.Timeouts, "flushes are not counted as timeouts")
	for _, s := range sess {
		okInfo, err := s.Info()
		ok := okInfo.Resumable
		require.NoError(t, err)
		assert.False(t, ok, "expired and flushed: no longer resumable, though still readable")
		_, err = s.Info()
		require.NoError(t, err)
	}
}

// After OpenSSL test/sslapitest.c, test_multi_resume: one session offered
// again and again resumes every time: by session ID (TLS 1.2), by TLS 1.2
// ticket, by TLS 1.3 stateless ticket, and by TLS 1.3 stateful ticket too.
// OpenSSL 1.1.1, 3.0 and 3.5 keep a stateful TLS 1.3 session in the cache
// after it is used (they drop it on use only to refuse replayed early data,
// which these servers do not accept), so tickets are single-use only by the
// client's choice (ClientCache hands a TLS 1.3 session out once).
func TestPeerOpenSSLMultiResume(t *testing.T) {
	sesstest.LeakCheck(t)
	type kase struct {
		name      string
		v         sslsession.Version
		noTickets bool
	}
	cases := []kase{{"TLSv1.2/session ID", sslsession.TLS12, true}, {"TLSv1.2/ticket", sslsession.TLS12, false}}
	if !sesstest.Is102() {
		cases = append(cases, kase{"TLSv1.3/stateless", sslsession.TLS13, false}, kase{"TLSv1.3/stateful", sslsession.TLS13, true})
	}
	const rounds = 5
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			oc := sesstest.ServerCtx(t, k.v, loopback.Config{NoTickets: k.noTickets, SessionIDContext: []byte("sslapi-multi")})
			sc := sesstest.NewCtx(t, oc)
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, k.v)
			reused, first := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer first.Close()
			require.False(t, reused)
			info, err := first.Info()
			require.NoError(t, err)
			// A TLS 1.3 stateful ticket carries the session's ID.
			assert.Equal(t, !k.noTickets || k.v == sslsession.TLS13, info.HasTicket)
			var got []bool
			for range rounds {
				reused, next := sesstest.Roundtrip(t, srv.Addr, cctx, first)
				next.Close()
				got = append(got, reused)
			}
			assert.Equal(t, []bool{true, true, true, true, true}, got, "resumed, offer by offer")
			assert.Equal(t, int64(rounds), sc.Metrics().Cache.Hits)
		})
	}
}

// After OpenSSL test/sslapitest.c, test_ticket_lifetime: the lifetime hint
// a server puts in its ticket is its session timeout (Ctx.SetTimeout): as
// it is for TLS 1.2, capped at a week (RFC 8446 section 4.6.1) for TLS 1.3.
// The client's session keeps its own context's timeout.
func TestPeerOpenSSLTicketLifetime(t *testing.T) {
	sesstest.LeakCheck(t)
	const week = 7 * 24 * time.Hour
	for _, v := range sesstest.Versions(t) {
		for _, timeout := range []time.Duration{100 * time.Second, 2 * week} {
			t.Run(fmt.Sprintf("%s/%s", v, timeout), func(t *testing.T) {
				oc := sesstest.ServerCtx(t, v, loopback.Config{SessionIDContext: []byte("sslapi-lifetime")})
				sc := sesstest.NewCtx(t, oc)
				sc.SetTimeout(timeout)
				srv := sesstest.Serve(t, oc)
				cctx := sesstest.ClientCtx(t, v)
				_, s := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
				defer s.Close()
				info, err := s.Info()
				require.NoError(t, err)
				require.True(t, info.HasTicket)
				want := timeout
				if v == sslsession.TLS13 {
					want = min(timeout, week)
				}
				assert.Equal(t, want, info.TicketLifetimeHint)
				assert.Equal(t, sesstest.NewCtx(t, cctx).Timeout(), info.Timeout, "the client's own timeout")
			})
		}
	}
}

// After OpenSSL test/sslapitest.c, execute_test_session, server side
// (test_session_with_only_int_cache, _only_ext_cache, _both_cache): a server
// keeps its sessions in OpenSSL's internal cache, in a SessionStore (with
// CacheNoInternal), or both. TLS 1.2 resumes by session ID: the store gets
// the new session, and is asked for it on resumption only when the internal
// cache does not answer first. TLS 1.3 resumes by stateless ticket: the
// store is given each ticket's session but never asked.
func TestPeerOpenSSLServerSessionCaches(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		for _, m := range cacheModes {
			t.Run(v.String()+"/"+m.name, func(t *testing.T) {
				oc := sesstest.ServerCtx(t, v, loopback.Config{NoTickets: v == sslsession.TLS12, SessionIDContext: []byte("sslapi-server-caches")})
				sc := sesstest.NewCtx(t, oc)
				store := sesstest.NewRecordStore()
				if m.ext {
					require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{}))
				}
				if !m.internal {
					sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
				}
				srv := sesstest.Serve(t, oc)
				cctx := sesstest.ClientCtx(t, v)

				reused, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
				defer s1.Close()
				require.False(t, reused)
				tickets := 1 // new sessions per full handshake: TLS 1.3 sends 2 tickets
				if v == sslsession.TLS13 {
					tickets = 2
				}
				internal := int64(0) // a stateless TLS 1.3 session is not cached
				if m.internal && v == sslsession.TLS12 {
					internal = 1
				}
				wantPuts := 0
				if m.ext {
					wantPuts = tickets
				}
				puts, gets, _ := store.Counts()
				assert.Equal(t, wantPuts, puts, "the store got each new session")
				assert.Zero(t, gets)
				assert.Equal(t, internal, sc.Metrics().Cache.Number)

				reused, s2 := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
				defer s2.Close()
				require.True(t, reused)
				wantGets := 0
				if m.ext {
					if v == sslsession.TLS13 {
						wantPuts++ // the resumption's ticket
					} else if !m.internal {
						wantGets = 1 // only the store holds the session
					}
				}
				puts, gets, dels := store.Counts()
				assert.Equal(t, wantPuts, puts)
				assert.Equal(t, wantGets, gets, "the store is asked only when the internal cache cannot answer")
				assert.Zero(t, dels)
				st := sc.Metrics().Cache
				assert.Equal(t, int64(1), st.Hits)
				assert.Equal(t, int64(wantGets), st.CbHits)
				if v == sslsession.TLS13 {
					return // a stateless ticket cannot be taken back
				}

				// Removed from every cache the server has, the session is
				// a full handshake.
				if m.internal {
					require.NoError(t, sc.Flush(time.Now().Add(365*24*time.Hour)))
					require.Zero(t, sc.Metrics().Cache.Number)
				}
				if m.ext {
					require.NoError(t, store.MemoryStore.Delete(context.Background(), sesstest.SessionID(t, s1)))
				}
				reused, s3 := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
				defer s3.Close()
				assert.False(t, reused, "removed on the server: not resumed")
			})
		}
	}
}

// After OpenSSL test/sslapitest.c, execute_test_session, the step guarded
// by OPENSSL_NO_TLS1_1: the server is reconfigured to speak at most TLS
// 1.1 and a client offers its TLS 1.2 session. Where the handshake fails
// (1.0.2: the versions do not match; 3.x: TLS 1.1 is refused at the
// default security level), the session leaves the client's caches,
// internal and external; 1.1.1 makes a full TLS 1.1 handshake instead.
// Once the server speaks TLS 1.2 again, a new handshake is a full one.
func TestPeerOpenSSLSessionVersionMismatch(t *testing.T) {
	sesstest.LeakCheck(t)
	const tls11 = sslsession.Version(0x0302)
	for _, m := range cacheModes {
		t.Run(m.name, func(t *testing.T) {
			// Sessions by ID, as sslapitest has it for TLS 1.2 (SSL_OP_NO_TICKET).
			sctx := sesstest.ServerCtx(t, sslsession.TLS12, loopback.Config{NoTickets: true, SessionIDContext: []byte("sslapi-version-mismatch")})
			ssc := sesstest.NewCtx(t, sctx)
			require.NoError(t, ssc.SetProtocolRange(tls11, sslsession.TLS12))
			srv := sesstest.Serve(t, sctx)

			cctx, err := loopback.ClientCtx(sesstest.Cert(t), tls11, sslsession.TLS12)
			require.NoError(t, err)
			ccs := sesstest.NewCtx(t, cctx)
			var cache *sslsession.ClientCache
			if m.ext {
				cache, err = sslsession.NewClientCache(cctx, 8)
				require.NoError(t, err)
				defer cache.Close()
			}
			if m.internal {
				ccs.SetCacheMode(sslsession.CacheClient)
			}
			key := sslsession.ClientCacheKey("localhost", srv.Addr)

			reused, s1 := echoVia(t, srv.Addr, cctx, cache, nil)
			defer s1.Close()
			require.False(t, reused)
			info, err := s1.Info()
			require.NoError(t, err)
			require.Equal(t, sslsession.TLS12, info.Protocol)
			if m.ext {
				held := cache.Get(key)
				require.NotNil(t, held, "the external cache holds the TLS 1.2 session")
				held.Close()
			}

			require.NoError(t, ssc.SetProtocolRange(tls11, tls11))
			offer := s1
			if m.ext {
				offer = nil // Dial takes it from the cache
			}
			c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, Cache: cache, Session: offer, ServerName: "localhost", Timeout: 10 * time.Second})
			if rv := sslsession.RuntimeVersion(); rv.Major() == 1 && rv.Minor() == 1 {
				// 1.1.1 allows TLS 1.1 at its default security level,
				// and its server does not resume a session across
				// versions: a full TLS 1.1 handshake.
				require.NoError(t, err)
				defer c.Close()
				assert.False(t, c.SessionReused())
				cs, err := c.Session()
				require.NoError(t, err)
				info, err := cs.Info()
				require.NoError(t, err)
				assert.Equal(t, tls11, info.Protocol)
			} else {
				// 1.0.2 resumes and the client refuses the mismatch
				// (wrong version number); 3.x refuses TLS 1.1 at its
				// default security level, the way sslapitest forces a
				// failure.
				require.Error(t, err, "a TLS 1.2 session offered to a TLS 1.1 server")
				require.ErrorIs(t, err, sslsession.ErrHandshake)
				if m.ext {
					assert.Nil(t, cache.Get(key), "the failed session left the external cache")
				}
				if m.internal {
					removed, err := ccs.RemoveSession(s1)
					require.NoError(t, err)
					assert.False(t, removed, "OpenSSL already took it out of its internal cache")
				}
			}

			require.NoError(t, ssc.SetProtocolRange(tls11, sslsession.TLS12))
			reused, s2 := echoVia(t, srv.Addr, cctx, cache, nil)
			defer s2.Close()
			assert.False(t, reused, "nothing left to resume")
		})
	}
}
