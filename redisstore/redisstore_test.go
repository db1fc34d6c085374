package redisstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/leakcheck"
	"github.com/sslsession/sslsession/internal/redistest"
	"github.com/sslsession/sslsession/redisstore"
)

var _ sslsession.SessionStore = (*redisstore.Store)(nil)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// go-redis logs each failed dial; the fault tests fail dials on purpose.
func init() { redis.SetLogger(quiet{}) }

type quiet struct{}

func (quiet) Printf(context.Context, string, ...interface{}) {}

func client(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: addr, ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond, DialerRetries: 1, MaxRetries: -1,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func newStore(t testing.TB, addr string, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(client(t, addr), opts)
	require.NoError(t, err)
	return s
}

var (
	key16 = bytes.Repeat([]byte{0x11}, 16)
	key24 = bytes.Repeat([]byte{0x22}, 24)
	key32 = bytes.Repeat([]byte{0x33}, 32)
	id    = []byte("0123456789abcdef0123456789abcdef")
	der   = []byte("\x30\x82\x01\x00 pretend this is a session's DER, master key included")
)

func TestNewValidates(t *testing.T) {
	noCtx := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer noCtx.Close()
	_, err := redisstore.New(noCtx, redisstore.Options{})
	require.ErrorIs(t, err, redisstore.ErrNoContextTimeout)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer ring.Close()
	_, err = redisstore.New(ring, redisstore.Options{})
	require.ErrorIs(t, err, redisstore.ErrNoContextTimeout)
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	defer cluster.Close()
	_, err = redisstore.New(cluster, redisstore.Options{})
	require.NoError(t, err)
	_, err = redisstore.New(nil, redisstore.Options{})
	require.Error(t, err)

	ok := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer ok.Close()
	for _, k := range [][]byte{nil, {}, make([]byte, 15), make([]byte, 33)} {
		_, err := redisstore.New(ok, redisstore.Options{Keys: [][]byte{key16, k}})
		require.Error(t, err, "key of %d bytes", len(k))
	}
	s, err := redisstore.New(ok, redisstore.Options{Keys: [][]byte{key16, key24, key32}})
	require.NoError(t, err)
	require.True(t, s.Sealed())
	require.Equal(t, "sslsession:"+hex.EncodeToString(id), s.Key(id), "default prefix")
	s, err = redisstore.New(ok, redisstore.Options{Prefix: "p/"})
	require.NoError(t, err)
	require.False(t, s.Sealed())
	require.Equal(t, "p/00ff", s.Key([]byte{0, 0xff}))
}

func TestPutGetDelete(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	for _, keys := range [][][]byte{nil, {key16}, {key32, key16}} {
		t.Run(strconv.Itoa(len(keys))+" keys", func(t *testing.T) {
			s := newStore(t, rs.Addr, redisstore.Options{Keys: keys, Prefix: "t" + strconv.Itoa(len(keys)) + ":"})
			_, err := s.Get(ctx, id)
			require.ErrorIs(t, err, sslsession.ErrNotFound)

			require.NoError(t, s.Put(ctx, id, der, time.Now().Add(90*time.Second)))
			got, err := s.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, der, got)

			ttl, err := rs.Do(ctx, "TTL", s.Key(id))
			require.NoError(t, err)
			secs, _ := strconv.Atoi(ttl)
			require.InDelta(t, 90, secs, 1, "TTL is the time left")

			require.NoError(t, s.Delete(ctx, id))
			require.NoError(t, s.Delete(ctx, id), "deleting a missing key is not an error")
			_, err = s.Get(ctx, id)
			require.ErrorIs(t, err, sslsession.ErrNotFound)

			st := s.Stats()
			require.Equal(t, redisstore.Stats{Puts: 1, Gets: 3, Hits: 1, Misses: 2, Deletes: 2}, st)
		})
	}
}

func TestTTL(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	s := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}})

	// Under a second left: the TTL is one second, not zero (no TTL).
	require.NoError(t, s.Put(ctx, id, der, time.Now().Add(300*time.Millisecond)))
	pttl, err := rs.Do(ctx, "PTTL", s.Key(id))
	require.NoError(t, err)
	ms, _ := strconv.Atoi(pttl)
	require.Greater(t, ms, 0)
	require.LessOrEqual(t, ms, 1000)

	// Already expired: not stored at all.
	other := []byte("expired-session-id")
	require.NoError(t, s.Put(ctx, other, der, time.Now().Add(-time.Second)))
	exists, err := rs.Do(ctx, "EXISTS", s.Key(other))
	require.NoError(t, err)
	require.Equal(t, "0", exists)

	// Redis expires the key: not found afterwards.
	require.Eventually(t, func() bool {
		_, err := s.Get(ctx, id)
		return err == sslsession.ErrNotFound
	}, 3*time.Second, 50*time.Millisecond)
}

