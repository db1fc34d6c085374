package test

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
	"github.com/sslsession/sslsession/prommetrics"
	"github.com/sslsession/sslsession/redisstore"
	"github.com/sslsession/sslsession/ticketring"
)

// recordFirstFlight runs a TCP proxy to target that hands back, per
// connection, what the client sent before the server's first byte reached
// it: its first flight, the ClientHello and its early data. The server's
// bytes are held back until hold has passed since the connection came, so
// that the whole first flight is in.
func recordFirstFlight(t testing.TB, target string, hold time.Duration) (string, <-chan []byte) {
	t.Helper()
	flights := make(chan []byte, 16)
	addr := sesstest.ServeTCP(t, func(cl net.Conn) {
		start := time.Now()
		sv, err := net.Dial("tcp", target)
		if err != nil {
			cl.Close()
			return
		}
		var mu sync.Mutex
		var rec []byte
		done := false
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sv.(*net.TCPConn).CloseWrite()
			buf := make([]byte, 32<<10)
			for {
				n, err := cl.Read(buf)
				mu.Lock()
				if !done {
					rec = append(rec, buf[:n]...)
				}
				mu.Unlock()
				if _, werr := sv.Write(buf[:n]); werr != nil || err != nil {
					return
				}
			}
		}()
		defer wg.Wait()
		defer cl.Close()
		defer sv.Close()
		buf := make([]byte, 32<<10)
		n, err := sv.Read(buf)
		time.Sleep(time.Until(start.Add(hold)))
		mu.Lock()
		done = true
		flights <- append([]byte(nil), rec...)
		mu.Unlock()
		if n > 0 {
			if _, err := cl.Write(buf[:n]); err != nil {
				return
			}
		}
		if err == nil {
			_, _ = io.Copy(cl, sv)
		}
	})
	return addr, flights
}

// acceptedEarlyFlight dials h through a recording proxy with req as early
// data, which h must accept, and returns the connection, h's event of it
// and the client's first flight, to replay.
func acceptedEarlyFlight(t testing.TB, h *earlyHost, cctx *openssl.Ctx, sess *sslsession.Session, req string, hold time.Duration) (*sslsession.Conn, sesstest.EarlyEvent, []byte) {
	t.Helper()
	proxy, flights := recordFirstFlight(t, h.srv.Addr, hold)
	c, early, _ := sesstest.EarlyDial(t, proxy, cctx, sess, req, false)
	require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
	require.Equal(t, req, early)
	ev := h.srv.Event(t)
	return c, ev, <-flights
}

// replayFlight sends a recorded first flight on a new TCP connection, as an
// attacker who copied it would, reads what the server answers for a moment
// and hangs up.
func replayFlight(t testing.TB, addr string, flight []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(flight)
	require.NoError(t, err)
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _ = io.Copy(io.Discard, c)
}

// earlyRedisClient is a go-redis client of the test's Redis, closed with
// the test.
func earlyRedisClient(tb testing.TB, addr string) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond, DialerRetries: 1, MaxRetries: -1})
	tb.Cleanup(func() { c.Close() })
	return c
}

// earlyHost is one server of a fleet: a TLS 1.3 context accepting early
// data, ticket keys from the fleet's ring, and the early data server.
type earlyHost struct {
	sc  *sslsession.Ctx
	srv *sesstest.EarlyServer
}

