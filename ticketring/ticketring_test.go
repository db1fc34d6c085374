package ticketring_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
	"github.com/sslsession/sslsession/ticketring"
)

func TestMain(m *testing.M) { sesstest.Main(m) }

var (
	certOnce sync.Once
	certVal  *loopback.Cert
)

func cert(t testing.TB) *loopback.Cert {
	certOnce.Do(func() {
		c, err := loopback.SelfSigned()
		if err != nil {
			panic(err)
		}
		certVal = c
	})
	return certVal
}

func versions() []sslsession.Version {
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		return []sslsession.Version{sslsession.TLS12, sslsession.TLS13}
	}
	return []sslsession.Version{sslsession.TLS12}
}

func sealKey(t testing.TB) []byte {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// backend is where the rings live: one redis-server or a three-node cluster.
type backend struct {
	name   string
	client func(t testing.TB) redis.UniversalClient
	single *sesstest.Redis // nil for the cluster
}

func singleBackend(t *testing.T) backend {
	srv := sesstest.StartRedis(t)
	return backend{name: "single", single: srv, client: func(t testing.TB) redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1,
			DialTimeout: 100 * time.Millisecond})
		t.Cleanup(func() { c.Close() })
		return c
	}}
}

func backends(t *testing.T) []backend {
	cl := sesstest.StartRedisCluster(t)
	return []backend{
		singleBackend(t),
		{name: "cluster", client: func(t testing.TB) redis.UniversalClient {
			c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
			t.Cleanup(func() { c.Close() })
			return c
		}},
		sentinelBackend(t, sesstest.StartRedisSentinel(t)),
	}
}

// sentinelBackend reaches the master through the sentinel, as go-redis's
// UniversalClient does when given a MasterName.
func sentinelBackend(t *testing.T, st *sesstest.RedisSentinel) backend {
	return backend{name: "sentinel", client: func(t testing.TB) redis.UniversalClient {
		c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: st.Addrs(), MasterName: st.Name,
			ContextTimeoutEnabled: true, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
		t.Cleanup(func() { c.Close() })
		return c
	}}
}

// host is one server of a fleet: a ring, a context and an echo server.
type host struct {
	ring *ticketring.Ring
	sc   *sslsession.Ctx
	srv  *loopback.Server
}

func newHost(t testing.TB, client redis.UniversalClient, v sslsession.Version, opts ticketring.Options) *host {
	t.Helper()
	ring, err := ticketring.NewManual(client, opts)
	require.NoError(t, err)
	t.Cleanup(func() { ring.Close() })
	oc, err := loopback.ServerCtx(cert(t), loopback.Config{Min: v, Max: v, NoCache: true})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	require.NoError(t, ring.Install(sc))
	srv, err := loopback.Serve(oc, cert(t))
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return &host{ring: ring, sc: sc, srv: srv}
}

// goClient is a crypto/tls client; keepFirst keeps the first ticket it got
// instead of each new one.
type goClient struct {
	cfg       *tls.Config
	keepFirst bool
	mu        sync.Mutex
	state     *tls.ClientSessionState
	last      []byte
}

func newGoClient(t testing.TB, v sslsession.Version, keepFirst bool) *goClient {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(cert(t).CertPEM))
	g := &goClient{keepFirst: keepFirst}
	g.cfg = &tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: g,
		MinVersion: uint16(v), MaxVersion: uint16(v), CurvePreferences: []tls.CurveID{tls.CurveP256}}
	return g
}

func (g *goClient) Get(string) (*tls.ClientSessionState, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state, g.state != nil
}

func (g *goClient) Put(_ string, cs *tls.ClientSessionState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cs == nil || (g.keepFirst && g.state != nil) {
		return
	}
	g.state = cs
	if ticket, _, err := cs.ResumptionState(); err == nil {
		g.last = bytes.Clone(ticket)
	}
}

func (g *goClient) lastName() [16]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	n, _ := sslsession.TicketKeyName(g.last)
	return n
}

