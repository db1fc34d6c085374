package ticketring_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync/atomic"
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

// TestRingSoak runs a fleet of five servers on one Redis (with a Sentinel
// and a replica) for 90 simulated days, a minute at a time, under what a
// fleet meets over months: clocks skewed by up to two minutes, one clock
// thirty days ahead for an hour, Redis flushed, Redis restored from a
// day-old snapshot, a failover to a replica whose clock is 20 s off, and one
// server cut off from Redis for three days. Every simulated minute it
// checks, for every server, that the key it issues tickets under now
// decrypts on every other connected server for Lifetime, that no key
// encrypts for longer than Interval (plus the step and Redis's clock
// difference) nor ever encrypts again after its turn, and that the ring
// stays under its bound; after every Sync, that the server holds every key
// the connected servers issued tickets under in the last Lifetime. Every
// simulated hour it runs real handshakes: a ticket from one server resumes
// on another, and a ticket close to Lifetime old resumes too.
//
// The windows where a ticket may not resume everywhere, as docs/fleet.md
// states them, are the only exclusions: tickets a server issues under its
// host-local keys while cut off resume on it alone, and a server whose
// clock jumps decides by the wrong clock until its next Sync (at most
// Refresh).
func TestRingSoak(t *testing.T) {
	for _, c := range []struct {
		name                        string
		interval, lifetime, refresh time.Duration
	}{
		{"15m-24h", 15 * time.Minute, 24 * time.Hour, 7 * time.Minute},
		{"1h-7d", time.Hour, 7 * 24 * time.Hour, 30 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSoak(t, sesstest.StartRedisSentinel(t), c.interval, c.lifetime, c.refresh)
			s.run(soakDays * 24 * time.Hour)
			s.report()
		})
	}
}

const (
	soakHosts = 5
	step      = time.Minute
	jumpHost  = 2 // its clock jumps 30 days ahead for an hour
	cutHost   = 4 // cut off from Redis for three days
	soakDays  = 90
)

type soakHost struct {
	ring    *ticketring.Ring
	sc      *sslsession.Ctx
	srv     *loopback.Server
	skew    time.Duration
	jump    atomic.Int64 // nanoseconds added to its clock
	cut     atomic.Bool
	online  bool    // its last Sync succeeded
	window  bool    // in a documented window: its tickets are not checked
	sched   []sched // its Encrypt keys by start, in the fleet's time
	keys    map[[16]byte]time.Time
	gen     uint64 // the ring's PublishedGen when keys and sched were built
	lastErr error
}

type sched struct {
	start, until time.Time
	name         [16]byte
	local        bool
}

// issued is what the fleet issued under one key name.
type issued struct {
	first, last time.Time
	local       bool
}

type ticket struct {
	state  *tls.ClientSessionState
	v      sslsession.Version
	at     time.Time
	issuer int
}

type soak struct {
	t                           *testing.T
	st                          *sesstest.RedisSentinel
	interval, lifetime, refresh time.Duration
	prefix                      string
	sim                         atomic.Int64 // the true time, Unix ns
	redisSkew                   atomic.Int64
	hosts                       []*soakHost
	names                       map[[16]byte]*issued // issued in the last Lifetime
	done                        map[[16]byte]bool    // issued before that: never again
	tickets                     []ticket
	logs                        *bytes.Buffer
	handshakes, resumed         int
	checks                      int
	start                       time.Time
	wall                        time.Time
}