func newEarlyHost(t testing.TB, redisAddr string, seal []byte, policy *sslsession.EarlyDataPolicy) *earlyHost {
	t.Helper()
	oc := sesstest.ServerCtx(t, sslsession.TLS13, loopback.Config{SessionIDContext: []byte("early-fleet")})
	sc := sesstest.NewCtx(t, oc)
	require.NoError(t, sc.SetMaxEarlyData(16384, 0))
	ring, err := ticketring.New(earlyRedisClient(t, redisAddr), ticketring.Options{Prefix: t.Name(), Keys: [][]byte{seal},
		Interval: time.Minute, Lifetime: 10 * time.Minute, Refresh: time.Second, Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { ring.Close() })
	require.NoError(t, ring.Install(sc))
	require.NoError(t, ring.Sync(t.Context()))
	if policy != nil {
		require.NoError(t, sc.SetEarlyDataPolicy(*policy))
	}
	return &earlyHost{sc: sc, srv: sesstest.StartEarlyServer(t, oc)}
}

// earlySession is a resumable session of host h for cctx.
func earlySession(t testing.TB, h *earlyHost, cctx *openssl.Ctx) *sslsession.Session {
	t.Helper()
	c, _, _ := sesstest.EarlyDial(t, h.srv.Addr, cctx, nil, "hello", false)
	h.srv.Event(t)
	s, err := c.AwaitSession(5 * time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	n, err := s.MaxEarlyData()
	require.NoError(t, err)
	require.Equal(t, uint32(16384), n)
	return s
}

// The fleet test: three servers share a ticket ring and a replay
// cache on Redis. A client's early data, sent with a ticket from host A to
// host B, is accepted there once; its first flight, recorded and replayed
// raw to each of the three, is refused by all: the application never sees
// the early data again.
func TestEarlyDataFleetReplayRefused(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sesstest.EarlyDataOr102(t) {
		return
	}
	rs := sesstest.StartRedis(t)
	seal := make([]byte, 32)
	rc, err := redisstore.NewReplayCache(earlyRedisClient(t, rs.Addr), "early-fleet:")
	require.NoError(t, err)
	policy := &sslsession.EarlyDataPolicy{ReplayCache: rc, Timeout: time.Second}
	var hosts []*earlyHost
	for i := 0; i < 3; i++ {
		hosts = append(hosts, newEarlyHost(t, rs.Addr, seal, policy))
	}
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	sess := earlySession(t, hosts[0], cctx)

	c, ev, flight := acceptedEarlyFlight(t, hosts[1], cctx, sess, "GET /once", 100*time.Millisecond)
	require.True(t, c.SessionReused(), "B resumes A's ticket through the ring")
	require.Equal(t, "GET /once", string(ev.Early))
	require.NotEmpty(t, flight)

	for i, h := range hosts {
		replayFlight(t, h.srv.Addr, flight)
		ev := h.srv.Event(t)
		require.Empty(t, ev.Early, "host %c delivered replayed early data", 'A'+i)
		require.Equal(t, int64(1), h.sc.Metrics().EarlyData.ReplaysRefused, "host %c", 'A'+i)
	}
	require.Equal(t, int64(1), hosts[1].sc.Metrics().EarlyData.Accepted)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(prommetrics.New("sslsession", prommetrics.Sources{Ctx: hosts[1].sc})))
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sslsession_early_data_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	require.Equal(t, map[string]float64{"offered": 2, "accepted": 1, "rejected": 1, "refused": 0, "replays_refused": 1,
		"store_failures": 0, "panics": 0}, got, "Prometheus counters of host B")
	keys, err := rs.Do(t.Context(), "KEYS", "early-fleet:*")
	require.NoError(t, err)
	require.Len(t, strings.Split(keys, "\n"), 1, "one ClientHello recorded")
	ttl, err := rs.Do(t.Context(), "PTTL", keys)
	require.NoError(t, err)
	ms, err := strconv.Atoi(ttl)
	require.NoError(t, err)
	require.InDelta(t, sslsession.DefaultReplayWindow.Milliseconds(), ms, 10000, "kept for the replay window")
}

// The same fleet without the replay cache shows what it is for. With
// OpenSSL's anti-replay on (the default), B cannot resume A's ticket at
// all: single-use tickets live in one process's cache. With it off and no
// cache, every host accepts the replayed early data.
func TestEarlyDataFleetWithoutReplayCache(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sesstest.EarlyDataOr102(t) {
		return
	}
	rs := sesstest.StartRedis(t)
	seal := make([]byte, 32)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)

	t.Run("anti-replay", func(t *testing.T) {
		a, b := newEarlyHost(t, rs.Addr, seal, nil), newEarlyHost(t, rs.Addr, seal, nil)
		sess := earlySession(t, a, cctx)
		c, early, echo := sesstest.EarlyDial(t, b.srv.Addr, cctx, sess, "GET /x", false)
		b.srv.Event(t)
		require.False(t, c.SessionReused(), "B's cache does not hold A's single-use ticket")
		require.Equal(t, sslsession.EarlyDataRejected, c.EarlyDataStatus())
		require.Empty(t, early)
		require.Equal(t, "GET /x", echo)
	})
	t.Run("no-anti-replay", func(t *testing.T) {
		var hosts []*earlyHost
		for i := 0; i < 3; i++ {
			h := newEarlyHost(t, rs.Addr, seal, nil)
			h.sc.Options(sslsession.OptionNoAntiReplay, 0)
			hosts = append(hosts, h)
		}
		sess := earlySession(t, hosts[0], cctx)
		_, _, flight := acceptedEarlyFlight(t, hosts[1], cctx, sess, "GET /twice", 100*time.Millisecond)
		for i, h := range hosts {
			replayFlight(t, h.srv.Addr, flight)
			ev := h.srv.Event(t)
			require.Equal(t, "GET /twice", string(ev.Early), "host %c: the replay is accepted without protection", 'A'+i)
		}
	})
}

