// Command fleet-server is one TLS echo server of a fleet. Run several, with
// the same certificate and -seal-key, on one Redis: a session made by one
// resumes on the others.
package main

import (
	"encoding/hex"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/redisstore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "TLS listen address")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	certFile := flag.String("cert", "server.crt", "certificate, PEM")
	keyFile := flag.String("key", "server.key", "private key, PEM")
	sealKey := flag.String("seal-key", "", "AES-256 key sealing sessions in Redis, 64 hex digits, the same on every server")
	metrics := flag.String("metrics", "", "serve /debug/vars on this address")
	flag.Parse()

	key, err := hex.DecodeString(*sealKey)
	if err != nil || len(key) != 32 {
		log.Fatal("-seal-key: 64 hex digits (openssl rand -hex 32)")
	}
	ctx, err := openssl.NewCtxFromFiles(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}
	// OpenSSL 1.0.2 enables no ECDH curve by default: without one there is
	// no ECDHE key exchange (and no suite at all for an ECDSA certificate).
	if err := ctx.SetEllipticCurve(openssl.Prime256v1); err != nil {
		log.Fatal(err)
	}
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// The same on every server: a server resumes only sessions made under
	// its own session ID context.
	if err := sc.SetSessionIDContext([]byte("fleet-server example")); err != nil {
		log.Fatal(err)
	}
	// Session IDs (TLS 1.2) and stateful tickets (TLS 1.3) are looked up in
	// the store; stateless tickets would bypass it.
	sc.Options(sslsession.OptionNoTicket, 0)
	sc.SetTimeout(10 * time.Minute)

	client := redis.NewClient(&redis.Options{
		Addr:                  *redisAddr,
		ContextTimeoutEnabled: true, // redisstore requires it: per-call timeouts
		DialTimeout:           100 * time.Millisecond,
		DialerRetries:         1,
		MaxRetries:            -1, // a full handshake is cheaper than a retry
	})
	store, err := redisstore.New(client, redisstore.Options{
		Prefix:  "fleet-server:",
		Keys:    [][]byte{key},
		Timeout: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := sc.SetStore(store, sslsession.StoreOptions{Timeout: 100 * time.Millisecond}); err != nil {
		log.Fatal(err)
	}
	if *metrics != "" {
		if err := sslsession.PublishExpvar("tls_sessions", sc); err != nil {
			log.Fatal(err)
		}
		go func() { log.Println(http.ListenAndServe(*metrics, nil)) }()
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("listening on %s", *addr)
	for {
		raw, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			// OpenSSL reads and writes the socket itself (sslsession.Server).
			c, err := sslsession.Server(raw, ctx)
			if err != nil {
				raw.Close()
				log.Printf("%s: %v", raw.RemoteAddr(), err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if err := c.Handshake(); err != nil {
				log.Printf("%s: handshake: %v", c.RemoteAddr(), err)
				return
			}
			log.Printf("%s: resumed=%v", c.RemoteAddr(), c.SessionReused())
			_, _ = io.Copy(c, c)
		}()
	}
}
