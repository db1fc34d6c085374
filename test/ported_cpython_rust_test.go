package test

// Session tests of other TLS libraries' suites, written again for this API.
// Each names the test it follows; what it checks is this package's
// behaviour on the running OpenSSL, each side asserted where versions
// differ.

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// After CPython Lib/test/test_ssl.py, ThreadedTests.test_session: a first
// connection makes a session and does not resume; a second offering it
// resumes with the same session ID (TLS 1.2) and the server counts a hit; a
// third offering nothing is a new session.
func TestPeerCPythonSession(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			oc, sc := sesstest.StatefulServerCtx(t, v, "cpython-session")
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)

			reused, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s1.Close()
			require.False(t, reused)
			i1, err := s1.Info()
			require.NoError(t, err)
			require.NotEmpty(t, i1.ID)
			assert.Equal(t, v, i1.Protocol)
			assert.True(t, i1.Resumable)

			reused, s2 := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
			defer s2.Close()
			require.True(t, reused, "the session resumes")
			i2, err := s2.Info()
			require.NoError(t, err)
			if v == sslsession.TLS12 {
				assert.Equal(t, i1.ID, i2.ID, "a resumed TLS 1.2 session keeps its ID")
			}

			reused, s3 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s3.Close()
			require.False(t, reused)
			i3, err := s3.Info()
			require.NoError(t, err)
			assert.NotEqual(t, i1.ID, i3.ID, "a new session")

			st := sc.Metrics().Cache
			assert.Equal(t, int64(3), st.Accept)
			assert.Equal(t, int64(1), st.Hits, "one resumption from the server's cache")
		})
	}
}

// After CPython Lib/test/test_ssl.py, ThreadedTests.test_session_handling:
// a session of another client context is refused ("Session refers to a
// different SSLContext"), as is one set after the handshake ("Cannot set
// session after handshake") or on the server side ("Cannot set session for
// server-side SSLSocket"); the server's connection has the same session.
func TestPeerCPythonSessionHandling(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	oc, _ := sesstest.StatefulServerCtx(t, v, "cpython-handling")
	srv := sesstest.Serve(t, oc)
	cctx := sesstest.ClientCtx(t, v)
	other := sesstest.ClientCtx(t, v)
	_, sess := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
	defer sess.Close()

	raw, err := net.Dial("tcp", srv.Addr)
	require.NoError(t, err)
	c, err := sslsession.Client(raw, other, nil)
	require.NoError(t, err)
	defer c.Close()
	require.ErrorIs(t, c.SSL().SetSession(sess), sslsession.ErrWrongContext)
	require.NoError(t, c.Handshake())
	require.False(t, c.SessionReused(), "the refused session was not used")
	require.ErrorIs(t, c.SSL().SetSession(sess), sslsession.ErrHandshakeStarted)

	// The server side, in its own listener so the test holds its Conn.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	type accepted struct {
		c   *sslsession.Conn
		err error
	}
	done := make(chan accepted, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- accepted{err: err}
			return
		}
		s, err := sslsession.Server(raw, oc)
		if err == nil {
			err = s.Handshake()
		}
		done <- accepted{s, err}
	}()
	cl := sesstest.Dial(t, ln.Addr().String(), cctx, nil)
	a := <-done
	require.NoError(t, a.err)
	defer a.c.Close()
	require.ErrorIs(t, a.c.SSL().SetSession(sess), sslsession.ErrServerSide)
	cs, err := cl.Session1()
	require.NoError(t, err)
	defer cs.Close()
	ss, err := a.c.Session1()
	require.NoError(t, err)
	defer ss.Close()
	cidInfo, err := cs.Info()
	cid := cidInfo.ID
	require.NoError(t, err)
	sidInfo, err := ss.Info()
	sid := sidInfo.ID
	require.NoError(t, err)
	assert.Equal(t, cid, sid, "both ends hold the same session")
}

// After rust-openssl openssl/src/ssl/test/mod.rs, idle_session and
// active_session: an SSL has no session before its handshake (the man
// page's NULL), and after it a session with an ID, a master key and the
// negotiated protocol.
func TestPeerRustIdleAndActiveSession(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			srv := sesstest.Serve(t, sesstest.ServerCtx(t, v, loopback.Config{}))
			raw, err := net.Dial("tcp", srv.Addr)
			require.NoError(t, err)
			c, err := sslsession.Client(raw, sesstest.ClientCtx(t, v), nil)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Session()
			require.ErrorIs(t, err, sslsession.ErrNoSession, "idle: no session")
			require.NoError(t, c.Handshake())
			s, err := c.Session()
			require.NoError(t, err)
			info, err := s.Info()
			require.NoError(t, err)
			assert.Equal(t, v, info.Protocol)
			if v == sslsession.TLS13 {
				// The handshake's own TLS 1.3 session is not resumable;
				// a ticket brings one with an ID and a resumption secret.
				assert.False(t, info.Resumable)
				o, err := c.AwaitSession(5 * time.Second)
				require.NoError(t, err)
				defer o.Close()
				s = o
				info, err = s.Info()
				require.NoError(t, err)
				assert.True(t, info.HasTicket)
			}
			assert.True(t, info.Resumable)
			assert.NotEmpty(t, info.ID)
			mk, err := s.MasterKey()
			require.NoError(t, err)
			if v == sslsession.TLS12 {
				assert.Len(t, mk, 48, "TLS 1.2's master secret")
			} else {
				assert.NotEmpty(t, mk, "TLS 1.3's resumption secret")
			}
		})
	}
}

