package redisstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
	"github.com/sslsession/sslsession/redisstore"
)

var _ sslsession.SessionStore = (*redisstore.Store)(nil)

func TestMain(m *testing.M) { sesstest.Main(m) }

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
	rs := sesstest.StartRedis(t)
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
	rs := sesstest.StartRedis(t)
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
	rs := sesstest.StartRedis(t)
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
	rs := sesstest.StartRedis(t)
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
		"garbage":                 {sealed, "garbage"},
		"short":                   {sealed, good[:4]},
		"truncated":               {sealed, good[:30]},
		"tampered nonce":          {sealed, string(flipped)},
		"moved":                   {sealed, moved},
		"plain non-session":       {sealed, "\x00" + string(der)},
		"short sealed in plain":   {plain, good[:32]},
		"empty plain":             {plain, "\x00"},
		"unknown version":         {plain, "\x07" + string(der)},
		"plain other ID (sealed)": {sealed, "\x00" + string(sessionDER(t, otherID))},
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
			require.ErrorIs(t, err, sesstest.ErrRedisNil, "deleted")
		})
	}
	// Sealed with a key this server lacks (another server's, during a
	// rotation; or a key ID changed in transit): a miss, counted apart,
	// never deleted.
	for name, tc := range map[string]struct {
		store *redisstore.Store
		value string
	}{
		"another server's key":  {other, good},
		"other key ID":          {other, string(headerFlip)},
		"sealed in plain store": {plain, good},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := rs.Do(ctx, "SET", tc.store.Key(id), tc.value)
			require.NoError(t, err)
			before := tc.store.Stats()
			_, err = tc.store.Get(ctx, id)
			require.ErrorIs(t, err, sslsession.ErrNotFound)
			require.NotErrorIs(t, err, sslsession.ErrInvalidValue)
			after := tc.store.Stats()
			require.Equal(t, before.UnknownKey+1, after.UnknownKey)
			require.Equal(t, before.Invalid, after.Invalid)
			v, err := rs.Do(ctx, "GET", tc.store.Key(id))
			require.NoError(t, err)
			require.Equal(t, tc.value, v, "left for the servers that hold the key")
		})
	}

	// GETRANGE answers "" for a missing key: an empty value is a miss,
	// left to its TTL (no store writes one).
	_, err = rs.Do(ctx, "SET", sealed.Key(id), "")
	require.NoError(t, err)
	before := sealed.Stats()
	_, err = sealed.Get(ctx, id)
	require.ErrorIs(t, err, sslsession.ErrNotFound)
	require.Equal(t, before.Misses+1, sealed.Stats().Misses)
	require.Equal(t, before.Invalid, sealed.Stats().Invalid)

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
	rs := sesstest.StartRedis(t)
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
	rs := sesstest.StartRedis(t)
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
	rs := sesstest.StartRedis(t)
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
	rs := sesstest.StartRedis(t)
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

// sessionDER is a DER shaped like OpenSSL's SSL_SESSION (SSL_SESSION_ASN1:
// version 1, protocol, cipher, session ID, master key) for id.
func sessionDER(t testing.TB, sid []byte) []byte {
	t.Helper()
	v, err := asn1.Marshal(struct {
		Version, Protocol  int
		Cipher, ID, Master []byte
	}{1, 0x0303, []byte{0xc0, 0x2f}, sid, bytes.Repeat([]byte{0x5a}, 48)})
	require.NoError(t, err)
	return v
}