// dial makes one connection and echoes; an error is a failed handshake.
func (g *goClient) dial(addr string) (bool, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, g.cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return false, err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return false, err
	}
	return c.ConnectionState().DidResume, nil
}

func mustDial(t testing.TB, g *goClient, addr string) bool {
	t.Helper()
	resumed, err := g.dial(addr)
	require.NoError(t, err)
	return resumed
}

func TestFleetSharesOneRing(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, v := range versions() {
				t.Run(v.String(), func(t *testing.T) {
					opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: time.Hour}
					var hosts []*host
					for i := 0; i < 3; i++ {
						h := newHost(t, b.client(t), v, opts)
						require.NoError(t, h.ring.Sync(t.Context()))
						hosts = append(hosts, h)
					}
					names, fleet := hosts[0].ring.Names()
					require.True(t, fleet)
					require.Len(t, names, 2, "the current key and the published next one")
					for _, h := range hosts[1:] {
						n, fleet := h.ring.Names()
						assert.True(t, fleet)
						assert.Equal(t, names, n, "one ring for the fleet")
					}
					g := newGoClient(t, v, false)
					assert.False(t, mustDial(t, g, hosts[0].srv.Addr))
					assert.Equal(t, names[0], g.lastName())
					assert.True(t, mustDial(t, g, hosts[1].srv.Addr), "A's ticket resumes on B")
					assert.True(t, mustDial(t, g, hosts[2].srv.Addr), "and on C")
					st := hosts[0].ring.Stats()
					assert.Equal(t, int64(1), st.Rotations+hosts[1].ring.Stats().Rotations+hosts[2].ring.Stats().Rotations,
						"one server created the ring")
					assert.False(t, st.Local)
				})
			}
		})
	}
}

// A ticket made before rotations resumes (renewed under the encrypting
// key) until its key's decrypt lifetime ends, then gives a full handshake;
// never an error.
func TestRotationWhileClientsReturn(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, v := range versions() {
				t.Run(v.String(), func(t *testing.T) {
					interval, lifetime := 300*time.Millisecond, 600*time.Millisecond
					opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: interval, Lifetime: lifetime}
					a, bh := newHost(t, b.client(t), v, opts), newHost(t, b.client(t), v, opts)
					require.NoError(t, a.ring.Sync(t.Context()))
					require.NoError(t, bh.ring.Sync(t.Context()))
					old := newGoClient(t, v, true) // always offers its first ticket
					require.False(t, mustDial(t, old, a.srv.Addr))
					issued := time.Now()
					first := old.lastName()
					var resumedUntil time.Duration
					sawFull, renewed := false, 0
					for time.Since(issued) < interval+lifetime+2*interval {
						for _, h := range []*host{a, bh} {
							require.NoError(t, h.ring.Sync(t.Context()))
						}
						g := newGoClient(t, v, false)
						g.state, g.last = old.state, nil
						// The server decides between the dial's start and
						// its end, and a rotation may fall in between: the
						// times are bounded by the start, the renewed name
						// is the encrypting key at the start or at the end.
						start := time.Now()
						curBefore, okBefore := bh.sc.EncryptingTicketKey(start)
						resumed, err := g.dial(bh.srv.Addr)
						require.NoError(t, err, "never a failed handshake")
						curAfter, okAfter := bh.sc.EncryptingTicketKey(time.Now())
						if resumed {
							require.False(t, sawFull, "no resumption after the key's lifetime ended")
							resumedUntil = start.Sub(issued)
							if g.last != nil && g.lastName() != first {
								require.True(t, okBefore && okAfter)
								assert.Contains(t, [][16]byte{curBefore, curAfter}, g.lastName(), "a renewed ticket carries the encrypting key's name")
								renewed++
							}
						} else {
							sawFull = true
						}
						time.Sleep(interval / 6)
					}
					assert.True(t, sawFull, "the key's lifetime ended")
					assert.Greater(t, resumedUntil, interval, "resumed across at least one rotation")
					assert.LessOrEqual(t, resumedUntil, 2*interval+lifetime+interval/2)
					assert.Positive(t, renewed, "tickets under older keys were renewed")
					st := bh.sc.Metrics().Tickets
					assert.Positive(t, st.Renewed)
					assert.Positive(t, st.Expired+st.UnknownKey)
					assert.Zero(t, st.Errors)
					t.Logf("ticket resumed for %v (interval %v, lifetime %v); renewed %d times", resumedUntil.Round(time.Millisecond), interval, lifetime, renewed)
				})
			}
		})
	}
}

