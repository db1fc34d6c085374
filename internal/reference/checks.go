package reference

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/rawssl"
)

// Claims in the man page's words (SSL_get_session(3), OpenSSL 1.0.2u).
const (
	claimGet     = "SSL_get_session() returns a pointer to the SSL_SESSION actually used in ssl. The reference count of the SSL_SESSION is not incremented."
	claimGet0    = "SSL_get0_session() is the same as SSL_get_session()."
	claimGet1    = "SSL_get1_session() is the same as SSL_get_session(), but the reference count of the SSL_SESSION is incremented by one. In order to remove the session SSL_SESSION_free(3) must be explicitly called once."
	claimOutlive = "If the data is to be kept, SSL_get1_session() will increment the reference count, so that the session will not be implicitly removed by other operations but stays in memory."
	claimReuse   = "The ssl session contains all information required to re-establish the connection without a new handshake."
	claimUnclean = "A session will be automatically removed from the session cache and marked as non-resumable if the connection is not closed down cleanly, e.g. if a fatal error occurs on the connection or SSL_shutdown(3) is not called prior to SSL_free(3)."
	claimFree    = "As the reference counter is not incremented, the pointer is only valid while the connection is in use. If SSL_clear(3) or SSL_free(3) is called, the session may be removed completely (if considered bad), and the pointer obtained will become invalid."
	claimFlush   = "Even if the session is valid, it can be removed at any time due to timeout during SSL_CTX_flush_sessions(3)."
	claimOneCtx  = "One SSL_SESSION object, regardless of its reference count, must therefore only be used with one SSL_CTX object (and the SSL objects created from this SSL_CTX object)."
	claimNULL    = "NULL: There is no session available in ssl. Pointer to an SSL: The return value points to the data of an SSL session."
)

// everywhere is a behaviour every known version has.
func everywhere(o Observed) []Behaviour {
	return []Behaviour{{Versions: Versions, Observed: o}}
}

// tls13 are the known behaviours of a TLS 1.3 check: 1.0.2u has no TLS 1.3;
// 1.1.1 and 3.x observe o.
func tls13(o Observed) []Behaviour {
	return []Behaviour{
		{Versions: []string{V102}, Observed: unavailable13},
		{Versions: []string{V111, V30, V35}, Observed: o},
	}
}

// both makes a check for TLS 1.2 (every version) and one for TLS 1.3.
func both(id, claim string, o12, o13 Observed, run func(e *env, v sslsession.Version) (Observed, string)) []Check {
	return []Check{
		{ID: id + "/tls1.2", Claim: claim, Known: everywhere(o12),
			run: func(e *env) (Observed, string) { return run(e, sslsession.TLS12) }},
		{ID: id + "/tls1.3", Claim: claim, Known: tls13(o13), TLS13: true,
			run: func(e *env) (Observed, string) { return run(e, sslsession.TLS13) }},
	}
}

