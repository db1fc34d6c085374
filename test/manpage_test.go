package test

// One test per claim of SSL_get_session(3) (OpenSSL 1.0.2u, 2019-12-20), on
// the OpenSSL the package is built against. Where versions differ the test
// says so and checks each side.

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// "SSL_get_session() returns a pointer to the SSL_SESSION actually used in
// ssl. The reference count of the SSL_SESSION is not incremented."
func TestManPageGetSessionReturnsSessionInUseWithoutReference(t *testing.T) {
	for _, v := range versions() {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{})
			p := newRawPair(t, sctx, cctx)
			p.handshake(t)

			b, err := p.Client.Session()
			require.NoError(t, err)
			require.True(t, b.Borrowed())
			// It is the session in use: the one SSL_get1_session returns too.
			owned, err := p.Client.Session1()
			require.NoError(t, err)
			bi, err := b.Info()
			require.NoError(t, err)
			oi, err := owned.Info()
			require.NoError(t, err)
			assert.Equal(t, oi, bi)
			assert.Equal(t, v, bi.Protocol)
			require.NoError(t, owned.Close())

			// No reference taken: once the connection is gone (a client
			// context caches nothing), OpenSSL frees the session although
			// the borrowed handle is still held.
			w, err := b.WatchFree()
			require.NoError(t, err)
			defer w.Release()
			p.shutdown(t)
			p.Client.Free()
			assert.True(t, w.Freed(), "SSL_free must free a session only borrowed by get_session")
			_, err = b.Info()
			assert.ErrorIs(t, err, sslsession.ErrStale)
		})
	}
}

// "SSL_get0_session() is the same as SSL_get_session()."
func TestManPageGet0SameAsGetSession(t *testing.T) {
	for _, v := range versions() {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{})
			p := newRawPair(t, sctx, cctx)
			p.handshake(t)
			for _, side := range []*sslsession.SSL{p.Client, p.Server} {
				a, err := side.Session()
				require.NoError(t, err)
				b, err := side.Session0()
				require.NoError(t, err)
				// The same SSL_SESSION: the package hands out one borrowed
				// handle per session pointer.
				assert.Same(t, a, b)
				ai, err := a.Info()
				require.NoError(t, err)
				bi, err := b.Info()
				require.NoError(t, err)
				assert.Equal(t, ai, bi)
			}
			// And get0 takes no reference either.
			b, err := p.Client.Session0()
			require.NoError(t, err)
			w, err := b.WatchFree()
			require.NoError(t, err)
			defer w.Release()
			p.shutdown(t)
			p.Client.Free()
			assert.True(t, w.Freed())
		})
	}
}

// "SSL_get1_session() is the same as SSL_get_session(), but the reference
// count of the SSL_SESSION is incremented by one." ... "In order to remove
// the session SSL_SESSION_free(3) must be explicitly called once."
func TestManPageGet1AddsExactlyOneReference(t *testing.T) {
	for _, v := range versions() {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{})
			p := newRawPair(t, sctx, cctx)
			p.handshake(t)
			s, err := p.Client.Session1()
			require.NoError(t, err)
			require.False(t, s.Borrowed())
			w, err := s.WatchFree()
			require.NoError(t, err)
			defer w.Release()

			p.shutdown(t)
			p.Client.Free()
			// At least one reference: it survives its connection.
			require.False(t, w.Freed(), "get1 session freed with its connection")
			// Exactly one: one SSL_SESSION_free (Close) frees it.
			require.NoError(t, s.Close())
			assert.True(t, w.Freed(), "one SSL_SESSION_free must free a get1 session")
			// Close again: no second free, and use after Close is an error.
			require.NoError(t, s.Close())
			_, err = s.Info()
			assert.ErrorIs(t, err, sslsession.ErrClosed)
		})
	}
}

// "If the data is to be kept, SSL_get1_session() will increment the
// reference count, so that the session will not be implicitly removed by
// other operations but stays in memory."
func TestManPageGet1SessionOutlivesConnection(t *testing.T) {
	for _, v := range versions() {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{})
			p := newRawPair(t, sctx, cctx)
			p.handshake(t)
			s, err := p.Client.Session1()
			require.NoError(t, err)
			defer s.Close()
			before, err := s.Info()
			require.NoError(t, err)
			p.shutdown(t)
			p.close()

			// Still whole after SSL_free of its connection...
			after, err := s.Info()
			require.NoError(t, err)
			assert.Equal(t, before, after)
			assert.True(t, after.Resumable)
			// ...and it still resumes a new connection.
			q := newRawPair(t, sctx, cctx)
			require.NoError(t, q.Client.SetSession(s))
			q.handshake(t)
			assert.True(t, q.Client.SessionReused())
			assert.True(t, q.Server.SessionReused())
		})
	}
}