// Two servers find the ring due for rotation at the same time: one write
// wins, the other reads the winner's ring.
func TestTwoServersRotateAtOnce(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			interval := 200 * time.Millisecond
			opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: interval}
			a := newHost(t, b.client(t), sslsession.TLS12, opts)
			bh := newHost(t, b.client(t), sslsession.TLS12, opts)
			require.NoError(t, a.ring.Sync(t.Context()))
			require.NoError(t, bh.ring.Sync(t.Context()))
			before, _ := a.ring.Names()
			time.Sleep(interval + 10*time.Millisecond) // the next key is now current: both will rotate

			reached, release := make(chan struct{}), make(chan struct{})
			a.ring.SetBeforeWrite(func() { close(reached); <-release })
			errc := make(chan error, 1)
			go func() { errc <- a.ring.Sync(context.Background()) }()
			<-reached
			require.NoError(t, bh.ring.Sync(t.Context())) // B writes while A holds its stale read
			a.ring.SetBeforeWrite(nil)
			close(release)
			require.NoError(t, <-errc)

			na, _ := a.ring.Names()
			nb, _ := bh.ring.Names()
			assert.Equal(t, nb, na, "one ring")
			assert.Len(t, na, len(before)+1, "exactly one key added")
			assert.Equal(t, before, na[:len(before)])
			assert.Equal(t, int64(1), a.ring.Stats().Conflicts, "A lost the race and read B's ring")
			assert.Equal(t, int64(2), a.ring.Stats().Rotations+bh.ring.Stats().Rotations, "creation and one rotation")
		})
	}
}

// Sentinel fails the master over to its replica: the ring lives on in the
// promoted replica, the hosts refresh from it, a host started after the
// failover reads the same ring, and tickets issued before resume on every
// host, the new one included.
func TestSentinelFailover(t *testing.T) {
	st := sesstest.StartRedisSentinel(t)
	b := sentinelBackend(t, st)
	v := versions()[len(versions())-1]
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}}
	a := newHost(t, b.client(t), v, opts)
	require.NoError(t, a.ring.Sync(t.Context()))
	before, _ := a.ring.Names()
	g := newGoClient(t, v, true)
	require.False(t, mustDial(t, g, a.srv.Addr))

	st.Failover()
	// go-redis finds the new master at its next connection; the old one's
	// pooled connections fail first.
	require.Eventually(t, func() bool { return a.ring.Sync(t.Context()) == nil }, 10*time.Second, 50*time.Millisecond,
		"A refreshes from the promoted replica")
	late := newHost(t, b.client(t), v, opts)
	require.NoError(t, late.ring.Sync(t.Context()))
	na, _ := a.ring.Names()
	nl, fleet := late.ring.Names()
	assert.True(t, fleet, "the late host joined the fleet's ring")
	assert.Equal(t, before, na, "the failover lost no key")
	assert.Equal(t, na, nl, "one ring after the failover")
	assert.True(t, mustDial(t, g, late.srv.Addr), "a ticket from before the failover resumes on the new host")
	assert.True(t, mustDial(t, g, a.srv.Addr), "and on A")
	assert.Zero(t, late.ring.Stats().Fallbacks)
}