var checks = concat(
	both("get-takes-no-reference", claimGet,
		Observed{"borrowed": true, "same_as_get1": true, "freed_with_ssl": true, "stale_after_free": true},
		Observed{"borrowed": true, "same_as_get1": true, "freed_with_ssl": true, "stale_after_free": true},
		checkGet),
	both("get0-same-as-get", claimGet0,
		Observed{"same_session": true, "freed_with_ssl": true},
		Observed{"same_session": true, "freed_with_ssl": true},
		checkGet0),
	both("get1-one-reference", claimGet1,
		Observed{"owned": true, "outlives_ssl": true, "one_free_frees": true, "closed_after_free": true},
		Observed{"owned": true, "outlives_ssl": true, "one_free_frees": true, "closed_after_free": true},
		checkGet1),
	both("get1-outlives-connection", claimOutlive,
		Observed{"unchanged": true, "resumable": true, "resumes": true},
		Observed{"unchanged": true, "resumable": true, "resumes": true},
		checkOutlive),
	both("session-reestablishes", claimReuse,
		Observed{"resumed": true, "same_cipher": true, "peer_certificate": true, "same_id": true},
		// TLS 1.3 resumption makes a new session from every ticket.
		Observed{"resumed": true, "same_cipher": true, "peer_certificate": true, "same_id": false},
		checkReuse),
	both("unclean-free-removes-from-cache", claimUnclean,
		Observed{"entries_per_handshake": 1, "removed_by_unclean_free": 1, "server_session_resumable": false,
			"unclean_session_resumes": false, "clean_session_resumes": true},
		// Stateful TLS 1.3 tickets: one cache entry per ticket (two);
		// only the connection's current one is removed.
		Observed{"entries_per_handshake": 2, "removed_by_unclean_free": 1, "server_session_resumable": false,
			"unclean_session_resumes": false, "clean_session_resumes": true},
		checkUnclean),
	[]Check{{
		ID:    "unclean-free-client-session/tls1.2",
		Claim: claimUnclean + " (the client's own session, which is in no cache: its ticket)",
		Known: []Behaviour{
			{Versions: []string{V102}, Observed: Observed{"client_session_resumable": true, "ticket_resumes": true}},
			{Versions: []string{V111, V30, V35}, Observed: Observed{"client_session_resumable": false, "ticket_resumes": false}},
		},
		run: checkUncleanClient,
	}},
	both("free-ends-borrowed-pointer", claimFree,
		Observed{"stale_after_free": true, "ssl_freed_error": true},
		Observed{"stale_after_free": true, "ssl_freed_error": true},
		checkFree),
	both("clear-after-clean-shutdown", claimFree+" (SSL_clear after SSL_shutdown: the session is good)",
		Observed{"same_session_kept": true},
		Observed{"same_session_kept": true},
		checkClearClean),
	both("clear-after-unclean-close", claimFree+" (SSL_clear without SSL_shutdown: the session is bad)",
		Observed{"freed": true, "stale": true, "no_session_after": true},
		Observed{"freed": true, "stale": true, "no_session_after": true},
		checkClearUnclean),
	both("flush-removes-timed-out", claimFlush,
		Observed{"entries": 3, "removed_by_flush": 1, "timeouts_counted": 0, "in_use_session_alive": true,
			"flushed_session_resumes": false, "others_resume": true, "left_after_flush_all": 0},
		Observed{"entries": 6, "removed_by_flush": 1, "timeouts_counted": 0, "in_use_session_alive": true,
			"left_after_flush_all": 0},
		checkFlush),
	[]Check{
		{ID: "one-session-one-ctx/tls1.2", Claim: claimOneCtx + " (OpenSSL does not check it; this library does)",
			Known: everywhere(Observed{"other_ctx_refused": true, "borrowed_other_ctx_refused": true,
				"own_ctx_accepts": true, "decoded_binds_to_first_ctx": true}),
			run: checkOneCtx},
		{ID: "no-session-is-null/tls1.2", Claim: claimNULL,
			Known: everywhere(Observed{"null_before_handshake": true, "der_after_handshake": "SEQUENCE"}),
			run:   checkNULL},
		{ID: "default-timeout", Claim: "The default session timeout of a new SSL_CTX (SSL_CTX_get_timeout(3)), which SSL_CTX_flush_sessions(3) goes by.",
			Known: []Behaviour{
				{Versions: []string{V102}, Observed: Observed{"seconds": 300}},
				{Versions: []string{V111, V30, V35}, Observed: Observed{"seconds": 7200}},
			},
			run: checkDefaultTimeout},
		{ID: "cache-size-bound/tls1.2", Claim: "SSL_CTX_sess_set_cache_size(3) bounds the session cache: the oldest sessions are removed first when it is full.",
			Known: []Behaviour{
				{Versions: []string{V102, V111}, Observed: Observed{"bound": 3, "held": 3, "cache_full": 2, "newest_resume": 3}},
				{Versions: []string{V30, V35}, Observed: Observed{"bound": 3, "held": 2, "cache_full": 3, "newest_resume": 2}},
			},
			run: checkCacheBound},
		{ID: "stats-under-concurrency", Claim: "The SSL_CTX_sess_*(3) statistics count every handshake started, from concurrent threads too.",
			Known: []Behaviour{
				{Versions: []string{V102}, Observed: Observed{"exact": false}},
				{Versions: []string{V111, V30, V35}, Observed: Observed{"exact": true}},
			},
			run: checkStats},
		{ID: "tls13-ticket-after-handshake", TLS13: true,
			Claim: "The ssl session contains all information required to re-establish the connection without a new handshake (TLS 1.3: once the client has read a ticket).",
			Known: tls13(Observed{"resumable_after_handshake": false, "resumable_after_ticket": true, "resumes": true}),
			run:   checkTLS13Ticket},
	},
)

