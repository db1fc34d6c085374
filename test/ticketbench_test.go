package test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
	"github.com/sslsession/sslsession/redisstore"
)

// resumeOnce dials addr offering sess and reports the time it took and
// whether the handshake resumed.
func resumeOnce(b *testing.B, addr string, cctx *openssl.Ctx, sess *sslsession.Session) (time.Duration, bool) {
	t0 := time.Now()
	c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, Session: sess, ServerName: "localhost", Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	reused := c.SessionReused()
	c.Close()
	return d, reused
}

// benchPair alternates resumptions on two servers, so that both see the
// same load on a busy machine, and reports each one's time per resumption,
// the share of handshakes that resumed on each, and the second's speed
// relative to the first (first's time / second's time).
func benchPair(b *testing.B, names, addrs [2]string, cctx *openssl.Ctx, sess [2]*sslsession.Session) {
	var total [2]time.Duration
	var resumed [2]int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range 2 {
			k := (i + j) % 2 // alternate which goes first
			d, ok := resumeOnce(b, addrs[k], cctx, sess[k])
			total[k] += d
			if ok {
				resumed[k]++
			}
		}
	}
	for k := range 2 {
		b.ReportMetric(float64(total[k].Nanoseconds())/float64(b.N), "ns/resume-"+names[k])
		b.ReportMetric(float64(resumed[k])/float64(b.N), "resumed-"+names[k])
	}
	b.ReportMetric(float64(total[0])/float64(total[1]), "speed-"+names[1]+"/"+names[0])
}

// Ticket resumption on host B of a ticket made on host A, beside
// resumption on A itself: with shared ticket keys there is no store round
// trip, so the two should match. TLS 1.2 (a ticket under the encrypting key
// is not renewed, so the same ticket is offered each time).
func BenchmarkFleetTicketResume(b *testing.B) {
	k, err := sslsession.NewTicketKey()
	require.NoError(b, err)
	ring := []sslsession.TicketRingKey{{Key: k, Encrypt: true, Start: time.Now().Add(-time.Minute)}}
	var addrs [2]string
	for i := range addrs {
		oc, err := loopback.ServerCtx(sesstest.Cert(b), loopback.Config{Max: sslsession.TLS12, NoCache: true})
		require.NoError(b, err)
		sc, err := sslsession.NewCtx(oc)
		require.NoError(b, err)
		require.NoError(b, sc.SetTicketKeys(ring))
		addrs[i] = sesstest.Serve(b, oc).Addr
	}
	cctx, err := loopback.ClientCtx(sesstest.Cert(b), sslsession.TLS12, sslsession.TLS12)
	require.NoError(b, err)
	c, err := sslsession.Dial("tcp", addrs[0], &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost"})
	require.NoError(b, err)
	sess, err := c.Session1()
	require.NoError(b, err)
	c.Close()
	defer sess.Close()
	benchPair(b, [2]string{"A", "B"}, addrs, cctx, [2]*sslsession.Session{sess, sess})
}

// Session-ID resumption from OpenSSL's internal cache, beside the same
// through Redis: "redis-tier" is fleet-server's set-up (the internal cache
// in front of the store: Redis is asked once per session and host),
// "redis-every" turns the internal lookup off so that every resumption is a
// Redis GET.
func BenchmarkFleetSessionIDResume(b *testing.B) {
	srv := sesstest.StartRedis(b)
	seal := make([]byte, 32)
	_, _ = rand.Read(seal)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := redisstore.New(client, redisstore.Options{Prefix: "bench:", Keys: [][]byte{seal}})
	require.NoError(b, err)
	cctx, err := loopback.ClientCtx(sesstest.Cert(b), sslsession.TLS12, sslsession.TLS12)
	require.NoError(b, err)
	server := func(mode string) (string, *sslsession.Ctx) {
		oc, err := loopback.ServerCtx(sesstest.Cert(b), loopback.Config{Max: sslsession.TLS12, NoTickets: true})
		require.NoError(b, err)
		sc, err := sslsession.NewCtx(oc)
		require.NoError(b, err)
		switch mode {
		case "redis-tier", "maker":
			require.NoError(b, sc.SetStore(store, sslsession.StoreOptions{}))
		case "redis-every":
			require.NoError(b, sc.SetStore(store, sslsession.StoreOptions{}))
			sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
		}
		return sesstest.Serve(b, oc).Addr, sc
	}
	session := func(addr string) *sslsession.Session {
		c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost"})
		require.NoError(b, err)
		sess, err := c.Session1()
		require.NoError(b, err)
		c.Close()
		b.Cleanup(func() { sess.Close() })
		return sess
	}
	internalAddr, _ := server("internal")
	internalSess := session(internalAddr)
	makerAddr, _ := server("maker") // host A: its sessions go to Redis
	// A's session, once A has stored it: the server's Put runs after its
	// last flight, so the client can be done first.
	made := session(makerAddr)
	idInfo, err := made.Info()
	id := idInfo.ID
	require.NoError(b, err)
	require.Eventually(b, func() bool {
		_, err := store.Get(b.Context(), id)
		return err == nil
	}, 5*time.Second, time.Millisecond, "A stored its session")
	for _, mode := range []string{"redis-tier", "redis-every"} {
		b.Run(mode, func(b *testing.B) {
			addr, sc := server(mode) // host B resumes A's session
			benchPair(b, [2]string{"internal", "redis"}, [2]string{internalAddr, addr}, cctx, [2]*sslsession.Session{internalSess, made})
			require.Positive(b, sc.Metrics().Store.Hits, "resumed through Redis")
		})
	}
}
