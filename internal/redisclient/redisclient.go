// Package redisclient holds what the Redis-backed packages (redisstore,
// ticketring) check of a go-redis client.
package redisclient

import "github.com/redis/go-redis/v9"

// ContextTimeouts reports whether client applies context deadlines to its
// network I/O (go-redis's ContextTimeoutEnabled); clients of unknown types
// are trusted.
func ContextTimeouts(client redis.UniversalClient) bool {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}
