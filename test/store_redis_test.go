package test

import (
	"bytes"
	"context"
	"encoding/json"
	"expvar"
	"fmt"
	"strings"
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

// Fleets of servers sharing one Redis through redisstore: resumption across
// hosts, sealing, Redis down, hung or holding garbage, key rotation.

// go-redis logs every failed dial; the fault tests make many on purpose.
func init() { redis.SetLogger(cacheQuietLogger{}) }

type cacheQuietLogger struct{}

func (cacheQuietLogger) Printf(context.Context, string, ...interface{}) {}

// cacheHost is one server of a fleet: its own SSL_CTX, the fleet's
// certificate and session ID context, its own redisstore on the shared
// Redis.
type cacheHost struct {
	oc    *openssl.Ctx
	sc    *sslsession.Ctx
	srv   *loopback.Server
	store *redisstore.Store
}

func cacheRedisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: addr, ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond, DialerRetries: 1, MaxRetries: -1,
		PoolSize: 16,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func cacheFleetHost(t testing.TB, v sslsession.Version, redisAddr string, keys [][]byte, mode sslsession.CacheMode) *cacheHost {
	t.Helper()
	oc, sc := sesstest.StatefulServerCtx(t, v, "fleet")
	sc.SetCacheMode(mode)
	store, err := redisstore.New(cacheRedisClient(t, redisAddr), redisstore.Options{Prefix: "fleet:", Keys: keys, Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{Timeout: 300 * time.Millisecond}))
	return &cacheHost{oc: oc, sc: sc, srv: sesstest.Serve(t, oc), store: store}
}

var cacheFleetKeys = [][]byte{bytes.Repeat([]byte{0x42}, 32)}

// The fleet: a session made on host A resumes on host B, through Redis.
func TestFleetResume(t *testing.T) {
	sesstest.LeakCheck(t)
	rs := sesstest.StartRedis(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			a := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, sslsession.CacheServer)
			b := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, sslsession.CacheServer)
			cctx := sesstest.ClientCtx(t, v)

			reused, sa := sesstest.Roundtrip(t, a.srv.Addr, cctx, nil)
			require.False(t, reused)
			defer sa.Close()
			require.Positive(t, a.sc.Metrics().Store.Puts)

			reused, sb := sesstest.Roundtrip(t, b.srv.Addr, cctx, sa)
			defer sb.Close()
			require.True(t, reused, "A's session resumes on B")
			bs := b.sc.Metrics().Cache
			require.Equal(t, int64(1), bs.Hits, "a hit in B's statistics")
			require.Equal(t, int64(1), bs.CbHits, "found by B's get callback")
			require.Equal(t, int64(1), b.sc.Metrics().Store.Hits)
			require.Zero(t, a.sc.Metrics().Cache.Hits)

			// B took it into its internal cache: the next resumption on B
			// does not ask Redis (1.1.1+ ask the store only on a miss).
			if v == sslsession.TLS12 {
				gets := b.sc.Metrics().Store.Gets
				reused, s := sesstest.Roundtrip(t, b.srv.Addr, cctx, sa)
				require.True(t, reused)
				s.Close()
				require.Equal(t, gets, b.sc.Metrics().Store.Gets, "served from B's internal cache")
				require.Equal(t, int64(2), b.sc.Metrics().Cache.Hits)
			}
			require.Zero(t, a.srv.Failed()+b.srv.Failed())
		})
	}
}