// "The ssl session contains all information required to re-establish the
// connection without a new handshake."
func TestManPageSessionReestablishesConnection(t *testing.T) {
	for _, v := range versions() {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{})
			p := newRawPair(t, sctx, cctx)
			p.handshake(t)
			s, err := p.Client.Session1()
			require.NoError(t, err)
			defer s.Close()
			p.shutdown(t)

			q := newRawPair(t, sctx, cctx)
			require.NoError(t, q.Client.SetSession(s))
			q.handshake(t)
			assert.True(t, q.Client.SessionReused())
			// The resumed connection's session carries the same master
			// secret material: the same cipher and protocol, no new
			// certificate exchange needed (the peer certificate is restored
			// from the session).
			r, err := q.Client.Session()
			require.NoError(t, err)
			ri, err := r.Info()
			require.NoError(t, err)
			si, err := s.Info()
			require.NoError(t, err)
			assert.Equal(t, si.Cipher, ri.Cipher)
			assert.True(t, ri.HasPeer)
			if v == sslsession.TLS12 {
				// TLS 1.2 ticket resumption keeps the session; TLS 1.3 gets
				// a new one from every ticket.
				assert.Equal(t, si.ID, ri.ID)
			}
		})
	}
}

// "A session will be automatically removed from the session cache and
// marked as non-resumable if the connection is not closed down cleanly,
// e.g. if a fatal error occurs on the connection or SSL_shutdown(3) is not
// called prior to SSL_free(3)."
//
// Checked on the server's session-ID cache (tickets off, so that resumption
// depends on the cache). A stateless ticket is not in any cache: the claim
// does not reach it, as the second subtest shows.
func TestManPageUncleanShutdownRemovesFromCache(t *testing.T) {
	for _, v := range versions() {
		t.Run(v.String()+"/session-id-cache", func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{NoTickets: true})
			stats := sessCtx(t, sctx)
			// Clean first, as a control: the session stays and resumes.
			clean := newRawPair(t, sctx, cctx)
			clean.handshake(t)
			cs, err := clean.Client.Session1()
			require.NoError(t, err)
			defer cs.Close()
			clean.shutdown(t)
			clean.close()
			n := stats.Stats().Number
			require.GreaterOrEqual(t, n, int64(1))

			// Unclean: both sides freed without SSL_shutdown.
			bad := newRawPair(t, sctx, cctx)
			bad.handshake(t)
			bs, err := bad.Client.Session1()
			require.NoError(t, err)
			defer bs.Close()
			ss, err := bad.Server.Session1()
			require.NoError(t, err)
			defer ss.Close()
			per := countNewCacheEntries(v)
			require.Equal(t, n+per, stats.Stats().Number)
			bad.close()

			// The server's session is removed from its cache. With TLS 1.3
			// stateful tickets each ticket is its own cache entry; only the
			// connection's current session (the last ticket's) is removed,
			// the earlier ticket's entry stays.
			assert.Equal(t, n+per-1, stats.Stats().Number, "unclean SSL_free must remove the session from the cache")
			// ...and marked non-resumable.
			si, err := ss.Info()
			require.NoError(t, err)
			assert.False(t, si.Resumable, "server session must be marked non-resumable")
			// The client can no longer resume with it; the clean one can.
			q := newRawPair(t, sctx, cctx)
			require.NoError(t, q.Client.SetSession(bs))
			q.handshake(t)
			assert.False(t, q.Client.SessionReused(), "a session of an unclean connection resumed")
			r := newRawPair(t, sctx, cctx)
			require.NoError(t, r.Client.SetSession(cs))
			r.handshake(t)
			assert.True(t, r.Client.SessionReused(), "a session of a clean connection did not resume")
		})
		if v == sslsession.TLS12 {
			// The client's own session after an unclean close: 1.0.2 marks
			// a session non-resumable only if it was in the context's
			// cache (a client caches nothing by default), so its stateless
			// ticket still resumes. 1.1.1 and 3.x mark it non-resumable in
			// any case, and the client no longer offers it.
			t.Run(v.String()+"/client-ticket", func(t *testing.T) {
				sctx, cctx := ctxPair(t, v, loopback.Config{NoCache: true})
				bad := newRawPair(t, sctx, cctx)
				bad.handshake(t)
				bs, err := bad.Client.Session1()
				require.NoError(t, err)
				defer bs.Close()
				bad.close()
				info, err := bs.Info()
				require.NoError(t, err)
				q := newRawPair(t, sctx, cctx)
				require.NoError(t, q.Client.SetSession(bs))
				q.handshake(t)
				if is102() {
					assert.True(t, info.Resumable, "1.0.2 leaves an uncached client session resumable")
					assert.True(t, q.Client.SessionReused(), "1.0.2 resumes the ticket of an unclean connection")
				} else {
					assert.False(t, info.Resumable, "1.1.1+ marks the session of an unclean connection non-resumable")
					assert.False(t, q.Client.SessionReused())
				}
			})
		}
	}
}