func concat(lists ...[]Check) []Check {
	var all []Check
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

func checkGet(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{})
	p := e.newPair(sctx, cctx)
	p.handshake()
	b, err := p.Client.Session()
	e.must(err, "SSL_get_session")
	owned := e.owned1(p.Client, "client")
	same := e.info(b, "borrowed session").String() == e.info(owned, "owned session").String()
	e.must(owned.Close(), "SSL_SESSION_free")
	w := e.watch(b)
	p.shutdown()
	p.Client.Free()
	_, err = b.Info()
	o := Observed{"borrowed": b.Borrowed(), "same_as_get1": same, "freed_with_ssl": w.Freed(), "stale_after_free": is(err, sslsession.ErrStale)}
	return o, "the session SSL_get_session returned was freed by SSL_free of its connection"
}

func checkGet0(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{})
	p := e.newPair(sctx, cctx)
	p.handshake()
	same := true
	for _, side := range []*rawssl.SSL{p.Client, p.Server} {
		a, err := side.Session()
		e.must(err, "SSL_get_session")
		b, err := side.Session()
		e.must(err, "SSL_get0_session")
		same = same && a == b && e.info(a, "get").String() == e.info(b, "get0").String()
	}
	b, err := p.Client.Session()
	e.must(err, "SSL_get0_session")
	w := e.watch(b)
	p.shutdown()
	p.Client.Free()
	return Observed{"same_session": same, "freed_with_ssl": w.Freed()}, "get and get0 gave the same session, freed with its connection"
}

func checkGet1(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{})
	p := e.newPair(sctx, cctx)
	p.handshake()
	s := e.owned1(p.Client, "client")
	w := e.watch(s)
	p.shutdown()
	p.Client.Free()
	outlives := !w.Freed()
	e.must(s.Close(), "SSL_SESSION_free")
	oneFree := w.Freed()
	e.must(s.Close(), "second Close")
	_, err := s.Info()
	o := Observed{"owned": !s.Borrowed(), "outlives_ssl": outlives, "one_free_frees": oneFree, "closed_after_free": is(err, sslsession.ErrClosed)}
	return o, "the get1 session outlived SSL_free of its connection; one SSL_SESSION_free freed it"
}

func checkOutlive(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{})
	p := e.newPair(sctx, cctx)
	p.handshake()
	s := e.owned1(p.Client, "client")
	before := e.info(s, "session before SSL_free")
	p.shutdown()
	p.close()
	after := e.info(s, "session after SSL_free")
	o := Observed{"unchanged": before.String() == after.String(), "resumable": after.Resumable, "resumes": e.resumes(sctx, cctx, s)}
	return o, "the get1 session stayed whole after SSL_free of its connection"
}

func checkReuse(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{})
	p := e.newPair(sctx, cctx)
	p.handshake()
	s := e.owned1(p.Client, "client")
	p.shutdown()
	q := e.newPair(sctx, cctx)
	e.must(q.Client.SetSession(s), "SSL_set_session")
	q.handshake()
	r, err := q.Client.Session()
	e.must(err, "SSL_get_session")
	ri, si := e.info(r, "resumed session"), e.info(s, "first session")
	o := Observed{"resumed": q.Client.SessionReused(), "same_cipher": ri.Cipher == si.Cipher,
		"peer_certificate": ri.HasPeer, "same_id": bytes.Equal(ri.ID, si.ID)}
	return o, fmt.Sprintf("resumed with %s", ri.Cipher)
}

func checkUnclean(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{NoTickets: true})
	stats := e.sessCtx(sctx)
	clean := e.newPair(sctx, cctx)
	clean.handshake()
	cs := e.owned1(clean.Client, "clean client")
	clean.shutdown()
	clean.close()
	n := stats.Metrics().Cache.Number

	bad := e.newPair(sctx, cctx)
	bad.handshake()
	bs := e.owned1(bad.Client, "unclean client")
	ss := e.owned1(bad.Server, "unclean server")
	withBad := stats.Metrics().Cache.Number
	bad.close() // SSL_free without SSL_shutdown
	after := stats.Metrics().Cache.Number
	si := e.info(ss, "server session")
	o := Observed{
		"entries_per_handshake":    withBad - n,
		"removed_by_unclean_free":  withBad - after,
		"server_session_resumable": si.Resumable,
		"unclean_session_resumes":  e.resumes(sctx, cctx, bs),
		"clean_session_resumes":    e.resumes(sctx, cctx, cs),
	}
	return o, fmt.Sprintf("cache held %d entries, %d after the unclean SSL_free", withBad, after)
}

