package ticketring_test

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/ticketring"
)

// simClock is a shared simulated time: Redis's clock and every host's
// (plus the host's own skew).
type simClock struct{ ns atomic.Int64 }

func newSimClock() *simClock {
	c := &simClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *simClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *simClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *simClock) skewed(d time.Duration) func() time.Time {
	return func() time.Time { return c.now().Add(d) }
}

// simRing is a ring on the simulated clock, with no context.
func simRing(t *testing.T, client redis.UniversalClient, clk *simClock, skew time.Duration, opts ticketring.Options) *ticketring.Ring {
	t.Helper()
	opts.Clock = clk.skewed(skew)
	r, err := ticketring.NewManual(client, opts)
	require.NoError(t, err)
	r.SetRedisClock(clk.now)
	t.Cleanup(func() { r.Close() })
	return r
}

func encryptingName(t *testing.T, r *ticketring.Ring) [16]byte {
	t.Helper()
	keys, now := r.Published()
	k, ok := ticketring.Encrypting(keys, now)
	require.True(t, ok)
	return k.Name()
}

// Short Intervals with long Lifetimes make large rings: two hosts sharing
// one for a long time never take it for a forged one and never split
// (Interval 100ms, Lifetime 20s: 203 keys; 1s and 120s as an operator ran
// it for minutes).
func TestLargeRingsStayShared(t *testing.T) {
	b := singleBackend(t)
	for _, c := range []struct{ interval, lifetime, run time.Duration }{
		{100 * time.Millisecond, 20 * time.Second, 60 * time.Second},
		{time.Second, 120 * time.Second, 10 * time.Minute},
	} {
		clk := newSimClock()
		opts := ticketring.Options{Prefix: t.Name() + c.interval.String(), Keys: [][]byte{sealKey(t)},
			Interval: c.interval, Lifetime: c.lifetime}
		a := simRing(t, b.client(t), clk, 0, opts)
		h := simRing(t, b.client(t), clk, 0, opts)
		maxKeys := 0
		for elapsed := time.Duration(0); elapsed < c.run; elapsed += c.interval / 4 {
			clk.add(c.interval / 4)
			require.NoError(t, a.Sync(t.Context()))
			require.NoError(t, h.Sync(t.Context()))
			require.Equal(t, encryptingName(t, a), encryptingName(t, h), "%v: one encrypting key", elapsed)
			maxKeys = max(maxKeys, a.FleetLen())
		}
		for _, r := range []*ticketring.Ring{a, h} {
			st := r.Stats()
			assert.Zero(t, st.Tampered+st.Foreign+st.Rollbacks+st.Splits+st.Fallbacks, "%+v", st)
		}
		assert.Equal(t, int((c.lifetime+c.interval-1)/c.interval)+2, maxKeys, "the ring grows to its size and stays there")
	}
}

// New refuses what the ring's bound cannot hold, and Refresh past half an
// Interval, naming the limit.
func TestOptionLimits(t *testing.T) {
	b := singleBackend(t)
	for name, o := range map[string]ticketring.Options{
		"15m for 7 days": {Interval: 15 * time.Minute, Lifetime: 7 * 24 * time.Hour},
		"slow refresh":   {Interval: time.Hour, Refresh: 31 * time.Minute},
		"negative skew":  {MaxSkew: -time.Second},
	} {
		o.Keys = [][]byte{sealKey(t)}
		_, err := ticketring.New(b.client(t), o)
		require.ErrorIs(t, err, ticketring.ErrOptions, name)
		if name == "15m for 7 days" {
			assert.Contains(t, err.Error(), "MaxKeys (256)")
			assert.Contains(t, err.Error(), "Interval of at least 39m51s")
		}
	}
	for _, o := range []ticketring.Options{
		{Interval: time.Hour, Lifetime: ticketring.MaxLifetime},
		{Interval: 15 * time.Minute, Lifetime: 24 * time.Hour, Refresh: 7*time.Minute + 30*time.Second},
		{Interval: time.Second}, // Lifetime defaults to what the bound allows
	} {
		o.Keys = [][]byte{sealKey(t)}
		r, err := ticketring.NewManual(b.client(t), o)
		require.NoError(t, err)
		r.Close()
	}
}