// A sealed server finds an unsealed server's session (the DER of that
// session ID and the bridge's tag): a miss, counted in Unsealed, left in
// Redis. What only looks like one is invalid and deleted.
func TestUnsealedValueInSealedStore(t *testing.T) {
	rs := sesstest.StartRedis(t)
	ctx := context.Background()
	sealed := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}})
	tag := bytes.Repeat([]byte{0x77}, sha256.Size)
	session := sessionDER(t, id)

	for name, value := range map[string][]byte{
		"tagged": append(append([]byte{0}, session...), tag...),
		"bare":   append([]byte{0}, session...),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := rs.Do(ctx, "SET", sealed.Key(id), string(value))
			require.NoError(t, err)
			before := sealed.Stats()
			_, err = sealed.Get(ctx, id)
			require.ErrorIs(t, err, sslsession.ErrNotFound)
			require.NotErrorIs(t, err, sslsession.ErrInvalidValue)
			after := sealed.Stats()
			require.Equal(t, before.Unsealed+1, after.Unsealed)
			require.Equal(t, before.Misses+1, after.Misses)
			require.Equal(t, before.Invalid, after.Invalid)
			v, err := rs.Do(ctx, "GET", sealed.Key(id))
			require.NoError(t, err)
			require.Equal(t, string(value), v, "left for the unsealed servers")
		})
	}
	notSession := map[string][]byte{
		"other session ID":   append([]byte{0}, sessionDER(t, []byte("another-id"))...),
		"too long a trailer": append(append([]byte{0}, session...), bytes.Repeat([]byte{1}, 65)...),
		"truncated DER":      append([]byte{0}, session[:len(session)-1]...),
		"not a sequence":     append([]byte{0, 0x04, 0x02}, "ab"...),
	}
	for name, value := range notSession {
		t.Run(name, func(t *testing.T) {
			_, err := rs.Do(ctx, "SET", sealed.Key(id), string(value))
			require.NoError(t, err)
			before := sealed.Stats()
			_, err = sealed.Get(ctx, id)
			require.ErrorIs(t, err, sslsession.ErrInvalidValue)
			require.Equal(t, before.Invalid+1, sealed.Stats().Invalid)
			require.Equal(t, before.Unsealed, sealed.Stats().Unsealed)
			_, err = rs.Do(ctx, "GET", sealed.Key(id))
			require.ErrorIs(t, err, sesstest.ErrRedisNil, "deleted")
		})
	}
}

func TestMaxValueSizeOption(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer c.Close()
	for _, n := range []int{-1, 1, 32, redisstore.MaxMaxValueSize + 1} {
		_, err := redisstore.New(c, redisstore.Options{MaxValueSize: n})
		require.Error(t, err, "MaxValueSize %d", n)
		require.Contains(t, err.Error(), "MaxValueSize")
	}
	for _, n := range []int{0, 64, redisstore.DefaultMaxValueSize, redisstore.MaxMaxValueSize} {
		_, err := redisstore.New(c, redisstore.Options{MaxValueSize: n})
		require.NoError(t, err, "MaxValueSize %d", n)
	}
}

// The limit is exact: a value of MaxValueSize bytes is read, one byte more
// is not; Put refuses what Get could not read back.
func TestMaxValueSizeLimit(t *testing.T) {
	rs := sesstest.StartRedis(t)
	ctx := context.Background()
	probe := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}})
	require.NoError(t, probe.Put(ctx, id, der, time.Now().Add(time.Minute)))
	v, err := rs.Do(ctx, "GET", probe.Key(id))
	require.NoError(t, err)
	size := len(v)

	exact := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}, MaxValueSize: size})
	got, err := exact.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, der, got)
	require.NoError(t, exact.Put(ctx, id, der, time.Now().Add(time.Minute)))

	under := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}, MaxValueSize: size - 1, KeepInvalid: true})
	_, err = under.Get(ctx, id)
	require.ErrorIs(t, err, sslsession.ErrInvalidValue)
	require.ErrorIs(t, err, redisstore.ErrValueTooLarge)
	require.Equal(t, redisstore.Stats{Gets: 1, Misses: 1, Oversize: 1}, under.Stats())
	_, err = rs.Do(ctx, "GET", under.Key(id))
	require.NoError(t, err, "KeepInvalid keeps it")

	other := []byte("other-session")
	err = under.Put(ctx, other, der, time.Now().Add(time.Minute))
	require.ErrorIs(t, err, redisstore.ErrValueTooLarge)
	require.Equal(t, int64(2), under.Stats().Oversize)
	_, err = rs.Do(ctx, "GET", under.Key(other))
	require.ErrorIs(t, err, sesstest.ErrRedisNil, "nothing written")

	plain := newStore(t, rs.Addr, redisstore.Options{MaxValueSize: len(der)})
	require.ErrorIs(t, plain.Put(ctx, other, der, time.Now().Add(time.Minute)), redisstore.ErrValueTooLarge,
		"an unsealed value is the DER and its version byte")
}