// is102 reports whether the linked OpenSSL is 1.0.2.
func is102() bool {
	v := sslsession.RuntimeVersion()
	return v.Major() == 1 && v.Minor() == 0
}

// countNewCacheEntries is how many cache entries one full handshake adds on
// the server: one session for TLS 1.2; for TLS 1.3 with stateful tickets
// (SSL_OP_NO_TICKET) one per ticket, two by default.
func countNewCacheEntries(v sslsession.Version) int64 {
	if v == sslsession.TLS13 {
		return 2
	}
	return 1
}

// "SSL_get0_session() returns a pointer to the actual session. As the
// reference counter is not incremented, the pointer is only valid while the
// connection is in use. If SSL_clear(3) or SSL_free(3) is called, the
// session may be removed completely (if considered bad), and the pointer
// obtained will become invalid."
func TestManPageClearAndFreeEndBorrowedPointer(t *testing.T) {
	for _, v := range versions() {
		t.Run(v.String()+"/free", func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{})
			p := newRawPair(t, sctx, cctx)
			p.handshake(t)
			b, err := p.Client.Session0()
			require.NoError(t, err)
			p.Client.Free()
			for i, f := range borrowedCalls(b) {
				assert.ErrorIs(t, f(), sslsession.ErrStale, "call %d", i)
			}
			_, err = p.Client.Session0()
			assert.ErrorIs(t, err, sslsession.ErrFreed)
		})
		t.Run(v.String()+"/clear-after-clean-shutdown-keeps-session", func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{})
			p := newRawPair(t, sctx, cctx)
			p.handshake(t)
			b, err := p.Client.Session0()
			require.NoError(t, err)
			before, err := b.Info()
			require.NoError(t, err)
			p.shutdown(t)
			require.NoError(t, p.Client.Clear())
			// Observed on 1.0.2u and 3.0: the same session object stays.
			after, err := b.Info()
			require.NoError(t, err)
			assert.Equal(t, before, after)
			again, err := p.Client.Session0()
			require.NoError(t, err)
			assert.Same(t, b, again)
		})
		t.Run(v.String()+"/clear-after-unclean-close-drops-session", func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{})
			p := newRawPair(t, sctx, cctx)
			p.handshake(t)
			b, err := p.Client.Session0()
			require.NoError(t, err)
			w, err := b.WatchFree()
			require.NoError(t, err)
			defer w.Release()
			// No SSL_shutdown: the session is bad; SSL_clear frees it.
			require.NoError(t, p.Client.Clear())
			assert.True(t, w.Freed())
			for i, f := range borrowedCalls(b) {
				assert.ErrorIs(t, f(), sslsession.ErrStale, "call %d", i)
			}
			_, err = p.Client.Session0()
			assert.ErrorIs(t, err, sslsession.ErrNoSession)
		})
	}
}

// borrowedCalls are every method of a session, for checking that a stale
// one reports ErrStale from all of them.
func borrowedCalls(s *sslsession.Session) []func() error {
	return []func() error{
		func() error { _, err := s.Info(); return err },
		func() error { _, err := s.ID(); return err },
		func() error { _, err := s.MarshalBinary(); return err },
		func() error { _, err := s.MarshalPEM(); return err },
		func() error { _, err := s.MasterKey(); return err },
		func() error { _, err := s.PeerCertificate(); return err },
		func() error { _, err := s.Owned(); return err },
		func() error { return s.SetTimeout(time.Minute) },
		func() error { return s.SetCreated(time.Now()) },
		func() error { _, err := s.WatchFree(); return err },
	}
}