func newSoak(t *testing.T, st *sesstest.RedisSentinel, interval, lifetime, refresh time.Duration) *soak {
	s := &soak{t: t, st: st, interval: interval, lifetime: lifetime, refresh: refresh, prefix: t.Name(),
		names: map[[16]byte]*issued{}, done: map[[16]byte]bool{}, logs: &bytes.Buffer{}, wall: time.Now()}
	s.start = time.Now().Truncate(time.Hour)
	s.sim.Store(s.start.UnixNano())
	logger := slog.New(slog.NewTextHandler(&syncWriter{w: s.logs}, nil))
	c := cert(t)
	for i := 0; i < soakHosts; i++ {
		h := &soakHost{skew: time.Duration(i-2) * time.Minute} // -2m … +2m
		client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: st.Addrs(), MasterName: st.Name,
			ContextTimeoutEnabled: true, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
			Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if h.cut.Load() {
					return nil, fmt.Errorf("host cut off")
				}
				conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				return &cutConn{Conn: conn, cut: &h.cut}, err
			}})
		t.Cleanup(func() { client.Close() })
		ring, err := ticketring.NewManual(client, ticketring.Options{Prefix: s.prefix, Keys: [][]byte{soakSealKey},
			Interval: interval, Lifetime: lifetime, Refresh: refresh, Logger: logger.With("host", i),
			Clock: func() time.Time {
				return time.Unix(0, s.sim.Load()+int64(h.skew)+h.jump.Load())
			}})
		require.NoError(t, err)
		ring.SetRedisClock(func() time.Time { return time.Unix(0, s.sim.Load()+s.redisSkew.Load()) })
		vs := versions()
		oc, err := loopback.ServerCtx(c, loopback.Config{Min: vs[0], Max: vs[len(vs)-1], NoCache: true})
		require.NoError(t, err)
		h.sc, err = sslsession.NewCtx(oc)
		require.NoError(t, err)
		h.sc.SetTimeout(lifetime)
		require.NoError(t, ring.Install(h.sc))
		h.srv, err = loopback.Serve(oc, c)
		require.NoError(t, err)
		t.Cleanup(func() { h.srv.Close() })
		h.ring = ring
		s.hosts = append(s.hosts, h)
	}
	return s
}

var soakSealKey = bytes.Repeat([]byte{7}, 32)

// cutConn fails every read and write once its host is cut off.
type cutConn struct {
	net.Conn
	cut *atomic.Bool
}

func (c *cutConn) Read(p []byte) (int, error) {
	if c.cut.Load() {
		return 0, fmt.Errorf("host cut off")
	}
	return c.Conn.Read(p)
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.cut.Load() {
		return 0, fmt.Errorf("host cut off")
	}
	return c.Conn.Write(p)
}

func (s *soak) now() time.Time { return time.Unix(0, s.sim.Load()) }

// sync runs one host's Sync and checks what it published.
func (s *soak) sync(i int) {
	h := s.hosts[i]
	h.lastErr = h.ring.Sync(context.Background())
	h.online = h.lastErr == nil
	if h.online {
		h.window = false
	}
	if gen := h.ring.PublishedGen(); gen != h.gen || h.keys == nil {
		h.gen = gen
		h.index()
	}
	if n := h.ring.FleetLen(); n > int((s.lifetime+s.interval-1)/s.interval)+3 {
		s.t.Fatalf("day %.2f: host %d holds a ring of %d keys, over its bound", s.day(), i, n)
	}
	// Every key a connected server issued tickets under in the last
	// Lifetime decrypts here for the rest of that Lifetime.
	if !h.online || h.window {
		return
	}
	tol := s.tolerance()
	for name, is := range s.names {
		if is.local || !is.last.Add(s.lifetime).After(s.now().Add(tol)) {
			continue
		}
		until, ok := h.keys[name]
		s.checks++
		if !ok {
			s.t.Fatalf("day %.2f: host %d lacks key %x issued until %v", s.day(), i, name, is.last)
		}
		if until.Add(tol).Before(is.last.Add(s.lifetime)) {
			s.t.Fatalf("day %.2f: host %d drops key %x early", s.day(), i, name)
		}
	}
}

// index rebuilds what the checks read of the host's published keys.
func (h *soakHost) index() {
	keys, _ := h.ring.Published()
	h.keys = make(map[[16]byte]time.Time, len(keys))
	h.sched = h.sched[:0]
	local := map[[16]byte]bool{}
	names, _ := h.ring.Names()
	fleet := map[[16]byte]bool{}
	for _, n := range names {
		fleet[n] = true
	}
	for _, k := range keys {
		h.keys[k.Key.Name()] = k.Until
		if !fleet[k.Key.Name()] {
			local[k.Key.Name()] = true
		}
		if k.Encrypt {
			h.sched = append(h.sched, sched{start: k.Start, until: k.Until, name: k.Key.Name(), local: local[k.Key.Name()]})
		}
	}
	sort.Slice(h.sched, func(a, b int) bool { return h.sched[a].start.Before(h.sched[b].start) })
}

// tolerance covers the step, the host's view of Redis's clock and Redis's
// own clock difference after the failover.
func (s *soak) tolerance() time.Duration { return step + 30*time.Second }

func (s *soak) day() float64 { return float64(s.now().Sub(s.start)) / float64(24*time.Hour) }