// A hostile Redis writer puts 300 MB under a session's key: the lookup
// reads MaxValueSize+1 bytes of it, allocates well under 1 MB, counts it in
// Oversize and unlinks the key.
func TestOversizeValueIsNotRead(t *testing.T) {
	rs := sesstest.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}, Timeout: 5 * time.Second})
	const huge = 300 << 20
	// Redis fills 300 MB with zeros: slow on a loaded machine.
	setup, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := rs.Do(setup, "SETRANGE", s.Key(id), strconv.Itoa(huge-1), "x")
	require.NoError(t, err)
	n, err := rs.Do(setup, "STRLEN", s.Key(id))
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(huge), n)

	// Warm the connection pool, so that the measure is the lookup's.
	_, err = s.Get(ctx, []byte("warm-up"))
	require.ErrorIs(t, err, sslsession.ErrNotFound)

	alloc := allocated(func() {
		_, err = s.Get(ctx, id)
	})
	require.ErrorIs(t, err, sslsession.ErrInvalidValue)
	require.ErrorIs(t, err, redisstore.ErrValueTooLarge)
	require.Less(t, alloc, uint64(1<<20), "the lookup allocated %d bytes", alloc)
	st := s.Stats()
	require.Equal(t, int64(1), st.Oversize)
	require.Zero(t, st.Hits)
	require.Zero(t, st.Invalid)
	require.Equal(t, int64(2), st.Misses)
	t.Logf("a lookup of a %d MB value allocated %d bytes", huge>>20, alloc)
	require.Eventually(t, func() bool {
		n, err := rs.Do(ctx, "EXISTS", s.Key(id))
		return err == nil && n == "0"
	}, 5*time.Second, 10*time.Millisecond, "unlinked")

	// The measure sees a whole read: a plain GET of a 4 MB value allocates
	// at least that.
	const big = 4 << 20
	_, err = rs.Do(setup, "SETRANGE", "plain-get", strconv.Itoa(big-1), "x")
	require.NoError(t, err)
	c := client(t, rs.Addr)
	require.NoError(t, c.Ping(ctx).Err())
	alloc = allocated(func() { _, err = c.Get(ctx, "plain-get").Bytes() })
	require.NoError(t, err)
	require.GreaterOrEqual(t, alloc, uint64(big))
}

// allocated is the bytes the process allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Keys of another Redis type under a session's key: a miss, counted in
// WrongType, unlinked (or kept with KeepInvalid); no Redis error surfaces
// as a store error.
func TestWrongTypeValues(t *testing.T) {
	rs := sesstest.StartRedis(t)
	ctx := context.Background()
	s := newStore(t, rs.Addr, redisstore.Options{Keys: [][]byte{key16}})
	keep := newStore(t, rs.Addr, redisstore.Options{KeepInvalid: true})
	writes := map[string][]string{
		"list":   {"RPUSH", "", "a", "b"},
		"hash":   {"HSET", "", "f", "v"},
		"set":    {"SADD", "", "m"},
		"zset":   {"ZADD", "", "1", "m"},
		"stream": {"XADD", "", "*", "f", "v"},
	}
	for name, cmd := range writes {
		t.Run(name, func(t *testing.T) {
			for _, st := range []*redisstore.Store{s, keep} {
				args := append([]string(nil), cmd...)
				args[1] = st.Key(id)
				_, err := rs.Do(ctx, args...)
				require.NoError(t, err)
				before := st.Stats()
				_, err = st.Get(ctx, id)
				require.ErrorIs(t, err, sslsession.ErrInvalidValue)
				require.ErrorIs(t, err, redisstore.ErrWrongType)
				after := st.Stats()
				require.Equal(t, before.WrongType+1, after.WrongType)
				require.Equal(t, before.Misses+1, after.Misses)
				require.Equal(t, before.Errors, after.Errors)
				typ, err := rs.Do(ctx, "TYPE", st.Key(id))
				require.NoError(t, err)
				if st == keep {
					require.Equal(t, name, typ, "KeepInvalid keeps it")
					_, err = rs.Do(ctx, "DEL", st.Key(id))
					require.NoError(t, err)
				} else {
					require.Equal(t, "none", typ, "unlinked")
				}
			}
		})
	}
}