// "Even if the session is valid, it can be removed at any time due to
// timeout during SSL_CTX_flush_sessions(3)."
func TestManPageFlushRemovesTimedOutSessions(t *testing.T) {
	for _, v := range versions() {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := ctxPair(t, v, loopback.Config{NoTickets: true})
			cache := sessCtx(t, sctx)
			type conn struct {
				client, server *sslsession.Session
				pair           *rawPair
			}
			var conns []conn
			for i := 0; i < 3; i++ {
				p := newRawPair(t, sctx, cctx)
				p.handshake(t)
				c, err := p.Client.Session1()
				require.NoError(t, err)
				s, err := p.Server.Session1()
				require.NoError(t, err)
				conns = append(conns, conn{c, s, p})
				t.Cleanup(func() { c.Close(); s.Close() })
			}
			per := countNewCacheEntries(v)
			require.Equal(t, 3*per, cache.Stats().Number)

			// Age the first server session: created two hours ago with a
			// one-hour timeout, it has timed out now.
			old := conns[0].server
			require.NoError(t, old.SetTimeout(time.Hour))
			require.NoError(t, old.SetCreated(time.Now().Add(-2*time.Hour)))
			timeouts := cache.Stats().Timeouts
			cache.Flush(time.Now())
			assert.Equal(t, 3*per-1, cache.Stats().Number, "flush must remove exactly the timed-out session")
			assert.Equal(t, timeouts, cache.Stats().Timeouts, "flush removals are not counted as timeouts")

			// The connection still holds its session: removed from the
			// cache is not freed, and the borrowed pointer stays valid.
			b, err := conns[0].pair.Server.Session0()
			require.NoError(t, err)
			_, err = b.Info()
			require.NoError(t, err)

			if v == sslsession.TLS12 {
				// A client can no longer resume the flushed session by ID;
				// the others still resume.
				for i, c := range conns {
					q := newRawPair(t, sctx, cctx)
					require.NoError(t, q.Client.SetSession(c.client))
					q.handshake(t)
					assert.Equal(t, i != 0, q.Client.SessionReused(), "session %d", i)
				}
			}
			// Flushing at a time past every timeout empties the cache.
			cache.Flush(time.Now().Add(24 * time.Hour))
			assert.Equal(t, int64(0), cache.Stats().Number)
		})
	}
}

// "One SSL_SESSION object, regardless of its reference count, must
// therefore only be used with one SSL_CTX object (and the SSL objects
// created from this SSL_CTX object)." OpenSSL does not check it; the
// package does.
func TestManPageSessionBelongsToOneContext(t *testing.T) {
	v := sslsession.TLS12
	sctx, cctxA := ctxPair(t, v, loopback.Config{})
	_, cctxB := ctxPair(t, v, loopback.Config{})
	p := newRawPair(t, sctx, cctxA)
	p.handshake(t)
	s, err := p.Client.Session1()
	require.NoError(t, err)
	defer s.Close()
	p.shutdown(t)

	// Another context's SSL refuses it, with a clear, typed error.
	other := newRawPair(t, sctx, cctxB)
	err = other.Client.SetSession(s)
	require.ErrorIs(t, err, sslsession.ErrWrongContext)
	assert.Contains(t, err.Error(), "SSL_set_session")
	// A borrowed session from context A is refused too.
	b, err := p.Client.Session0()
	require.NoError(t, err)
	assert.ErrorIs(t, other.Client.SetSession(b), sslsession.ErrWrongContext)
	// The SSL objects of its own context accept it.
	same := newRawPair(t, sctx, cctxA)
	require.NoError(t, same.Client.SetSession(s))

	// A session decoded from DER belongs to no context until first used:
	// then to that one.
	der, err := s.MarshalBinary()
	require.NoError(t, err)
	d, err := sslsession.ParseDER(der)
	require.NoError(t, err)
	defer d.Close()
	first := newRawPair(t, sctx, cctxB)
	require.NoError(t, first.Client.SetSession(d))
	again := newRawPair(t, sctx, cctxA)
	assert.ErrorIs(t, again.Client.SetSession(d), sslsession.ErrWrongContext)
}

// RETURN VALUES: "NULL: There is no session available in ssl."
func TestManPageNoSessionIsNULL(t *testing.T) {
	sctx, cctx := ctxPair(t, sslsession.TLS12, loopback.Config{})
	p := newRawPair(t, sctx, cctx)
	for _, side := range []*sslsession.SSL{p.Client, p.Server} {
		_, err := side.Session()
		assert.ErrorIs(t, err, sslsession.ErrNoSession)
		_, err = side.Session0()
		assert.ErrorIs(t, err, sslsession.ErrNoSession)
		_, err = side.Session1()
		assert.ErrorIs(t, err, sslsession.ErrNoSession)
	}
	// "Pointer to an SSL: The return value points to the data of an SSL
	// session" once there is one.
	p.handshake(t)
	s, err := p.Client.Session()
	require.NoError(t, err)
	der, err := s.MarshalBinary()
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(der, []byte{0x30}), "DER of an SSL session is a SEQUENCE")
}

// On 1.0.2 there is no TLS 1.3: the claims above run for TLS 1.2 only, and
// this checks that the library reports it rather than silently skipping.
func TestManPageVersionsCovered(t *testing.T) {
	vs := versions()
	rt := sslsession.RuntimeVersion()
	if rt.Major() == 1 && rt.Minor() == 0 {
		assert.Equal(t, []sslsession.Version{sslsession.TLS12}, vs)
		_, cctx := ctxPair(t, sslsession.TLS12, loopback.Config{})
		err := sessCtx(t, cctx).SetProtocolRange(sslsession.TLS13, sslsession.TLS13)
		assert.ErrorIs(t, err, sslsession.ErrUnsupported)
		return
	}
	assert.Equal(t, []sslsession.Version{sslsession.TLS12, sslsession.TLS13}, vs)
}
