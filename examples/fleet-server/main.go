// Command fleet-server is one TLS echo server of a fleet. Run several, with
// the same certificate and -seal-key, on one Redis: a session made by one
// resumes on the others. Session tickets (TLS 1.2 tickets, TLS 1.3
// stateless tickets) are encrypted under the fleet's shared, self-rotating
// ticket keys (package ticketring), so a ticket resumes on any server with
// no Redis call during the handshake; clients that resume by session ID go
// through the Redis session store.
package main

import (
	"context"
	"encoding/hex"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redis/go-redis/v9"
	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/prommetrics"
	"github.com/sslsession/sslsession/redisstore"
	"github.com/sslsession/sslsession/ticketring"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "TLS listen address")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address; several, comma-separated, are a Redis Cluster's nodes (or, with -redis-master, Sentinels)")
	redisCluster := flag.Bool("redis-cluster", false, "-redis is a Redis Cluster even if it names one node")
	redisMaster := flag.String("redis-master", "", "reach Redis through Sentinel: the master's name (-redis then names the Sentinels)")
	certFile := flag.String("cert", "server.crt", "certificate, PEM")
	keyFile := flag.String("key", "server.key", "private key, PEM")
	sealKey := flag.String("seal-key", "", "AES-256 key sealing sessions in Redis, 64 hex digits, the same on every server")
	metrics := flag.String("metrics", "", "serve /metrics (Prometheus) and /debug/vars (expvar) on this address")
	tickets := flag.Bool("tickets", true, "session tickets under the fleet's shared ticket keys (false: session IDs and stateful TLS 1.3 tickets through Redis only)")
	timeout := flag.Duration("session-timeout", 10*time.Minute, "session and ticket lifetime")
	interval := flag.Duration("ticket-interval", ticketring.DefaultInterval, "how long each ticket key encrypts, and how long before its turn it is published")
	lifetime := flag.Duration("ticket-lifetime", 0, "how long a ticket key decrypts after its turn (default: -session-timeout, or what the ring can hold with -ticket-interval: 253 Intervals)")
	nginxKeys := flag.String("nginx-ticket-keys", "", "comma-separated nginx ssl_session_ticket_key files to keep in step with the ring, in nginx's order (the first encrypts)")
	haproxyKeys := flag.String("haproxy-ticket-keys", "", "a haproxy tls-ticket-keys file to keep in step with the ring")
	reloadCmd := flag.String("ticket-keys-reload", "", "command run (no shell; space-separated words) after the key files change, e.g. \"nginx -s reload\"")
	logEvery := flag.Duration("log-incomplete-every", 10*time.Second, "log incomplete handshakes (health checks, failures) as one summary line at most this often")
	flag.Parse()
	incomplete := newHandshakeLog(*logEvery)

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
	// Later versions must be left alone: a curve set here becomes the only
	// group, and every TLS 1.3 client offering X25519 (Go, browsers,
	// OpenSSL) would pay a HelloRetryRequest round trip.
	if v := sslsession.RuntimeVersion(); v.Major() == 1 && v.Minor() == 0 {
		if err := ctx.SetEllipticCurve(openssl.Prime256v1); err != nil {
			log.Fatal(err)
		}
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
	sc.SetTimeout(*timeout)

	// One Redis server, a Cluster or Sentinel: go-redis's UniversalClient
	// picks by the options.
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 strings.Split(*redisAddr, ","),
		IsClusterMode:         *redisCluster,
		MasterName:            *redisMaster,
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
	// Session IDs (and, with -tickets=false, stateful TLS 1.3 tickets) are
	// looked up in the store.
	if err := sc.SetStore(store, sslsession.StoreOptions{Timeout: 100 * time.Millisecond}); err != nil {
		log.Fatal(err)
	}
	var ring *ticketring.Ring
	if *tickets {
		if *lifetime == 0 {
			// The session timeout, as long as the ring can hold it.
			*lifetime = min(*timeout, (ticketring.MaxKeys-3)*(*interval))
		}
		ring, err = ticketring.New(client, ticketring.Options{
			Prefix:    "fleet-server-tickets",
			Keys:      [][]byte{key},
			Interval:  *interval,
			Lifetime:  *lifetime,
			OnPublish: keyFileHook(*nginxKeys, *haproxyKeys, *reloadCmd),
		})
		if err != nil {
			log.Fatal(err)
		}
		// Serves at once with host-local keys if Redis does not answer.
		if err := ring.Install(sc); err != nil {
			log.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := ring.Sync(sctx); err != nil {
			log.Printf("ticket keys: %v (serving with host-local keys until Redis answers)", err)
		}
		cancel()
	} else {
		sc.Options(sslsession.OptionNoTicket, 0)
	}
	if *metrics != "" {
		if err := sslsession.PublishExpvar("tls_sessions", sc); err != nil {
			log.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(prommetrics.New("sslsession", prommetrics.Sources{Ctx: sc, Store: store, Ring: ring}),
			incomplete.total,
			collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
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
				incomplete.add(c.RemoteAddr(), err)
				return
			}
			log.Printf("%s: resumed=%v", c.RemoteAddr(), c.SessionReused())
			_, _ = io.Copy(c, c)
		}()
	}
}