// A server that joins late reads the ring and resumes every ticket the
// fleet issued.
func TestLateJoiner(t *testing.T) {
	b := singleBackend(t)
	for _, v := range versions() {
		t.Run(v.String(), func(t *testing.T) {
			opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}}
			a := newHost(t, b.client(t), v, opts)
			require.NoError(t, a.ring.Sync(t.Context()))
			g := newGoClient(t, v, true)
			require.False(t, mustDial(t, g, a.srv.Addr))
			late := newHost(t, b.client(t), v, opts)
			assert.False(t, mustDial(t, newGoClient(t, v, false), late.srv.Addr), "serves before its first read")
			require.NoError(t, late.ring.Sync(t.Context()))
			assert.True(t, mustDial(t, g, late.srv.Addr))
		})
	}
}

// Redis down: the ring is kept; outlived, host-local keys (counted); Redis
// back: rejoin. A server started with Redis down serves at once.
func TestRedisDown(t *testing.T) {
	b := singleBackend(t)
	interval := 200 * time.Millisecond
	var logs bytes.Buffer
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: interval,
		Timeout: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))}
	a := newHost(t, b.client(t), sslsession.TLS12, opts)
	require.NoError(t, a.ring.Sync(t.Context()))
	g := newGoClient(t, sslsession.TLS12, true)
	require.False(t, mustDial(t, g, a.srv.Addr))

	b.single.Stop()
	require.Error(t, a.ring.Sync(t.Context()))
	assert.False(t, a.ring.Stats().Local, "the ring is kept while it has a key to encrypt with")
	cold := newHost(t, b.client(t), sslsession.TLS12, opts)
	require.Error(t, cold.ring.Sync(t.Context()))
	assert.True(t, cold.ring.Stats().Local)
	assert.False(t, mustDial(t, newGoClient(t, sslsession.TLS12, false), cold.srv.Addr), "a server started with Redis down serves")

	time.Sleep(2*interval + 20*time.Millisecond)
	require.Error(t, a.ring.Sync(t.Context()))
	st := a.ring.Stats()
	assert.True(t, st.Local)
	assert.Equal(t, int64(1), st.Fallbacks)
	assert.Positive(t, st.RefreshErrors)
	assert.True(t, mustDial(t, g, a.srv.Addr), "the fleet's keys still decrypt while their lifetime lasts")
	local := newGoClient(t, sslsession.TLS12, false)
	require.False(t, mustDial(t, local, a.srv.Addr))
	assert.True(t, mustDial(t, local, a.srv.Addr), "host-local tickets resume on the host")

	b.single.Restart()
	require.NoError(t, a.ring.Sync(t.Context()))
	require.NoError(t, cold.ring.Sync(t.Context()))
	assert.False(t, a.ring.Stats().Local)
	assert.Equal(t, int64(1), a.ring.Stats().Rejoins)
	assert.Equal(t, int64(1), cold.ring.Stats().Rejoins)
	na, _ := a.ring.Names()
	nc, _ := cold.ring.Names()
	assert.Equal(t, na, nc)
	assert.True(t, mustDial(t, local, a.srv.Addr), "host-local tickets still resume after the rejoin")
	assert.Contains(t, logs.String(), "host-local keys")
	assert.Contains(t, logs.String(), "fleet's ring again")
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Seventeen bytes from any Redis writer (a version, an unknown key ID,
// zeros) are not trusted for what their header claims: the next Sync
// replaces them with the fleet's keys, counted and logged once, and the
// fleet goes on sharing tickets.
func TestForgedHeaderHeals(t *testing.T) {
	b := singleBackend(t)
	var logs bytes.Buffer
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)},
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))}
	a := newHost(t, b.client(t), sslsession.TLS12, opts)
	c := newHost(t, b.client(t), sslsession.TLS12, opts)
	require.NoError(t, a.ring.Sync(t.Context()))
	names, _ := a.ring.Names()
	for i := 0; i < 3; i++ {
		_, err := b.single.Do(t.Context(), "SET", a.ring.Key(), "\x01\xde\xad\xbe\xef"+strings.Repeat("\x00", 12))
		require.NoError(t, err)
		require.NoError(t, a.ring.Sync(t.Context()))
		require.NoError(t, c.ring.Sync(t.Context()))
	}
	st := a.ring.Stats()
	assert.Equal(t, int64(3), st.Foreign, "each forged value counted")
	_, err := b.single.Do(t.Context(), "SET", a.ring.Key(), "\x07garbage")
	require.NoError(t, err)
	assert.False(t, st.Local)
	now, _ := a.ring.Names()
	assert.Equal(t, names, now, "the fleet's keys are kept")
	nc, _ := c.ring.Names()
	assert.Equal(t, names, nc, "and the other server reads them")
	assert.Zero(t, c.ring.Stats().Foreign, "the other server never saw the forgery")
	g := newGoClient(t, sslsession.TLS12, false)
	require.False(t, mustDial(t, g, a.srv.Addr))
	assert.True(t, mustDial(t, g, c.srv.Addr), "A's ticket resumes on C")
	assert.Equal(t, 1, strings.Count(logs.String(), "names a sealing key"), "logged once while it goes on")
	require.NoError(t, a.ring.Sync(t.Context()))
	assert.Equal(t, int64(1), a.ring.Stats().Tampered)
	require.NoError(t, a.ring.Sync(t.Context()))
	_, err = b.single.Do(t.Context(), "SET", a.ring.Key(), "\x01\xde\xad\xbe\xef")
	require.NoError(t, err)
	require.NoError(t, a.ring.Sync(t.Context()))
	assert.Equal(t, 2, strings.Count(logs.String(), "names a sealing key"), "a new episode after a clean read is logged again")
	var ttl string
	ttl, err = b.single.Do(t.Context(), "PTTL", a.ring.Key())
	require.NoError(t, err)
	assert.NotEqual(t, "-1", ttl, "the ring has a TTL")
}