func checkUncleanClient(e *env) (Observed, string) {
	sctx, cctx := e.ctxPair(sslsession.TLS12, loopback.Config{NoCache: true})
	bad := e.newPair(sctx, cctx)
	bad.handshake()
	bs := e.owned1(bad.Client, "client")
	bad.close()
	info := e.info(bs, "client session")
	o := Observed{"client_session_resumable": info.Resumable, "ticket_resumes": e.resumes(sctx, cctx, bs)}
	return o, fmt.Sprintf("after an unclean close the client's session is resumable=%t", info.Resumable)
}

// borrowedCalls are every method of a session, to see that a stale one
// refuses them all.
func borrowedCalls(s *sslsession.Session) []func() error {
	return []func() error{
		func() error { _, err := s.Info(); return err },
		func() error { _, err := s.MarshalBinary(); return err },
		func() error { _, err := s.MarshalPEM(); return err },
		func() error { _, err := s.MasterKey(); return err },
		func() error { _, err := s.PeerCertificate(); return err },
		func() error { _, err := s.Owned(); return err },
		func() error { return s.SetTimeout(time.Minute) },
		func() error { return s.SetCreated(time.Now()) },
		func() error { _, err := rawssl.WatchSession(s); return err },
	}
}

func allStale(s *sslsession.Session) bool {
	for _, f := range borrowedCalls(s) {
		if !is(f(), sslsession.ErrStale) {
			return false
		}
	}
	return true
}

func checkFree(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{})
	p := e.newPair(sctx, cctx)
	p.handshake()
	b, err := p.Client.Session()
	e.must(err, "SSL_get0_session")
	p.Client.Free()
	_, err = p.Client.Session()
	return Observed{"stale_after_free": allStale(b), "ssl_freed_error": is(err, sslsession.ErrFreed)}, "after SSL_free the borrowed session is refused"
}

func checkClearClean(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{})
	p := e.newPair(sctx, cctx)
	p.handshake()
	b, err := p.Client.Session()
	e.must(err, "SSL_get0_session")
	before := e.info(b, "session before SSL_clear")
	p.shutdown()
	e.must(p.Client.Clear(), "SSL_clear")
	after, err := b.Info()
	again, err2 := p.Client.Session()
	same := err == nil && err2 == nil && after.String() == before.String() && again == b
	return Observed{"same_session_kept": same}, "SSL_clear after SSL_shutdown kept the session"
}

func checkClearUnclean(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{})
	p := e.newPair(sctx, cctx)
	p.handshake()
	b, err := p.Client.Session()
	e.must(err, "SSL_get0_session")
	w := e.watch(b)
	e.must(p.Client.Clear(), "SSL_clear")
	freed := w.Freed()
	_, err = p.Client.Session()
	return Observed{"freed": freed, "stale": allStale(b), "no_session_after": is(err, sslsession.ErrNoSession)},
		"SSL_clear without SSL_shutdown freed the session"
}

func checkFlush(e *env, v sslsession.Version) (Observed, string) {
	sctx, cctx := e.ctxPair(v, loopback.Config{NoTickets: true})
	cache := e.sessCtx(sctx)
	var pairs []*pair
	var clients, servers []*sslsession.Session
	for i := 0; i < 3; i++ {
		p := e.newPair(sctx, cctx)
		p.handshake()
		pairs = append(pairs, p)
		clients = append(clients, e.owned1(p.Client, "client"))
		servers = append(servers, e.owned1(p.Server, "server"))
	}
	entries := cache.Metrics().Cache.Number
	// Age the first server session: made two hours ago with a one-hour
	// timeout, it has timed out now.
	e.must(servers[0].SetTimeout(time.Hour), "SSL_SESSION_set_timeout")
	e.must(servers[0].SetCreated(time.Now().Add(-2*time.Hour)), "SSL_SESSION_set_time")
	timeouts := cache.Metrics().Cache.Timeouts
	e.must(cache.Flush(time.Now().Add(e.opts.FlushSkew)), "SSL_CTX_flush_sessions")
	left := cache.Metrics().Cache.Number
	b, err := pairs[0].Server.Session()
	alive := err == nil
	if alive {
		_, err = b.Info()
		alive = err == nil
	}
	o := Observed{"entries": entries, "removed_by_flush": entries - left,
		"timeouts_counted": cache.Metrics().Cache.Timeouts - timeouts, "in_use_session_alive": alive}
	if v == sslsession.TLS12 {
		// By session ID: the flushed session no longer resumes, the others do.
		o["flushed_session_resumes"] = e.resumes(sctx, cctx, clients[0])
		others := true
		for _, c := range clients[1:] {
			others = e.resumes(sctx, cctx, c) && others
		}
		o["others_resume"] = others
	}
	e.must(cache.Flush(time.Now().Add(24*time.Hour+e.opts.FlushSkew)), "SSL_CTX_flush_sessions")
	o["left_after_flush_all"] = cache.Metrics().Cache.Number
	detail := fmt.Sprintf("flush removed %d of %d entries", entries-left, entries)
	if e.opts.FlushSkew != 0 {
		detail += fmt.Sprintf(" (flush clock skewed by %s)", e.opts.FlushSkew)
	}
	return o, detail
}