// The bounded read on Redis Cluster and through Sentinel: one key, one
// command, so it goes to the node that owns the slot, or the master.
func TestBoundedReadClusterAndSentinel(t *testing.T) {
	ctx := context.Background()
	cl := sesstest.StartRedisCluster(t)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { cc.Close() })
	st := sesstest.StartRedisSentinel(t)
	fc := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: st.Name, SentinelAddrs: st.Addrs(), ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { fc.Close() })
	for name, c := range map[string]redis.UniversalClient{"cluster": cc, "sentinel": fc} {
		t.Run(name, func(t *testing.T) {
			s, err := redisstore.New(c, redisstore.Options{Keys: [][]byte{key16}, Timeout: 2 * time.Second})
			require.NoError(t, err)
			for i := 0; i < 20; i++ { // keys in every node's slots
				sid := []byte(fmt.Sprintf("session-%d", i))
				require.NoError(t, s.Put(ctx, sid, der, time.Now().Add(time.Minute)))
				got, err := s.Get(ctx, sid)
				require.NoError(t, err)
				require.Equal(t, der, got)
				require.NoError(t, c.SetRange(ctx, s.Key(sid), 1<<20, "x").Err())
				_, err = s.Get(ctx, sid)
				require.ErrorIs(t, err, redisstore.ErrValueTooLarge)
				require.NoError(t, c.RPush(ctx, s.Key(sid), "a").Err(), "unlinked: a new list")
				_, err = s.Get(ctx, sid)
				require.ErrorIs(t, err, redisstore.ErrWrongType)
			}
			require.Equal(t, redisstore.Stats{Puts: 20, Gets: 60, Hits: 20, Misses: 40, Oversize: 20, WrongType: 20}, s.Stats())
		})
	}
}

// migrationHost is one server of the fleet in TestMoveBetweenSealedAndUnsealed:
// its own SSL_CTX looking every session up in the store (no internal
// lookup), its own store, sealed or not.
type migrationHost struct {
	sealed bool
	sc     *sslsession.Ctx
	store  *redisstore.Store
	addr   string
}

func newMigrationHost(t *testing.T, redisAddr string, sealed bool, ik sslsession.IntegrityKey) *migrationHost {
	t.Helper()
	oc := sesstest.ServerCtx(t, sslsession.TLS12, loopback.Config{NoTickets: true, SessionIDContext: []byte("migration")})
	sc := sesstest.NewCtx(t, oc)
	sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternalLookup)
	var opts redisstore.Options
	if sealed {
		opts.Keys = [][]byte{key32}
	}
	store := newStore(t, redisAddr, opts)
	require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{Timeout: 2 * time.Second, IntegrityKey: ik}))
	return &migrationHost{sealed: sealed, sc: sc, store: store, addr: sesstest.Serve(t, oc).Addr}
}