// Two servers with different sealing keys (a rotation done out of order)
// overwrite each other's ring, each write counted and logged, and both keep
// serving; neither is locked out.
func TestOtherSealingKeys(t *testing.T) {
	b := singleBackend(t)
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}}
	a := newHost(t, b.client(t), sslsession.TLS12, opts)
	require.NoError(t, a.ring.Sync(t.Context()))

	var logs bytes.Buffer
	other := opts
	other.Keys = [][]byte{sealKey(t)}
	other.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	d := newHost(t, b.client(t), sslsession.TLS12, other)
	for i := 0; i < 3; i++ {
		require.NoError(t, d.ring.Sync(t.Context()))
	}
	st := d.ring.Stats()
	assert.Equal(t, int64(1), st.Foreign, "replaced once, then its own ring is read")
	assert.False(t, st.Local)
	assert.Equal(t, 1, strings.Count(logs.String(), "names a sealing key"), "logged once")
	require.NoError(t, a.ring.Sync(t.Context()))
	assert.Equal(t, int64(1), a.ring.Stats().Foreign, "A finds D's ring and replaces it in turn")
	g := newGoClient(t, sslsession.TLS12, false)
	require.False(t, mustDial(t, g, a.srv.Addr))
	assert.True(t, mustDial(t, g, a.srv.Addr))
	g = newGoClient(t, sslsession.TLS12, false)
	require.False(t, mustDial(t, g, d.srv.Addr))
	assert.True(t, mustDial(t, g, d.srv.Addr), "both serve and resume their own tickets")
}