// encrypting is what h issues under at fleet time t.
func (h *soakHost) encrypting(t time.Time) (sched, bool) {
	i := sort.Search(len(h.sched), func(i int) bool { return h.sched[i].start.After(t) }) - 1
	for ; i >= 0; i-- {
		if h.sched[i].until.After(t) {
			return h.sched[i], true
		}
	}
	if len(h.sched) > 0 {
		return h.sched[0], true
	}
	return sched{}, false
}

func (s *soak) run(total time.Duration) {
	t := s.t
	for i := range s.hosts {
		s.sync(i)
	}
	refresh := int(s.refresh / step)
	var snapshot string
	for m := 0; time.Duration(m)*step < total; m++ {
		s.sim.Store(s.start.Add(time.Duration(m) * step).UnixNano())
		day := time.Duration(m) * step
		switch day {
		case 10 * 24 * time.Hour:
			s.hosts[jumpHost].jump.Store(int64(30 * 24 * time.Hour))
			s.hosts[jumpHost].window = true
		case 10*24*time.Hour + time.Hour:
			s.hosts[jumpHost].jump.Store(0)
			s.hosts[jumpHost].window = true
		case 20 * 24 * time.Hour:
			_, err := s.master().Do(context.Background(), "FLUSHALL")
			require.NoError(t, err)
		case 29 * 24 * time.Hour:
			var err error
			snapshot, err = s.master().Do(context.Background(), "DUMP", s.hosts[0].ring.Key())
			require.NoError(t, err)
		case 30 * 24 * time.Hour:
			_, err := s.master().Do(context.Background(), "RESTORE", s.hosts[0].ring.Key(), "0", snapshot, "REPLACE")
			require.NoError(t, err)
		case 40 * 24 * time.Hour:
			s.st.Failover()
			s.redisSkew.Store(int64(20 * time.Second))
			// The clients find the new master through the sentinel.
			deadline := time.Now().Add(20 * time.Second)
			for i := range s.hosts {
				for s.hosts[i].ring.Sync(context.Background()) != nil {
					require.True(t, time.Now().Before(deadline), "host %d never reached the new master", i)
					time.Sleep(50 * time.Millisecond)
				}
			}
		case 50 * 24 * time.Hour:
			s.hosts[cutHost].cut.Store(true)
		case 53 * 24 * time.Hour:
			s.hosts[cutHost].cut.Store(false)
		}
		for i := range s.hosts {
			if (m+i*3)%refresh == 0 {
				s.sync(i)
			}
		}
		s.minute()
		if m%60 == 0 {
			s.handshakes1(m / 60)
		}
	}
}

// master is the Redis that holds the ring now.
func (s *soak) master() *sesstest.Redis {
	addr, err := s.st.MasterAddr(context.Background())
	require.NoError(s.t, err)
	if addr == s.st.Replica.Addr {
		return s.st.Replica
	}
	return s.st.Master
}

// minute checks what every server issues tickets under now.
func (s *soak) minute() {
	t := s.t
	now := s.now()
	tol := s.tolerance()
	if now.Minute() == 0 {
		for name, is := range s.names {
			if is.last.Add(s.lifetime + tol).Before(now) {
				delete(s.names, name)
				s.done[name] = true
			}
		}
	}
	for i, h := range s.hosts {
		if h.window {
			continue // it decides by a clock that just jumped
		}
		// What the host's contexts do: by its own view of the fleet's time.
		k, ok := h.encrypting(h.ring.FleetNow())
		if !ok {
			t.Fatalf("day %.2f: host %d has no key to encrypt with", s.day(), i)
		}
		is := s.names[k.name]
		if s.done[k.name] {
			t.Fatalf("day %.2f: key %x encrypts again, a Lifetime after its turn", s.day(), k.name)
		}
		if is == nil {
			is = &issued{first: now, last: now, local: k.local}
			s.names[k.name] = is
		}
		if is.last.Add(step).Before(now) {
			t.Fatalf("day %.2f: key %x encrypts again after its turn (last %v)", s.day(), k.name, is.last)
		}
		is.last = now
		is.local = is.local || k.local
		if !is.local {
			if d := is.last.Sub(is.first); d > s.interval+tol {
				t.Fatalf("day %.2f: key %x encrypts for %v, more than Interval and the tolerance", s.day(), k.name, d)
			}
		}
		if is.local || !h.online {
			continue
		}
		for j, o := range s.hosts {
			if j == i || !o.online || o.window {
				continue
			}
			until, ok := o.keys[k.name]
			s.checks++
			if !ok {
				t.Fatalf("day %.2f: host %d issues under %x, which host %d lacks", s.day(), i, k.name, j)
			}
			if until.Add(tol).Before(now.Add(s.lifetime)) {
				t.Fatalf("day %.2f: host %d drops %x early", s.day(), j, k.name)
			}
		}
	}
}