// A host whose clock is 30 days ahead rotates on Redis's clock: the fleet
// keeps rotating, and the host is counted and logged as skewed once.
func TestFastClockFollowsRedis(t *testing.T) {
	b := singleBackend(t)
	var logs bytes.Buffer
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: 200 * time.Millisecond,
		Lifetime: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))}
	honest := newHost(t, b.client(t), sslsession.TLS12, opts)
	fast := opts
	fast.Clock = func() time.Time { return time.Now().Add(30 * 24 * time.Hour) }
	f := newHost(t, b.client(t), sslsession.TLS12, fast)
	seen := map[[16]byte]bool{}
	deadline := time.Now().Add(10 * 200 * time.Millisecond)
	for time.Now().Before(deadline) {
		require.NoError(t, f.ring.Sync(t.Context()))
		require.NoError(t, honest.ring.Sync(t.Context()))
		name, ok := honest.sc.EncryptingTicketKey(time.Now())
		require.True(t, ok)
		seen[name] = true
		time.Sleep(50 * time.Millisecond)
	}
	assert.GreaterOrEqual(t, len(seen), 8, "the fleet rotated every Interval")
	st := f.ring.Stats()
	assert.Equal(t, int64(1), st.Skewed)
	assert.InDelta(t, float64(-30*24*time.Hour), float64(st.ClockOffset), float64(time.Second))
	assert.Equal(t, 1, strings.Count(logs.String(), "far from Redis's"))
	assert.Zero(t, honest.ring.Stats().FutureKeys+honest.ring.Stats().Splits)
	g := newGoClient(t, sslsession.TLS12, false)
	require.False(t, mustDial(t, g, f.srv.Addr))
	assert.True(t, mustDial(t, g, honest.srv.Addr), "the fast host's tickets resume on the honest one")
	g = newGoClient(t, sslsession.TLS12, false)
	require.False(t, mustDial(t, g, honest.srv.Addr))
	assert.True(t, mustDial(t, g, f.srv.Addr), "and back")
}

// A ring written while Redis's clock was far ahead (a key starting in 30
// days) is repaired: the far key is dropped, counted and logged, and the
// fleet goes on rotating.
func TestFutureKeysDropped(t *testing.T) {
	b := singleBackend(t)
	clk := newSimClock()
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: time.Hour, Lifetime: 24 * time.Hour}
	ahead := simRing(t, b.client(t), clk, 0, opts)
	ahead.SetRedisClock(func() time.Time { return clk.now().Add(30 * 24 * time.Hour) })
	require.NoError(t, ahead.Sync(t.Context()))
	honest := simRing(t, b.client(t), clk, 0, opts)
	names := map[[16]byte]bool{}
	for i := 0; i < 40; i++ {
		require.NoError(t, honest.Sync(t.Context()))
		names[encryptingName(t, honest)] = true
		clk.add(15 * time.Minute)
	}
	st := honest.Stats()
	assert.Equal(t, int64(1), st.FutureKeys, "dropped once, then the ring is sound")
	assert.GreaterOrEqual(t, len(names), 10, "40 Syncs over 10 Intervals rotate about 10 times")
}

// The ring never goes backwards: an old sealed ring written back (a Redis
// restored from a snapshot, a replay) is replaced by the newer one, and a
// key whose turn is over never encrypts again, even for a host that has no
// memory of the newer ring.
func TestRingNeverGoesBackwards(t *testing.T) {
	b := singleBackend(t)
	clk := newSimClock()
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: time.Hour, Lifetime: 24 * time.Hour}
	a := simRing(t, b.client(t), clk, 0, opts)
	require.NoError(t, a.Sync(t.Context()))
	old, err := b.single.Do(t.Context(), "GET", a.Key())
	require.NoError(t, err)
	oldKey := encryptingName(t, a)
	for i := 0; i < 12; i++ {
		clk.add(30 * time.Minute)
		require.NoError(t, a.Sync(t.Context()))
	}
	newer, _ := a.Names()
	_, err = b.single.Do(t.Context(), "SET", a.Key(), old)
	require.NoError(t, err)
	require.NoError(t, a.Sync(t.Context()))
	st := a.Stats()
	assert.Equal(t, int64(1), st.Rollbacks)
	now, _ := a.Names()
	assert.Equal(t, newer, now, "the newer ring is written back")
	assert.NotEqual(t, oldKey, encryptingName(t, a))

	// A host that never saw the newer ring reads the old one: the old
	// current key's turn is over, so a fresh key encrypts.
	_, err = b.single.Do(t.Context(), "SET", a.Key(), old)
	require.NoError(t, err)
	fresh := simRing(t, b.client(t), clk, 0, opts)
	require.NoError(t, fresh.Sync(t.Context()))
	enc := encryptingName(t, fresh)
	assert.NotEqual(t, oldKey, enc, "a retired key never encrypts again")
	keys, _ := fresh.Published()
	for _, k := range keys {
		if k.Key.Name() == oldKey {
			assert.False(t, k.Encrypt, "the old key only decrypts")
		}
	}
}

