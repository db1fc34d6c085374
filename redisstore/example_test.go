package redisstore_test

import (
	"crypto/rand"
	"log"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/redisstore"
)

// A server of a fleet: its sessions go to Redis, sealed, and sessions made
// by the other servers resume here. Every server runs the same code with the
// same certificate, session ID context and keys.
func Example() {
	ctx, err := openssl.NewCtxFromFiles("server.crt", "server.key")
	if err != nil {
		log.Fatal(err)
	}
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := sc.SetSessionIDContext([]byte("example.com fleet")); err != nil {
		log.Fatal(err)
	}
	// Resume by session ID (TLS 1.2) and stateful ticket (TLS 1.3):
	// stateless tickets would bypass the store.
	sc.Options(sslsession.OptionNoTicket, 0)
	sc.SetTimeout(10 * time.Minute)

	client := redis.NewClient(&redis.Options{
		Addr:                  "redis.internal:6379",
		ContextTimeoutEnabled: true, // required: per-call timeouts
		DialTimeout:           100 * time.Millisecond,
		DialerRetries:         1,
		MaxRetries:            -1, // a miss is cheaper than a retry
	})
	// In production the keys come from a secret store, the same on every
	// server; rotate by putting the new key first.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		log.Fatal(err)
	}
	store, err := redisstore.New(client, redisstore.Options{
		Prefix:  "tls:example.com:",
		Keys:    [][]byte{key},
		Timeout: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := sc.SetStore(store, sslsession.StoreOptions{Timeout: 100 * time.Millisecond}); err != nil {
		log.Fatal(err)
	}
	ln, err := openssl.Listen("tcp", ":443", ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	// ... serve ln; watch sc.Metrics() (or PublishExpvar) for hits and
	// store errors.
}