func checkOneCtx(e *env) (Observed, string) {
	v := sslsession.TLS12
	sctx, cctxA := e.ctxPair(v, loopback.Config{})
	_, cctxB := e.ctxPair(v, loopback.Config{})
	p := e.newPair(sctx, cctxA)
	p.handshake()
	s := e.owned1(p.Client, "client")
	p.shutdown()
	other := e.newPair(sctx, cctxB)
	otherRefused := is(other.Client.SetSession(s), sslsession.ErrWrongContext)
	b, err := p.Client.Session()
	e.must(err, "SSL_get0_session")
	borrowedRefused := is(other.Client.SetSession(b), sslsession.ErrWrongContext)
	same := e.newPair(sctx, cctxA)
	ownAccepts := same.Client.SetSession(s) == nil

	der, err := s.MarshalBinary()
	e.must(err, "i2d_SSL_SESSION")
	d, err := sslsession.ParseDER(der)
	e.must(err, "d2i_SSL_SESSION")
	e.defer_(func() { d.Close() })
	first := e.newPair(sctx, cctxB)
	firstOK := first.Client.SetSession(d) == nil
	again := e.newPair(sctx, cctxA)
	binds := firstOK && is(again.Client.SetSession(d), sslsession.ErrWrongContext)
	o := Observed{"other_ctx_refused": otherRefused, "borrowed_other_ctx_refused": borrowedRefused,
		"own_ctx_accepts": ownAccepts, "decoded_binds_to_first_ctx": binds}
	return o, "SSL_set_session with another SSL_CTX's session is refused (ErrWrongContext)"
}

func checkNULL(e *env) (Observed, string) {
	sctx, cctx := e.ctxPair(sslsession.TLS12, loopback.Config{})
	p := e.newPair(sctx, cctx)
	null := true
	for _, side := range []*rawssl.SSL{p.Client, p.Server} {
		_, err := side.Session()
		null = null && is(err, sslsession.ErrNoSession)
		_, err = side.Session()
		null = null && is(err, sslsession.ErrNoSession)
		s, err := side.Session1()
		if err == nil {
			s.Close()
		}
		null = null && is(err, sslsession.ErrNoSession)
	}
	p.handshake()
	s, err := p.Client.Session()
	e.must(err, "SSL_get_session")
	der, err := s.MarshalBinary()
	e.must(err, "i2d_SSL_SESSION")
	kind := fmt.Sprintf("tag 0x%02x", der[0])
	if len(der) > 0 && der[0] == 0x30 {
		kind = "SEQUENCE"
	}
	return Observed{"null_before_handshake": null, "der_after_handshake": kind}, fmt.Sprintf("the session is %d bytes of DER", len(der))
}

func checkDefaultTimeout(e *env) (Observed, string) {
	c, err := openssl.NewCtxWithVersion(openssl.AnyVersion)
	e.must(err, "SSL_CTX_new")
	d := e.sessCtx(c).Timeout()
	return Observed{"seconds": int64(d / time.Second)}, fmt.Sprintf("a new SSL_CTX's sessions time out after %s", d)
}