// Values that are not a ring of bounded size are never read whole: a large
// string and a key of another type are counted and replaced.
func TestHostileValues(t *testing.T) {
	b := singleBackend(t)
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}}
	a := newHost(t, b.client(t), sslsession.TLS12, opts)
	require.NoError(t, a.ring.Sync(t.Context()))
	names, _ := a.ring.Names()

	_, err := b.single.Do(t.Context(), "SET", a.ring.Key(), strings.Repeat("x", 8<<20))
	require.NoError(t, err)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	require.NoError(t, a.ring.Sync(t.Context()))
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "an 8 MiB value is not read")
	assert.Equal(t, int64(1), a.ring.Stats().Tampered)

	_, err = b.single.Do(t.Context(), "DEL", a.ring.Key())
	require.NoError(t, err)
	_, err = b.single.Do(t.Context(), "RPUSH", a.ring.Key(), "a", "b")
	require.NoError(t, err)
	require.NoError(t, a.ring.Sync(t.Context()))
	assert.Equal(t, int64(2), a.ring.Stats().Tampered)
	typ, err := b.single.Do(t.Context(), "TYPE", a.ring.Key())
	require.NoError(t, err)
	assert.Equal(t, "string", typ, "replaced by a ring")
	now, _ := a.ring.Names()
	assert.Equal(t, names, now)
}

// OnPublish sees every change of the published keys; a panic in it is
// recovered and counted, and the ring goes on.
func TestOnPublish(t *testing.T) {
	b := singleBackend(t)
	clk := newSimClock()
	var calls atomic.Int64
	var last atomic.Value
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: time.Hour,
		OnPublish: func(now time.Time, keys []sslsession.TicketRingKey) {
			last.Store(keys)
			if calls.Add(1) == 2 {
				panic("a hook that fails")
			}
		}}
	r := simRing(t, b.client(t), clk, 0, opts)
	require.NoError(t, r.Sync(t.Context()))
	require.NoError(t, r.Sync(t.Context()))
	assert.Equal(t, int64(1), calls.Load(), "no change, no call")
	clk.add(time.Hour)
	require.NoError(t, r.Sync(t.Context()))
	assert.Equal(t, int64(2), calls.Load())
	assert.Equal(t, int64(1), r.Stats().HookPanics)
	clk.add(time.Hour)
	require.NoError(t, r.Sync(t.Context()))
	assert.Equal(t, int64(3), calls.Load())
	keys := last.Load().([]sslsession.TicketRingKey)
	k, ok := ticketring.Encrypting(keys, time.Now())
	require.True(t, ok)
	assert.Equal(t, encryptingName(t, r), k.Name(), "the hook gets the keys in the process's time")
}

// A refresh never turns tickets back on: OptionNoTicket set by an operator
// after Install stays set through Syncs and rotations.
func TestRefreshKeepsNoTicket(t *testing.T) {
	b := singleBackend(t)
	opts := ticketring.Options{Prefix: t.Name(), Keys: [][]byte{sealKey(t)}, Interval: 200 * time.Millisecond}
	a := newHost(t, b.client(t), sslsession.TLS12, opts)
	require.NoError(t, a.ring.Sync(t.Context()))
	a.sc.Options(sslsession.OptionNoTicket, 0)
	for i := 0; i < 4; i++ {
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, a.ring.Sync(t.Context()))
		require.NotZero(t, a.sc.Options(0, 0)&sslsession.OptionNoTicket, "Sync %d cleared OptionNoTicket", i)
	}
	assert.Positive(t, a.ring.Stats().Rotations)
}
