package ticketring_test

import (
	"context"
	"log"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/ticketring"
)

// A server of a fleet that shares its session-ticket keys: a ticket issued
// by any server resumes on every other, and the keys rotate by themselves.
// Every server runs the same code with the same certificate and sealing key.
func Example() {
	ctx, err := openssl.NewCtxFromFiles("server.crt", "server.key")
	if err != nil {
		log.Fatal(err)
	}
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		log.Fatal(err)
	}
	sc.SetTimeout(10 * time.Minute) // tickets' lifetime

	client := redis.NewClient(&redis.Options{
		Addr:                  "redis.internal:6379",
		ContextTimeoutEnabled: true, // required: per-call timeouts
	})
	// From a secret store, the same on every server (as redisstore's).
	var sealKey []byte
	ring, err := ticketring.New(client, ticketring.Options{
		Prefix:   "tls:example.com",
		Keys:     [][]byte{sealKey},
		Interval: time.Hour,        // each key encrypts for an hour
		Lifetime: 10 * time.Minute, // and decrypts for a ticket's lifetime after that
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ring.Close()
	// Tickets are issued at once, under host-local keys until the fleet's
	// ring is read.
	if err := ring.Install(sc); err != nil {
		log.Fatal(err)
	}
	wait, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := ring.Sync(wait); err != nil {
		log.Printf("ticket keys: %v; serving with host-local keys", err)
	}
	ln, err := openssl.Listen("tcp", ":443", ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	// ... serve ln; watch ring.Stats() and sc.Metrics().Tickets.
}