func checkCacheBound(e *env) (Observed, string) {
	const bound, made = 3, 5
	sctx, cctx := e.ctxPair(sslsession.TLS12, loopback.Config{NoTickets: true})
	sc := e.sessCtx(sctx)
	sc.SetCacheSize(bound)
	var sessions []*sslsession.Session
	for i := 0; i < made; i++ {
		p := e.newPair(sctx, cctx)
		p.handshake()
		sessions = append(sessions, e.owned1(p.Client, "client"))
		p.shutdown()
		p.close()
	}
	st := sc.Metrics().Cache
	// Newest first, until one does not resume (a full handshake then adds
	// a session and evicts another).
	resumed := 0
	for i := len(sessions) - 1; i >= 0 && e.resumes(sctx, cctx, sessions[i]); i-- {
		resumed++
	}
	o := Observed{"bound": sc.CacheSize(), "held": st.Number, "cache_full": st.CacheFull, "newest_resume": int64(resumed)}
	return o, fmt.Sprintf("after %d sessions with a bound of %d the cache held %d", made, bound, st.Number)
}

// checkStats starts handshakes that fail at once (the peer is /dev/null:
// end of file) from several goroutines, in rounds, and compares
// SSL_CTX_sess_accept with the number started after each round, until a
// count is short or statsBudget has passed. OpenSSL 1.0.2 increments a
// plain int without a lock: a few increments in tens of thousands are lost
// (on two cores, usually within the first round or two); 1.1.0+ counts
// atomically and stays exact for the whole budget.
func checkStats(e *env) (Observed, string) {
	const workers = 8
	sctx, _ := e.ctxPair(sslsession.TLS12, loopback.Config{})
	sc := e.sessCtx(sctx)
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	e.must(err, "open "+os.DevNull)
	e.defer_(func() { null.Close() })
	ssls := make([]*rawssl.SSL, workers)
	for i := range ssls {
		ssls[i], err = rawssl.New(sctx)
		e.must(err, "SSL_new")
		s := ssls[i]
		e.defer_(s.Free)
		e.must(s.SetFD(int(null.Fd())), "SSL_set_fd")
	}
	budget := statsBudget
	if v := sslsession.RuntimeVersion(); v.Major() == 1 && v.Minor() == 0 {
		// Lost increments are rare: give the unlocked counter longer.
		budget = statsBudget102
	}
	var started int64
	deadline := time.Now().Add(budget)
	for rounds := 1; ; rounds++ {
		var wg sync.WaitGroup
		var n atomic.Int64
		errc := make(chan error, workers)
		roundEnd := time.Now().Add(statsRound)
		for _, s := range ssls {
			wg.Add(1)
			go func(s *rawssl.SSL) {
				defer wg.Done()
				for time.Now().Before(roundEnd) {
					n.Add(1)
					if s.Accept() == nil {
						errc <- fmt.Errorf("SSL_accept on %s succeeded", os.DevNull)
						return
					}
					if err := s.Clear(); err != nil {
						errc <- err
						return
					}
				}
			}(s)
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			e.must(err, "concurrent SSL_accept")
		}
		started += n.Load()
		got := sc.Metrics().Cache.Accept
		if got > started {
			e.fail("SSL_CTX_sess_accept counted %d handshakes, more than the %d started", got, started)
		}
		if got < started || time.Now().After(deadline) {
			return Observed{"exact": got == started}, fmt.Sprintf("SSL_CTX_sess_accept counted %d of %d handshakes started by %d goroutines in %d rounds",
				got, started, workers, rounds)
		}
	}
}

// How long checkStats looks for a lost increment: in rounds of
// statsRound, for statsBudget, or statsBudget102 on OpenSSL 1.0.2.
const (
	statsRound     = 250 * time.Millisecond
	statsBudget    = 2 * time.Second
	statsBudget102 = 10 * time.Second
)

func checkTLS13Ticket(e *env) (Observed, string) {
	sctx, cctx := e.ctxPair(sslsession.TLS13, loopback.Config{})
	p := e.newPair(sctx, cctx)
	p.connect()
	s := e.owned1(p.Client, "client before reading")
	before := e.info(s, "session before reading").Resumable
	p.readTickets()
	t := e.owned1(p.Client, "client after reading")
	after := e.info(t, "session after reading").Resumable
	p.shutdown()
	return Observed{"resumable_after_handshake": before, "resumable_after_ticket": after, "resumes": e.resumes(sctx, cctx, t)},
		"the client's session became resumable when it read the server's ticket"
}
