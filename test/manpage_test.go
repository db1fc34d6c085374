package test

// One test per claim of SSL_get_session(3) (OpenSSL 1.0.2u, 2019-12-20), on
// the OpenSSL the package is built against. The checks themselves are in
// internal/reference, which `sslsession reference` runs too: each test
// runs its claim's checks and requires the behaviour known for the running
// OpenSSL. Where versions differ the checks observe each side.

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/reference"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// runCheck runs one reference check; it must run to its end and match a
// known behaviour, that of the running OpenSSL's family.
func runCheck(t *testing.T, id string) reference.Result {
	t.Helper()
	c, ok := reference.Find(id)
	require.True(t, ok, "no check %s", id)
	r := c.Run(reference.Options{})
	require.Empty(t, r.Error, "%s could not run", id)
	require.NotEqual(t, reference.Mismatch, r.Verdict, "%s: observed %s, which no known version does", id, r.Observed)
	require.Contains(t, r.Matches, reference.Family(), "%s: observed %s: %s", id, r.Observed, r.Detail)
	return r
}

// requireEverywhere runs the TLS 1.2 and TLS 1.3 checks of a claim that
// holds on every version: TLS 1.2 as the reference does; TLS 1.3 as 1.1.1
// and 3.x do, or, where the library speaks no TLS 1.3, not available (as
// on the reference).
func requireEverywhere(t *testing.T, claim string) {
	t.Helper()
	r := runCheck(t, claim+"/tls1.2")
	assert.Equal(t, reference.Reference, r.Verdict)
	requireTLS13(t, claim+"/tls1.3")
}

// requireTLS13 runs a TLS 1.3 check, keyed on whether the library speaks
// TLS 1.3.
func requireTLS13(t *testing.T, id string) reference.Result {
	t.Helper()
	r := runCheck(t, id)
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		assert.Equal(t, reference.Known, r.Verdict)
		assert.NotContains(t, r.Matches, reference.V102)
		assert.NotEqual(t, "not available", r.Observed["tls1.3"])
	} else {
		assert.Equal(t, reference.Reference, r.Verdict)
		assert.Equal(t, "not available", r.Observed["tls1.3"])
	}
	return r
}

// "SSL_get_session() returns a pointer to the SSL_SESSION actually used in
// ssl. The reference count of the SSL_SESSION is not incremented."
func TestManPageGetSessionReturnsSessionInUseWithoutReference(t *testing.T) {
	requireEverywhere(t, "get-takes-no-reference")
}

// "SSL_get0_session() is the same as SSL_get_session()."
func TestManPageGet0SameAsGetSession(t *testing.T) {
	requireEverywhere(t, "get0-same-as-get")
}

// "SSL_get1_session() is the same as SSL_get_session(), but the reference
// count of the SSL_SESSION is incremented by one." ... "In order to remove
// the session SSL_SESSION_free(3) must be explicitly called once."
func TestManPageGet1AddsExactlyOneReference(t *testing.T) {
	requireEverywhere(t, "get1-one-reference")
}

// "If the data is to be kept, SSL_get1_session() will increment the
// reference count, so that the session will not be implicitly removed by
// other operations but stays in memory."
func TestManPageGet1SessionOutlivesConnection(t *testing.T) {
	requireEverywhere(t, "get1-outlives-connection")
}

// "The ssl session contains all information required to re-establish the
// connection without a new handshake." With TLS 1.3 the client's session is
// resumable only once it has read a ticket.
func TestManPageSessionReestablishesConnection(t *testing.T) {
	requireEverywhere(t, "session-reestablishes")
	requireTLS13(t, "tls13-ticket-after-handshake")
}

// "A session will be automatically removed from the session cache and
// marked as non-resumable if the connection is not closed down cleanly,
// e.g. if a fatal error occurs on the connection or SSL_shutdown(3) is not
// called prior to SSL_free(3)."
//
// Checked on the server's session-ID cache (tickets off, so that resumption
// depends on the cache); with TLS 1.3 stateful tickets only the
// connection's current ticket entry is removed. Then on the client's own
// session, which is in no cache: 1.0.2 leaves it resumable (its stateless
// ticket still resumes); 1.1.1 and 3.x mark it non-resumable.
func TestManPageUncleanShutdownRemovesFromCache(t *testing.T) {
	requireEverywhere(t, "unclean-free-removes-from-cache")
	r := runCheck(t, "unclean-free-client-session/tls1.2")
	// Resumable and resumes go together, whichever the version does.
	assert.Equal(t, r.Observed["client_session_resumable"], r.Observed["ticket_resumes"])
}

