package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sslsession/sslsession/internal/redisclient"
)

// ReplayCache is a sslsession.ReplayCache on Redis, shared by a fleet: each
// key is one Redis string set with SET NX PX, so that of any number of
// servers exactly one records a ClientHello and accepts its early data. The
// keys are ClientHello randoms, never secrets.
type ReplayCache struct {
	client redis.UniversalClient
	prefix string
}

// NewReplayCache makes a ReplayCache on client whose keys start with prefix
// (default "sslsession-0rtt:"). The client must honour context deadlines
// (ErrNoContextTimeout), which bound each call.
func NewReplayCache(client redis.UniversalClient, prefix string) (*ReplayCache, error) {
	if client == nil {
		return nil, errors.New("redisstore: nil client")
	}
	if !redisclient.ContextTimeouts(client) {
		return nil, ErrNoContextTimeout
	}
	if prefix == "" {
		prefix = "sslsession-0rtt:"
	}
	return &ReplayCache{client: client, prefix: prefix}, nil
}

// Key is the Redis key of a replay cache key.
func (c *ReplayCache) Key(key []byte) string { return c.prefix + hex.EncodeToString(key) }

// Add records key for ttl (at least a millisecond) with one SET NX PX:
// true when this call set it, false when it was there.
func (c *ReplayCache) Add(ctx context.Context, key []byte, ttl time.Duration) (bool, error) {
	if len(key) == 0 {
		return false, errors.New("redisstore: empty replay cache key")
	}
	ttl = max(ttl, time.Millisecond)
	return c.client.SetNX(ctx, c.Key(key), "1", ttl).Result()
}