// After rust-openssl openssl/src/ssl/test/mod.rs, session_cache_size: the
// setter returns the previous size (OpenSSL's default 20480) and the getter
// the new one.
func TestPeerRustSessionCacheSize(t *testing.T) {
	oc := sesstest.ServerCtx(t, sslsession.TLS12, loopback.Config{})
	sc := sesstest.NewCtx(t, oc)
	assert.Equal(t, 20480, sc.SetCacheSize(1234))
	assert.Equal(t, 1234, sc.CacheSize())
}

// After rust-openssl openssl/src/ssl/test/mod.rs, new_session_callback: a
// client learns of its new session without asking. This package's client
// side is ClientCache (OpenSSL's client new-session callback underneath):
// after one connection it holds the session, TLS 1.3's from the ticket.
func TestPeerRustNewSessionCallback(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			srv := sesstest.Serve(t, sesstest.ServerCtx(t, v, loopback.Config{}))
			cache, err := sslsession.NewClientCache(sesstest.ClientCtx(t, v), 4)
			require.NoError(t, err)
			defer cache.Close()
			c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cache, ServerName: "localhost", Timeout: 10 * time.Second})
			require.NoError(t, err)
			_, err = c.AwaitSession(5 * time.Second) // TLS 1.3: read the tickets
			require.NoError(t, err)
			require.NoError(t, c.Close())
			require.Equal(t, 1, cache.Len(), "the new session was handed to the client's cache")
			again, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cache, ServerName: "localhost", Timeout: 10 * time.Second})
			require.NoError(t, err)
			defer again.Close()
			assert.True(t, again.SessionReused())
		})
	}
}

// After rust-openssl openssl/src/ssl/test/mod.rs,
// new_session_callback_swapped_ctx: an SNI callback switches the server's
// connection to another SSL_CTX. OpenSSL runs the first context's session
// callbacks (its session_ctx); 1.0.2 lets the bridge find that context, so
// its store alone sees the sessions, while 1.1.0 and later give no getter
// for it and the bridge answers for the connection's current context: the
// first one's store is asked (the lookup comes before the switch) but never
// given the session. The
// documented way, the same store on every context the callback switches
// to, resumes on every version.
func TestPeerRustNewSessionSwappedCtx(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	for _, both := range []bool{false, true} {
		name := "store on the first context"
		if both {
			name = "store on both"
		}
		t.Run(name, func(t *testing.T) {
			first, sc := sesstest.StatefulServerCtx(t, v, "swapped")
			second, sc2 := sesstest.StatefulServerCtx(t, v, "swapped")
			var mu sync.Mutex
			var names []string
			first.SetTLSExtServernameCallback(func(ssl *openssl.SSL) openssl.SSLTLSExtErr {
				mu.Lock()
				names = append(names, ssl.GetServername())
				mu.Unlock()
				ssl.SetSSLCtx(second)
				return openssl.SSLTLSExtErrOK
			})
			store := sesstest.NewRecordStore()
			for _, c := range []*sslsession.Ctx{sc, sc2}[:map[bool]int{false: 1, true: 2}[both]] {
				require.NoError(t, c.SetStore(store, sslsession.StoreOptions{}))
				c.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
			}
			srv := sesstest.Serve(t, first)
			cctx := sesstest.ClientCtx(t, v)
			reused, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s1.Close()
			require.False(t, reused)
			reached := both || sesstest.Is102()
			if reached {
				require.Eventually(t, func() bool {
					puts, _, _ := store.Counts()
					return puts == 1
				}, 5*time.Second, time.Millisecond, "the store got the new session")
			}
			reused, s2 := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
			defer s2.Close()
			puts, gets, _ := store.Counts()
			if reached {
				assert.True(t, reused, "resumed through the store")
				assert.Equal(t, 1, gets)
			} else {
				// The lookup runs before the SNI callback, on the first
				// context; the new session comes after the switch.
				assert.False(t, reused, "1.1.0+: the first context's store alone gets no session")
				assert.Zero(t, puts)
				assert.Equal(t, 1, gets)
			}
			mu.Lock()
			assert.Equal(t, []string{"localhost", "localhost"}, names, "the SNI callback switched both connections")
			mu.Unlock()
			assert.Zero(t, srv.Failed())
		})
	}
}