// With sealing on, Redis holds no DER: the value opens only with the
// fleet's keys and only under its own session ID; its TTL is the session's
// timeout.
func TestFleetSealedValuesAndTTL(t *testing.T) {
	sesstest.LeakCheck(t)
	rs := sesstest.StartRedis(t)
	v := sslsession.TLS12
	a := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, sslsession.CacheServer)
	a.sc.SetTimeout(1234 * time.Second)
	cctx := sesstest.ClientCtx(t, v)
	_, s := sesstest.Roundtrip(t, a.srv.Addr, cctx, nil)
	defer s.Close()
	id := sesstest.SessionID(t, s)

	ctx := context.Background()
	value, err := rs.Do(ctx, "GET", a.store.Key(id))
	require.NoError(t, err)
	require.Equal(t, "fleet:"+fmt.Sprintf("%x", id), a.store.Key(id))
	der, err := a.store.Get(ctx, id)
	require.NoError(t, err)
	// The server's DER of this session holds the same master key as the
	// client's.
	srvSess, err := sslsession.ParseDER(der)
	require.NoError(t, err)
	mk1, err := srvSess.MasterKey()
	require.NoError(t, err)
	srvSess.Close()
	mk2, err := s.MasterKey()
	require.NoError(t, err)
	require.Equal(t, mk2, mk1)
	require.NotEqual(t, string(der), value, "the value is not the session's DER")
	require.NotContains(t, value, string(der[len(der)/2:]), "nor contains it")
	require.NotContains(t, value, string(mk1), "nor the master key")

	ttl, err := rs.Do(ctx, "TTL", a.store.Key(id))
	require.NoError(t, err)
	var secs int
	_, err = fmt.Sscan(ttl, &secs)
	require.NoError(t, err)
	require.InDelta(t, 1234, secs, 3, "the Redis TTL is the session timeout")

	// Unsealed, for comparison: the value is the DER behind a version byte.
	plain := cacheFleetHost(t, v, rs.Addr, nil, sslsession.CacheServer)
	_, s2 := sesstest.Roundtrip(t, plain.srv.Addr, cctx, nil)
	defer s2.Close()
	id2 := sesstest.SessionID(t, s2)
	value2, err := rs.Do(ctx, "GET", plain.store.Key(id2))
	require.NoError(t, err)
	der2, err := plain.store.Get(ctx, id2)
	require.NoError(t, err)
	require.Equal(t, "\x00"+string(der2), value2)
	// A sealed store leaves the unsealed value alone (a fleet moving to
	// sealing): a miss, counted, never deleted.
	_, err = a.store.Get(ctx, id2)
	require.ErrorIs(t, err, sslsession.ErrNotFound)
	require.Equal(t, int64(1), a.store.Stats().Unsealed)
	_, err = rs.Do(ctx, "GET", plain.store.Key(id2))
	require.NoError(t, err, "still in Redis")
}

// Redis stopped mid-run: no handshake fails, they become full ones; once
// Redis is back, resumption across hosts returns.
func TestFleetRedisDownAndBack(t *testing.T) {
	sesstest.LeakCheck(t)
	rs := sesstest.StartRedis(t)
	v := sslsession.TLS12
	mode := sslsession.CacheServer | sslsession.CacheNoInternal // every lookup asks Redis
	a := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, mode)
	b := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, mode)
	cctx := sesstest.ClientCtx(t, v)

	// Alternate hosts, resuming the last session each time.
	hosts := []*cacheHost{a, b}
	var sess *sslsession.Session
	defer func() { sess.Close() }()
	round := func(n int) (reused int) {
		for i := 0; i < n; i++ {
			h := hosts[i%2]
			start := time.Now()
			r, next := sesstest.Roundtrip(t, h.srv.Addr, cctx, sess)
			require.Less(t, time.Since(start), 5*time.Second)
			if r {
				reused++
			}
			sess.Close()
			sess = next
		}
		return reused
	}
	require.Equal(t, 9, round(10), "Redis up: every handshake but the first resumes on the other host")

	rs.Stop()
	errorsBefore := a.sc.Metrics().Store.Errors + b.sc.Metrics().Store.Errors
	require.Zero(t, round(10), "Redis down: full handshakes, none failed")
	require.Greater(t, a.sc.Metrics().Store.Errors+b.sc.Metrics().Store.Errors, errorsBefore, "store errors are counted")

	rs.Restart()
	// The first round after a restart may still meet dead pooled
	// connections; resumption must come back within a few handshakes.
	require.Eventually(t, func() bool { return round(4) >= 3 }, 10*time.Second, 10*time.Millisecond, "Redis back: resumption returns")
	require.Zero(t, a.srv.Failed()+b.srv.Failed())
}

// Redis hung (SIGSTOP): each lookup waits at most the per-call timeout,
// then the handshake is a full one.
func TestFleetRedisHung(t *testing.T) {
	sesstest.LeakCheck(t)
	rs := sesstest.StartRedis(t)
	v := sslsession.TLS12
	mode := sslsession.CacheServer | sslsession.CacheNoInternal
	a := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, mode)
	b := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, mode)
	cctx := sesstest.ClientCtx(t, v)
	_, sa := sesstest.Roundtrip(t, a.srv.Addr, cctx, nil)
	defer sa.Close()

	rs.Pause()
	start := time.Now()
	reused, s := sesstest.Roundtrip(t, b.srv.Addr, cctx, sa)
	took := time.Since(start)
	rs.Resume()
	s.Close()
	require.False(t, reused)
	// Get and Put each wait for their timeout (200ms in the store).
	require.Less(t, took, 2*time.Second, "a hung Redis delays a handshake by the timeouts only")
	require.Positive(t, b.sc.Metrics().Store.Errors)

	reused, s = sesstest.Roundtrip(t, b.srv.Addr, cctx, sa)
	s.Close()
	require.True(t, reused, "after the pause, A's session is still in Redis")
}