// The documented move from an unsealed fleet to a sealed one and back
// (docs/fleet.md), three servers restarted one by one, with real
// handshakes: after every restart each server resumes every session written
// by a server of its own kind and misses, without deleting, every session
// of the other kind; at the end every session ever written is still in
// Redis and nothing was judged invalid.
func TestMoveBetweenSealedAndUnsealed(t *testing.T) {
	sesstest.LeakCheck(t)
	rs := sesstest.StartRedis(t)
	ctx := context.Background()
	ik, err := sslsession.NewIntegrityKey()
	require.NoError(t, err)
	cctx := sesstest.ClientCtx(t, sslsession.TLS12)

	hosts := make([]*migrationHost, 3)
	var all []*migrationHost // every host ever run, for the totals
	for i := range hosts {
		hosts[i] = newMigrationHost(t, rs.Addr, false, ik)
		all = append(all, hosts[i])
	}
	type written struct {
		sess   *sslsession.Session
		id     []byte
		sealed bool
	}
	var sessions []written
	t.Cleanup(func() {
		for _, w := range sessions {
			w.sess.Close()
		}
	})
	round := func(label string, writer *migrationHost) {
		t.Helper()
		reused, s := sesstest.Roundtrip(t, writer.addr, cctx, nil)
		require.False(t, reused)
		sidInfo, err := s.Info()
		sid := sidInfo.ID
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			n, err := rs.Do(ctx, "EXISTS", writer.store.Key(sid))
			return err == nil && n == "1"
		}, 5*time.Second, 2*time.Millisecond, "%s: session stored", label)
		sessions = append(sessions, written{s, sid, writer.sealed})
		for i, h := range hosts {
			for k, w := range sessions {
				reused, next := sesstest.Roundtrip(t, h.addr, cctx, w.sess)
				next.Close()
				require.Equal(t, w.sealed == h.sealed, reused,
					"%s: host %d (sealed %v) offered session %d (sealed %v)", label, i, h.sealed, k, w.sealed)
			}
		}
	}
	round("unsealed fleet", hosts[0])
	for _, sealed := range []bool{true, false} {
		for i := range hosts {
			hosts[i] = newMigrationHost(t, rs.Addr, sealed, ik)
			all = append(all, hosts[i])
			round(fmt.Sprintf("host %d restarted sealed=%v", i, sealed), hosts[i])
		}
	}

	for k, w := range sessions {
		n, err := rs.Do(ctx, "EXISTS", hosts[0].store.Key(w.id))
		require.NoError(t, err)
		require.Equal(t, "1", n, "session %d (sealed %v) deleted", k, w.sealed)
	}
	var total redisstore.Stats
	for _, h := range all {
		st := h.store.Stats()
		total.Hits += st.Hits
		total.Invalid += st.Invalid
		total.Deletes += st.Deletes
		total.Unsealed += st.Unsealed
		total.UnknownKey += st.UnknownKey
		total.Errors += st.Errors
		m := h.sc.Metrics().Store
		require.Zero(t, m.Invalid, "the bridge judged nothing invalid")
		require.Zero(t, m.Errors)
	}
	require.Zero(t, total.Invalid)
	require.Zero(t, total.Deletes)
	require.Zero(t, total.Errors)
	require.Positive(t, total.Hits)
	require.Positive(t, total.Unsealed, "sealed servers met unsealed sessions")
	require.Positive(t, total.UnknownKey, "unsealed servers met sealed sessions")
	t.Logf("%d sessions; store totals: %+v", len(sessions), total)
}

// The bounded read against a plain GET, on a session-sized sealed value
// (about 1.2 KB: a TLS 1.2 session with a certificate in it): Store.Get
// (GETRANGE and AES-GCM), GETRANGE and GET alone, and the Lua script
// (TYPE, STRLEN, GET) a bounded read could also be.
func BenchmarkGet(b *testing.B) {
	rs := sesstest.StartRedis(b)
	ctx := context.Background()
	s := newStore(b, rs.Addr, redisstore.Options{Keys: [][]byte{key16}, Timeout: time.Second})
	session := bytes.Repeat([]byte{0x5a}, 1200)
	require.NoError(b, s.Put(ctx, id, session, time.Now().Add(time.Hour)))
	c := client(b, rs.Addr)
	key := s.Key(id)
	script := redis.NewScript(`local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'string' then return t end
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return 0 end
return redis.call('GET', KEYS[1])`)
	limit := redisstore.DefaultMaxValueSize
	b.Run("Store.Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GETRANGE", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.GetRange(ctx, key, 0, int64(limit)).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GET", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Get(ctx, key).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Lua", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := script.Run(ctx, c, []string{key}, limit).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