// handshakes1 runs the hour's real handshakes: a new ticket from one
// server resumes on the next connected one, and the oldest ticket still
// inside Lifetime (less an hour) resumes on a third.
func (s *soak) handshakes1(hour int) {
	t := s.t
	online := func(i int) bool { return s.hosts[i].online && !s.hosts[i].window }
	issuer := hour % soakHosts
	if !online(issuer) || s.hosts[issuer].ring.Stats().Local {
		return
	}
	vs := versions()
	v := vs[hour%len(vs)]
	// Contexts decide by the process's clock: publish the ring as of now.
	s.sync(issuer)
	g := newGoClient(t, v, true)
	resumed, err := g.dial(s.hosts[issuer].srv.Addr)
	require.NoError(t, err)
	require.False(t, resumed)
	s.handshakes++
	s.tickets = append(s.tickets, ticket{state: g.state, v: v, at: s.now(), issuer: issuer})
	try := func(tk ticket, target int) {
		if !online(target) || target == tk.issuer {
			return
		}
		s.sync(target)
		c := newGoClient(t, tk.v, true)
		c.state = tk.state
		resumed, err := c.dial(s.hosts[target].srv.Addr)
		require.NoError(t, err)
		s.handshakes++
		require.True(t, resumed, "day %.2f: a %v ticket from host %d issued %v ago does not resume on host %d",
			s.day(), tk.v, tk.issuer, s.now().Sub(tk.at), target)
		s.resumed++
	}
	try(s.tickets[len(s.tickets)-1], (issuer+1)%soakHosts)
	// The oldest ticket still an hour inside Lifetime.
	for len(s.tickets) > 0 && s.now().Sub(s.tickets[0].at) > s.lifetime-time.Hour {
		s.tickets = s.tickets[1:]
	}
	if hour%6 == 0 && len(s.tickets) > 1 {
		try(s.tickets[0], (issuer+2)%soakHosts)
	}
}

func (s *soak) report() {
	t := s.t
	var total ticketring.Stats
	for i, h := range s.hosts {
		st := h.ring.Stats()
		t.Logf("host %d: %+v", i, st)
		total.Rotations += st.Rotations
		total.Conflicts += st.Conflicts
		total.Recreated += st.Recreated
		total.Rollbacks += st.Rollbacks
		total.Foreign += st.Foreign
		total.Tampered += st.Tampered
		total.FutureKeys += st.FutureKeys
		total.HookPanics += st.HookPanics
		total.PublishErrors += st.PublishErrors
		if i == jumpHost {
			assert.Equal(t, int64(1), st.Skewed, "the jump is one episode")
		} else {
			assert.Zero(t, st.Skewed, "host %d: two minutes is within MaxSkew", i)
		}
		if i == cutHost {
			assert.Equal(t, int64(1), st.Fallbacks, "the cut-off host fell back once")
			assert.Equal(t, int64(1), st.Rejoins, "and rejoined once")
			assert.Positive(t, st.RefreshErrors)
			assert.Positive(t, st.Splits, "its split was seen")
		} else {
			assert.Zero(t, st.Fallbacks, "host %d", i)
		}
		assert.False(t, st.Local)
		assert.False(t, st.Split)
		assert.Equal(t, st.RingEncrypting, st.Encrypting)
	}
	assert.Positive(t, total.Rotations)
	assert.Positive(t, total.Recreated, "the flush was seen")
	assert.Equal(t, int64(1), total.Rollbacks, "the restore was seen once and repaired")
	assert.Zero(t, total.Foreign+total.Tampered+total.FutureKeys+total.HookPanics+total.PublishErrors)
	logs := s.logs.String()
	assert.Equal(t, 1, strings.Count(logs, "far from Redis's"), "the jump logged once")
	assert.Equal(t, 1, strings.Count(logs, "older than one"), "the restore logged once")
	assert.Equal(t, 1, strings.Count(logs, "host-local keys (they resume"), "the fallback logged once")
	assert.Equal(t, 1, strings.Count(logs, "fleet's ring again"), "the rejoin logged once")
	t.Logf("%v simulated in %v: %d real handshakes (%d resumed across hosts), %d key checks, %d key names",
		s.now().Sub(s.start), time.Since(s.wall).Round(time.Millisecond), s.handshakes, s.resumed, s.checks, len(s.names)+len(s.done))
}