func TestSealedFormat(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	s := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key32, key16}})
	require.NoError(t, s.Put(ctx, id, der, time.Now().Add(time.Minute)))
	v1, err := rs.Do(ctx, "GET", s.Key(id))
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, id, der, time.Now().Add(time.Minute)))
	v2, err := rs.Do(ctx, "GET", s.Key(id))
	require.NoError(t, err)

	require.NotEqual(t, v1, v2, "a fresh nonce each time")
	require.Len(t, v1, 1+4+12+len(der)+16, "version, key ID, nonce, ciphertext, tag")
	require.Equal(t, byte(1), v1[0])
	h := sha256.Sum256(append([]byte("sslsession redisstore key id\x00"), key32...))
	require.Equal(t, string(h[:4]), v1[1:5], "sealed with the first key")
	require.NotContains(t, v1, string(der[10:30]))
}

// Values that do not open: counted as invalid, deleted (or kept with
// KeepInvalid), reported as sslsession.ErrInvalidValue.
func TestInvalidValues(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	sealed := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}})
	other := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key24}})
	plain := newStore(t, rs.Addr, redisstore.Options{})
	keep := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}, KeepInvalid: true})

	require.NoError(t, sealed.Put(ctx, id, der, time.Now().Add(time.Minute)))
	good, err := rs.Do(ctx, "GET", sealed.Key(id))
	require.NoError(t, err)
	otherID := []byte("another-session-id")
	require.NoError(t, sealed.Put(ctx, otherID, der, time.Now().Add(time.Minute)))
	moved, err := rs.Do(ctx, "GET", sealed.Key(otherID))
	require.NoError(t, err)
	flipped := []byte(good)
	flipped[8] ^= 0x80 // in the nonce
	headerFlip := []byte(good)
	headerFlip[2] ^= 1 // in the key ID

	cases := map[string]struct {
		store *redisstore.Store
		value string
	}{
		"garbage":               {sealed, "garbage"},
		"empty":                 {sealed, ""},
		"short":                 {sealed, good[:4]},
		"truncated":             {sealed, good[:30]},
		"tampered nonce":        {sealed, string(flipped)},
		"moved":                 {sealed, moved},
		"plain in sealed store": {sealed, "\x00" + string(der)},
		"sealed in plain store": {plain, good},
		"empty plain":           {plain, "\x00"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := rs.Do(ctx, "SET", tc.store.Key(id), tc.value)
			require.NoError(t, err)
			before := tc.store.Stats()
			_, err = tc.store.Get(ctx, id)
			require.ErrorIs(t, err, sslsession.ErrInvalidValue)
			require.Equal(t, before.Invalid+1, tc.store.Stats().Invalid)
			_, err = rs.Do(ctx, "GET", tc.store.Key(id))
			require.ErrorIs(t, err, redistest.ErrNil, "deleted")
		})
	}
	// Sealed with a key this server lacks (another server's, during a
	// rotation; or a key ID changed in transit): a miss, counted apart,
	// never deleted.
	for name, value := range map[string]string{"another server's key": good, "other key ID": string(headerFlip)} {
		t.Run(name, func(t *testing.T) {
			_, err := rs.Do(ctx, "SET", other.Key(id), value)
			require.NoError(t, err)
			before := other.Stats()
			_, err = other.Get(ctx, id)
			require.ErrorIs(t, err, sslsession.ErrNotFound)
			require.NotErrorIs(t, err, sslsession.ErrInvalidValue)
			after := other.Stats()
			require.Equal(t, before.UnknownKey+1, after.UnknownKey)
			require.Equal(t, before.Invalid, after.Invalid)
			v, err := rs.Do(ctx, "GET", other.Key(id))
			require.NoError(t, err)
			require.Equal(t, value, v, "left for the servers that hold the key")
		})
	}

	_, err = rs.Do(ctx, "SET", keep.Key(id), "garbage")
	require.NoError(t, err)
	_, err = keep.Get(ctx, id)
	require.ErrorIs(t, err, sslsession.ErrInvalidValue)
	v, err := rs.Do(ctx, "GET", keep.Key(id))
	require.NoError(t, err)
	require.Equal(t, "garbage", v, "KeepInvalid leaves it")
}

// Key rotation: values sealed under an old key still open while it is
// listed; new values use the first key.
func TestKeyRotation(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	oldStore := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}})
	rotating := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key32, key16}})
	newStoreOnly := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key32}})

	require.NoError(t, oldStore.Put(ctx, id, der, time.Now().Add(time.Minute)))
	got, err := rotating.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, der, got)
	_, err = newStoreOnly.Get(ctx, id)
	require.ErrorIs(t, err, sslsession.ErrNotFound, "the old key is gone: a miss")
	require.Equal(t, int64(1), newStoreOnly.Stats().UnknownKey)

	require.NoError(t, rotating.Put(ctx, id, der, time.Now().Add(time.Minute)))
	got, err = newStoreOnly.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, der, got)
	require.NoError(t, rotating.Put(ctx, id, der, time.Now().Add(time.Minute)))
	_, err = oldStore.Get(ctx, id)
	require.ErrorIs(t, err, sslsession.ErrNotFound, "new values are sealed with the new key")
	_, err = newStoreOnly.Get(ctx, id)
	require.NoError(t, err, "and the miss on the old store deleted nothing")
}