// Garbage and wrongly sealed values in Redis: ignored (full handshake),
// counted, deleted; never a crash.
func TestFleetBadValues(t *testing.T) {
	sesstest.LeakCheck(t)
	rs := sesstest.StartRedis(t)
	v := sslsession.TLS12
	mode := sslsession.CacheServer | sslsession.CacheNoInternal
	a := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, mode)
	b := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, mode)
	otherKeys := cacheFleetHost(t, v, rs.Addr, [][]byte{bytes.Repeat([]byte{7}, 16)}, mode)
	cctx := sesstest.ClientCtx(t, v)
	ctx := context.Background()

	_, victim := sesstest.Roundtrip(t, a.srv.Addr, cctx, nil)
	defer victim.Close()
	awaitStored(t, rs, a, victim)
	id := sesstest.SessionID(t, victim)
	key := a.store.Key(id)
	good, err := rs.Do(ctx, "GET", key)
	require.NoError(t, err)

	// A value from another session, under this session's key.
	_, other := sesstest.Roundtrip(t, a.srv.Addr, cctx, nil)
	defer other.Close()
	awaitStored(t, rs, a, other)
	moved, err := rs.Do(ctx, "GET", a.store.Key(sesstest.SessionID(t, other)))
	require.NoError(t, err)
	// A value sealed with another fleet's key.
	_, foreign := sesstest.Roundtrip(t, otherKeys.srv.Addr, cctx, nil)
	defer foreign.Close()
	wrongKey, err := rs.Do(ctx, "GET", otherKeys.store.Key(sesstest.SessionID(t, foreign)))
	require.NoError(t, err)
	flipped := []byte(good)
	flipped[len(flipped)-1] ^= 1

	bad := map[string]string{
		"garbage":         "not a session at all",
		"truncated":       good[:10],
		"tampered":        string(flipped),
		"moved":           moved,
		"plain DER":       "\x00\x30\x03abc",
		"unknown version": "\x09" + good[1:],
	}
	for name, value := range bad {
		invalid := b.store.Stats().Invalid
		_, err := rs.Do(ctx, "SET", key, value)
		require.NoError(t, err, name)
		reused, s := sesstest.Roundtrip(t, b.srv.Addr, cctx, victim)
		s.Close()
		require.False(t, reused, name)
		require.Equal(t, invalid+1, b.store.Stats().Invalid, name)
		_, err = rs.Do(ctx, "GET", key)
		require.ErrorIs(t, err, sesstest.ErrRedisNil, "%s: an invalid value is deleted", name)
	}
	// A value sealed with a key this server lacks may be another server's
	// in the middle of a rotation: a miss, counted as UnknownKey, and kept.
	invalid, unknown := b.store.Stats().Invalid, b.store.Stats().UnknownKey
	_, err = rs.Do(ctx, "SET", key, wrongKey)
	require.NoError(t, err)
	reused, s := sesstest.Roundtrip(t, b.srv.Addr, cctx, victim)
	s.Close()
	require.False(t, reused, "wrong key")
	require.Equal(t, invalid, b.store.Stats().Invalid, "wrong key")
	require.Equal(t, unknown+1, b.store.Stats().UnknownKey, "wrong key")
	kept, err := rs.Do(ctx, "GET", key)
	require.NoError(t, err, "a value under an unknown key is kept")
	require.Equal(t, wrongKey, kept)
	st := b.sc.Metrics().Store
	require.Equal(t, int64(len(bad)), st.Invalid)
	require.Zero(t, st.Hits)
	require.Zero(t, b.srv.Failed())

	// Sealed correctly but holding no session: the bridge refuses it.
	sealer, err := redisstore.New(cacheRedisClient(t, rs.Addr), redisstore.Options{Prefix: "fleet:", Keys: cacheFleetKeys})
	require.NoError(t, err)
	require.NoError(t, sealer.Put(ctx, id, []byte("\x30\x03abc"), time.Now().Add(time.Minute)))
	reused, s = sesstest.Roundtrip(t, b.srv.Addr, cctx, victim)
	s.Close()
	require.False(t, reused)
	require.Equal(t, int64(len(bad)+1), b.sc.Metrics().Store.Invalid)

	// And the real value still works.
	_, err = rs.Do(ctx, "SET", key, good)
	require.NoError(t, err)
	reused, s = sesstest.Roundtrip(t, b.srv.Addr, cctx, victim)
	s.Close()
	require.True(t, reused)
}

