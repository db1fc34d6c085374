package redisstore_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession/internal/sesstest"
	"github.com/sslsession/sslsession/redisstore"
)

// One SET NX PX per key: the first Add records it for the TTL, the next
// finds it; after the TTL it is new again. Redis down is an error, never
// "added".
func TestEarlyDataReplayCacheRedis(t *testing.T) {
	rs := sesstest.StartRedis(t)
	rc, err := redisstore.NewReplayCache(client(t, rs.Addr), "")
	require.NoError(t, err)
	key := []byte("client random 32 bytes long.....")
	added, err := rc.Add(t.Context(), key, 300*time.Millisecond)
	require.NoError(t, err)
	require.True(t, added)
	added, err = rc.Add(t.Context(), key, time.Minute)
	require.NoError(t, err)
	require.False(t, added, "a replay")
	require.Equal(t, "sslsession-0rtt:"+"636c69656e742072616e646f6d203332206279746573206c6f6e672e2e2e2e2e", rc.Key(key))
	ttl, err := rs.Do(t.Context(), "PTTL", rc.Key(key))
	require.NoError(t, err)
	ms, err := strconv.Atoi(ttl)
	require.NoError(t, err)
	require.True(t, ms > 0 && ms <= 300, "PTTL %d: the first Add's TTL, not extended", ms)
	require.Eventually(t, func() bool {
		added, err := rc.Add(t.Context(), key, time.Minute)
		return err == nil && added
	}, 5*time.Second, 50*time.Millisecond, "recorded again after the TTL")

	_, err = rc.Add(t.Context(), nil, time.Minute)
	require.Error(t, err)
	rs.Stop()
	added, err = rc.Add(t.Context(), []byte("another"), time.Minute)
	require.Error(t, err)
	require.False(t, added)

	_, err = redisstore.NewReplayCache(nil, "")
	require.Error(t, err)
	_, err = redisstore.NewReplayCache(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), "")
	require.ErrorIs(t, err, redisstore.ErrNoContextTimeout)
}