// The documented rotation, K1 to K2, across three servers restarted one by
// one at each step: at every moment each server opens what every other one
// sealed, and none deletes anything; after the last step, values sealed
// with the dropped key are misses, still in Redis.
func TestKeyRotationAcrossThreeServers(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	k1, k2 := key16, key32
	steps := []redisstore.Options{
		{Keys: [][]byte{k1}},
		{Keys: [][]byte{k1}, OpenKeys: [][]byte{k2}}, // 1: K2 opens everywhere
		{Keys: [][]byte{k2}, OpenKeys: [][]byte{k1}}, // 2: K2 seals
		{Keys: [][]byte{k2}},                         // 3: K1 dropped
	}
	servers := make([]*redisstore.Store, 3)
	for i := range servers {
		servers[i] = newStore(t, rs.Addr, steps[0])
	}
	var written [][]byte // session IDs written so far, by any server
	n := 0
	round := func(t *testing.T, label string, lastStep bool) {
		for i, s := range servers {
			n++
			wid := []byte(fmt.Sprintf("%s-server%d-%d", label, i, n))
			require.NoError(t, s.Put(ctx, wid, der, time.Now().Add(time.Hour)))
			written = append(written, wid)
		}
		for i, s := range servers {
			for _, wid := range written {
				got, err := s.Get(ctx, wid)
				if lastStep && errors.Is(err, sslsession.ErrNotFound) {
					continue // sealed with K1 before step 2 finished; checked below
				}
				require.NoError(t, err, "%s: server %d reads %s", label, i, wid)
				require.Equal(t, der, got)
			}
		}
	}
	round(t, "start", false)
	for step := 1; step < len(steps); step++ {
		for i := range servers {
			servers[i] = newStore(t, rs.Addr, steps[step])
			round(t, fmt.Sprintf("step%d-restarted%d", step, i), step == 3)
		}
	}
	for _, wid := range written {
		v, err := rs.Do(ctx, "EXISTS", servers[0].Key(wid))
		require.NoError(t, err)
		require.Equal(t, "1", v, "nothing deleted: %s", wid)
	}
	var invalid, deletes, unknown int64
	for _, s := range servers {
		invalid += s.Stats().Invalid
		deletes += s.Stats().Deletes
		unknown += s.Stats().UnknownKey
	}
	require.Zero(t, invalid, "no server ever judged another's value invalid")
	require.Zero(t, deletes)
	require.Positive(t, unknown, "after step 3, K1's values are misses")
}

// Redis down or hung: every call returns an error within the timeout.
func TestFailuresAreFastErrors(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	timeout := 150 * time.Millisecond
	s := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}, Timeout: timeout})
	require.NoError(t, s.Put(ctx, id, der, time.Now().Add(time.Minute)))

	check := func(what string) {
		t.Helper()
		calls := []func() error{
			func() error { _, err := s.Get(ctx, id); return err },
			func() error { return s.Put(ctx, id, der, time.Now().Add(time.Minute)) },
			func() error { return s.Delete(ctx, id) },
		}
		for i, call := range calls {
			start := time.Now()
			err := call()
			took := time.Since(start)
			require.Error(t, err, "%s: call %d", what, i)
			require.NotErrorIs(t, err, sslsession.ErrNotFound)
			require.Less(t, took, timeout+500*time.Millisecond, "%s: call %d took %s", what, i, took)
		}
	}
	rs.Pause()
	check("hung")
	rs.Resume()
	rs.Stop()
	check("down")
	require.GreaterOrEqual(t, s.Stats().Errors, int64(6))

	// A caller's earlier deadline wins over the store's timeout.
	rs.Restart()
	short, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	_, err := s.Get(short, id)
	require.Error(t, err)
	require.Eventually(t, func() bool {
		return s.Put(ctx, id, der, time.Now().Add(time.Minute)) == nil
	}, 5*time.Second, 20*time.Millisecond, "works again after the restart")
	got, err := s.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, der, got)
}

func TestConcurrent(t *testing.T) {
	rs := redistest.Start(t)
	ctx := context.Background()
	s := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}, Timeout: 2 * time.Second})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				sid := []byte(strconv.Itoa(g*1000 + i))
				value := append([]byte(nil), sid...)
				if err := s.Put(ctx, sid, value, time.Now().Add(time.Minute)); err != nil {
					t.Error(err)
					return
				}
				got, err := s.Get(ctx, sid)
				if err != nil || !bytes.Equal(got, value) {
					t.Errorf("get %s: %q, %v", sid, got, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	st := s.Stats()
	require.Equal(t, int64(400), st.Hits)
	require.Zero(t, st.Errors)
}