// A tampered ring is counted, logged once and replaced with one carrying
// the keys the server knows.
func TestTamperedRing(t *testing.T) {
	b := singleBackend(t)
	var logs bytes.Buffer
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)},
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))}
	a := newHost(t, b.client(t), sslsession.TLS12, opts)
	require.NoError(t, a.ring.Sync(t.Context()))
	names, _ := a.ring.Names()
	stored, err := b.single.Do(t.Context(), "GET", a.ring.Key())
	require.NoError(t, err)
	g := newGoClient(t, sslsession.TLS12, true)
	require.False(t, mustDial(t, g, a.srv.Addr))

	for i, bad := range []string{
		stored[:len(stored)-1] + string(stored[len(stored)-1]^1), // a flipped bit
		stored[:10],   // truncated
		"\x07garbage", // another format
	} {
		_, err := b.single.Do(t.Context(), "SET", a.ring.Key(), bad)
		require.NoError(t, err)
		require.NoError(t, a.ring.Sync(t.Context()), "case %d", i)
		now, _ := a.ring.Names()
		assert.Equal(t, names, now, "the keys are kept")
		fresh := newHost(t, b.client(t), sslsession.TLS12, opts)
		require.NoError(t, fresh.ring.Sync(t.Context()))
		assert.True(t, mustDial(t, g, fresh.srv.Addr), "the repaired ring carries the fleet's keys")
	}
	assert.Equal(t, int64(3), a.ring.Stats().Tampered)
	assert.Equal(t, 1, strings.Count(logs.String(), "tampered"), "logged once")
}

func TestOptions(t *testing.T) {
	srv := sesstest.StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	defer c.Close()
	for name, o := range map[string]ticketring.Options{
		"no keys":       {},
		"bad key":       {Keys: [][]byte{make([]byte, 7)}},
		"long lifetime": {Keys: [][]byte{sealKey(t)}, Lifetime: ticketring.MaxLifetime + time.Second},
		"short":         {Keys: [][]byte{sealKey(t)}, Interval: time.Millisecond},
	} {
		_, err := ticketring.New(c, o)
		assert.ErrorIs(t, err, ticketring.ErrOptions, name)
	}
	_, err := ticketring.New(redis.NewClient(&redis.Options{Addr: srv.Addr}), ticketring.Options{Keys: [][]byte{sealKey(t)}})
	assert.ErrorIs(t, err, ticketring.ErrOptions, "ContextTimeoutEnabled off")
	_, err = ticketring.New(nil, ticketring.Options{Keys: [][]byte{sealKey(t)}})
	assert.ErrorIs(t, err, ticketring.ErrOptions)

	// New refreshes in the background.
	r, err := ticketring.New(c, ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: 400 * time.Millisecond})
	require.NoError(t, err)
	defer r.Close()
	require.Eventually(t, func() bool { return !r.Stats().Local }, 5*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return r.Stats().Rotations >= 2 }, 5*time.Second, 10*time.Millisecond, "rotated by itself")
	require.NoError(t, r.Close())
}

// No key appears in logs, stats, errors or Redis in clear.
func TestKeysNeverLeak(t *testing.T) {
	b := singleBackend(t)
	var logs bytes.Buffer
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: 150 * time.Millisecond,
		Timeout: 50 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	a := newHost(t, b.client(t), sslsession.TLS12, opts)
	var errs []string
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	collect(a.ring.Sync(t.Context()))
	time.Sleep(200 * time.Millisecond)
	collect(a.ring.Sync(t.Context()))
	b.single.Stop()
	time.Sleep(350 * time.Millisecond)
	collect(a.ring.Sync(t.Context()))
	b.single.Restart()
	collect(a.ring.Sync(t.Context()))
	stored, err := b.single.Do(t.Context(), "GET", a.ring.Key())
	require.NoError(t, err)
	stats, err := json.Marshal(a.ring.Stats())
	require.NoError(t, err)
	metrics, err := json.Marshal(a.sc.Metrics())
	require.NoError(t, err)
	out := logs.String() + strings.Join(errs, "\n") + string(stats) + string(metrics) + fmt.Sprintf("%v %+v", a.ring.Stats(), a.sc.Metrics())
	require.NotEmpty(t, logs.String())
	secrets := a.ring.Secrets()
	require.NotEmpty(t, secrets)
	for _, s := range secrets {
		for _, part := range [][]byte{s[:32], s[32:]} {
			assert.NotContains(t, out, hex.EncodeToString(part))
			assert.NotContains(t, out, string(part))
			assert.NotContains(t, stored, string(part), "sealed in Redis")
		}
	}
}