// Key rotation across the fleet: host B already has the new key first,
// and still opens A's values sealed with the old one.
func TestFleetKeyRotation(t *testing.T) {
	sesstest.LeakCheck(t)
	rs := sesstest.StartRedis(t)
	v := sslsession.TLS12
	mode := sslsession.CacheServer | sslsession.CacheNoInternal
	oldKey, newKey := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 32)
	a := cacheFleetHost(t, v, rs.Addr, [][]byte{oldKey}, mode)
	b := cacheFleetHost(t, v, rs.Addr, [][]byte{newKey, oldKey}, mode)
	c := cacheFleetHost(t, v, rs.Addr, [][]byte{newKey}, mode)
	cctx := sesstest.ClientCtx(t, v)
	_, sa := sesstest.Roundtrip(t, a.srv.Addr, cctx, nil)
	defer sa.Close()
	awaitStored(t, rs, a, sa)
	reused, sb := sesstest.Roundtrip(t, b.srv.Addr, cctx, sa)
	defer sb.Close()
	require.True(t, reused, "B opens the old key's values")
	reused, s := sesstest.Roundtrip(t, c.srv.Addr, cctx, sa)
	s.Close()
	require.False(t, reused, "C dropped the old key")
	require.Zero(t, c.sc.Metrics().Store.Invalid, "a value under a key C lacks is a miss, not invalid")
	require.Equal(t, int64(1), c.store.Stats().UnknownKey)
	// B seals with the new key: C reads B's sessions.
	_, sbNew := sesstest.Roundtrip(t, b.srv.Addr, cctx, nil)
	defer sbNew.Close()
	awaitStored(t, rs, b, sbNew)
	reused, s = sesstest.Roundtrip(t, c.srv.Addr, cctx, sbNew)
	s.Close()
	require.True(t, reused)
}

// The stress test's smaller variant against Redis.
func TestFleetStress(t *testing.T) {
	sesstest.LeakCheck(t)
	rs := sesstest.StartRedis(t)
	store, err := redisstore.New(cacheRedisClient(t, rs.Addr), redisstore.Options{Keys: cacheFleetKeys, Timeout: time.Second})
	require.NoError(t, err)
	sesstest.StoreStress(t, store, 8, 60, 8)
	require.Zero(t, store.Stats().Errors)
	require.Zero(t, store.Stats().Invalid)
}

func TestFleetMetricsThroughExpvar(t *testing.T) {
	sesstest.LeakCheck(t)
	rs := sesstest.StartRedis(t)
	v := sslsession.TLS12
	a := cacheFleetHost(t, v, rs.Addr, cacheFleetKeys, sslsession.CacheServer|sslsession.CacheNoInternal)
	name := fmt.Sprintf("sslsession_fleet_%d", time.Now().UnixNano())
	require.NoError(t, sslsession.PublishExpvar(name, a.sc))
	cctx := sesstest.ClientCtx(t, v)
	_, s := sesstest.Roundtrip(t, a.srv.Addr, cctx, nil)
	defer s.Close()
	rs.Stop()
	reused, s2 := sesstest.Roundtrip(t, a.srv.Addr, cctx, s)
	s2.Close()
	require.False(t, reused)
	raw := expvar.Get(name).String()
	var m sslsession.Metrics
	require.NoError(t, json.NewDecoder(strings.NewReader(raw)).Decode(&m))
	require.Positive(t, m.Store.Errors, "store errors are visible in expvar: %s", raw)
	require.Equal(t, int64(1), m.Store.Misses)
}

// awaitStored waits until h's store holds s. A server's new-session
// callback, and so the store's Put, runs after OpenSSL has written its last
// flight to the socket: a client can be done before the session is stored.
func awaitStored(t testing.TB, rs *sesstest.Redis, h *cacheHost, s *sslsession.Session) {
	t.Helper()
	key := h.store.Key(sesstest.SessionID(t, s))
	require.Eventually(t, func() bool {
		_, err := rs.Do(context.Background(), "GET", key)
		return err == nil
	}, 5*time.Second, 2*time.Millisecond, "session stored by the server")
}