// Redis down: early data is refused (the handshake still resumes, with no
// 0-RTT), counted as a store failure, never accepted unprotected.
func TestEarlyDataReplayCacheDown(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sesstest.EarlyDataOr102(t) {
		return
	}
	rs := sesstest.StartRedis(t)
	rc, err := redisstore.NewReplayCache(earlyRedisClient(t, rs.Addr), "")
	require.NoError(t, err)
	h := newEarlyHost(t, rs.Addr, make([]byte, 32), &sslsession.EarlyDataPolicy{ReplayCache: rc, Timeout: 200 * time.Millisecond})
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	sess := earlySession(t, h, cctx)
	rs.Stop()
	c, early, echo := sesstest.EarlyDial(t, h.srv.Addr, cctx, sess, "GET /down", false)
	h.srv.Event(t)
	require.True(t, c.SessionReused())
	require.Equal(t, sslsession.EarlyDataRejected, c.EarlyDataStatus())
	require.Empty(t, early)
	require.Equal(t, "GET /down", echo, "re-sent after the handshake")
	m := h.sc.Metrics().EarlyData
	require.Equal(t, int64(1), m.StoreFailures)
	require.Zero(t, m.Accepted)
}

// One process, two contexts sharing ticket keys and a MemoryReplayCache:
// the second sees the first's ClientHello as a replay; a cache full of
// live keys refuses instead of accepting.
func TestEarlyDataMemoryReplayCache(t *testing.T) {
	sesstest.LeakCheck(t)
	m := sslsession.NewMemoryReplayCache(2)
	added, err := m.Add(t.Context(), []byte("a"), time.Minute)
	require.NoError(t, err)
	require.True(t, added)
	added, err = m.Add(t.Context(), []byte("a"), time.Minute)
	require.NoError(t, err)
	require.False(t, added, "seen")
	_, err = m.Add(t.Context(), []byte("b"), time.Millisecond)
	require.NoError(t, err)
	time.Sleep(5 * time.Millisecond)
	added, err = m.Add(t.Context(), []byte("b"), time.Minute)
	require.NoError(t, err)
	require.True(t, added, "expired keys are forgotten")
	_, err = m.Add(t.Context(), []byte("c"), time.Minute)
	require.ErrorIs(t, err, sslsession.ErrReplayCacheFull)
	if !sesstest.EarlyDataOr102(t) {
		return
	}

	cache := sslsession.NewMemoryReplayCache(0)
	key, err := sslsession.NewTicketKey()
	require.NoError(t, err)
	var hosts []*earlyHost
	for i := 0; i < 2; i++ {
		oc := sesstest.ServerCtx(t, sslsession.TLS13, loopback.Config{SessionIDContext: []byte("early-mem")})
		sc := sesstest.NewCtx(t, oc)
		require.NoError(t, sc.SetMaxEarlyData(1024, 0))
		require.NoError(t, sc.SetTicketKeys([]sslsession.TicketRingKey{{Key: key, Encrypt: true}}))
		require.NoError(t, sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{ReplayCache: cache}))
		hosts = append(hosts, &earlyHost{sc: sc, srv: sesstest.StartEarlyServer(t, oc)})
	}
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	c, _, _ := sesstest.EarlyDial(t, hosts[0].srv.Addr, cctx, nil, "x", false)
	hosts[0].srv.Event(t)
	sess, err := c.AwaitSession(5 * time.Second)
	require.NoError(t, err)
	defer sess.Close()
	_, _, flight := acceptedEarlyFlight(t, hosts[0], cctx, sess, "GET /mem", 50*time.Millisecond)
	for _, h := range hosts {
		replayFlight(t, h.srv.Addr, flight)
		require.Empty(t, h.srv.Event(t).Early)
	}
	require.Equal(t, 1, cache.Len())
}