// "SSL_get0_session() returns a pointer to the actual session. As the
// reference counter is not incremented, the pointer is only valid while the
// connection is in use. If SSL_clear(3) or SSL_free(3) is called, the
// session may be removed completely (if considered bad), and the pointer
// obtained will become invalid."
func TestManPageClearAndFreeEndBorrowedPointer(t *testing.T) {
	requireEverywhere(t, "free-ends-borrowed-pointer")
	requireEverywhere(t, "clear-after-clean-shutdown")
	requireEverywhere(t, "clear-after-unclean-close")
}

// "Even if the session is valid, it can be removed at any time due to
// timeout during SSL_CTX_flush_sessions(3)." The sessions flushed by age
// go by the default timeout, which differs: 300 s on 1.0.2, 7200 s later.
func TestManPageFlushRemovesTimedOutSessions(t *testing.T) {
	requireEverywhere(t, "flush-removes-timed-out")
	r := runCheck(t, "default-timeout")
	assert.Equal(t, r.Observed["seconds"], int64(defaultTimeout(t)/time.Second))
}

// defaultTimeout reads a new context's timeout through the library, apart
// from the check.
func defaultTimeout(t *testing.T) time.Duration {
	_, cctx := sesstest.CtxPair(t, sslsession.TLS12, loopback.Config{})
	return sesstest.NewCtx(t, cctx).Timeout()
}

// A failing check is reported, never hidden: flushing with a clock three
// hours fast removes every session, which no version does.
func TestManPageFlushWithWrongClockIsAMismatch(t *testing.T) {
	for _, id := range []string{"flush-removes-timed-out/tls1.2", "flush-removes-timed-out/tls1.3"} {
		c, ok := reference.Find(id)
		require.True(t, ok)
		r := c.Run(reference.Options{FlushSkew: 3 * time.Hour})
		if id == "flush-removes-timed-out/tls1.3" && sslsession.MaxSupportedVersion() < sslsession.TLS13 {
			assert.Equal(t, reference.Reference, r.Verdict, "no TLS 1.3: nothing flushed")
			continue
		}
		assert.Equal(t, reference.Mismatch, r.Verdict, "%s", r.Observed)
		assert.Empty(t, r.Matches)
		assert.Equal(t, r.Observed["entries"], r.Observed["removed_by_flush"], "every session flushed")
	}
}

// "One SSL_SESSION object, regardless of its reference count, must
// therefore only be used with one SSL_CTX object (and the SSL objects
// created from this SSL_CTX object)." OpenSSL does not check it; the
// package does.
func TestManPageSessionBelongsToOneContext(t *testing.T) {
	r := runCheck(t, "one-session-one-ctx/tls1.2")
	assert.Equal(t, reference.Reference, r.Verdict)
}

// RETURN VALUES: "NULL: There is no session available in ssl."
func TestManPageNoSessionIsNULL(t *testing.T) {
	r := runCheck(t, "no-session-is-null/tls1.2")
	assert.Equal(t, reference.Reference, r.Verdict)
}

// The version differences beside the man page: the cache-size bound
// (n sessions on 1.0.2 and 1.1.1, n-1 on 3.x) and the statistics under
// concurrent handshakes (1.0.2 loses unlocked increments; 1.1.1+ exact).
func TestManPageCacheBoundAndStatistics(t *testing.T) {
	r := runCheck(t, "cache-size-bound/tls1.2")
	// The held sessions are the newest, and they resume.
	assert.EqualValues(t, r.Observed["held"], r.Observed["newest_resume"])
	runCheck(t, "stats-under-concurrency")
}

// Every check runs, once, under its own id, and none is a mismatch here.
func TestManPageReferenceReport(t *testing.T) {
	rep := reference.Run(reference.Options{})
	require.Len(t, rep.Checks, len(reference.Checks()))
	seen := map[string]bool{}
	for i, r := range rep.Checks {
		assert.Equal(t, reference.Checks()[i].ID, r.ID)
		assert.False(t, seen[r.ID], "duplicate id %s", r.ID)
		seen[r.ID] = true
		assert.Contains(t, r.Matches, reference.Family(), "%s: %s", r.ID, r.Observed)
	}
	assert.Empty(t, reference.Compare(rep, rep))
}

// On 1.0.2 there is no TLS 1.3: the claims above run for TLS 1.2 only, and
// this checks that the library reports it rather than silently skipping.
func TestManPageVersionsCovered(t *testing.T) {
	vs := sesstest.Versions(t)
	rt := sslsession.RuntimeVersion()
	if rt.Major() == 1 && rt.Minor() == 0 {
		assert.Equal(t, []sslsession.Version{sslsession.TLS12}, vs)
		_, cctx := sesstest.CtxPair(t, sslsession.TLS12, loopback.Config{})
		err := sesstest.NewCtx(t, cctx).SetProtocolRange(sslsession.TLS13, sslsession.TLS13)
		assert.ErrorIs(t, err, sslsession.ErrUnsupported)
		return
	}
	assert.Equal(t, []sslsession.Version{sslsession.TLS12, sslsession.TLS13}, vs)
}
