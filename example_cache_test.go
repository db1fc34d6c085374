package sslsession_test

import (
	"fmt"
	"io"
	"log"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// Two servers of a fleet share one store: a session made on host A resumes
// on host B. Each host has its own SSL_CTX, with the same certificate and
// session ID context. Here the store is in memory; across processes it is
// redisstore.
func ExampleCtx_SetStore() {
	cert, err := loopback.SelfSigned()
	if err != nil {
		log.Fatal(err)
	}
	store := sslsession.NewMemoryStore(0) // a fleet: redisstore.New(client, opts)

	var hosts []*loopback.Server
	for i := 0; i < 2; i++ {
		ctx, err := loopback.ServerCtx(cert, loopback.Config{
			Max:              sslsession.TLS12,
			NoTickets:        true, // resume by session ID, through the store
			SessionIDContext: []byte("my-fleet"),
		})
		if err != nil {
			log.Fatal(err)
		}
		sc, err := sslsession.NewCtx(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if err := sc.SetStore(store, sslsession.StoreOptions{}); err != nil {
			log.Fatal(err)
		}
		srv, err := loopback.Serve(ctx, cert)
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		hosts = append(hosts, srv)
	}

	client, err := loopback.ClientCtx(cert, 0, sslsession.TLS12)
	if err != nil {
		log.Fatal(err)
	}
	var sess *sslsession.Session
	for i, host := range hosts {
		c, err := sslsession.Dial("tcp", host.Addr, &sslsession.DialConfig{Ctx: client, ServerName: "localhost", Session: sess})
		if err != nil {
			log.Fatal(err)
		}
		// One round trip: the server has finished its handshake (and
		// stored the session) when the echo comes back.
		if _, err := c.Write([]byte("hi")); err != nil {
			log.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("host %c: resumed %v\n", 'A'+i, c.SessionReused())
		if sess == nil {
			if sess, err = c.Session1(); err != nil {
				log.Fatal(err)
			}
			defer sess.Close()
		}
		c.Close()
	}
	// Output:
	// host A: resumed false
	// host B: resumed true
}

// A client that resumes on its own: the ClientCache offers the session of
// the last connection to the same server.
func ExampleClientCache() {
	srv, err := loopback.Start(loopback.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	ctx, err := loopback.ClientCtx(srv.Cert, 0, 0)
	if err != nil {
		log.Fatal(err)
	}
	cache, err := sslsession.NewClientCache(ctx, 100)
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	for i := 0; i < 3; i++ {
		c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cache, ServerName: "localhost"})
		if err != nil {
			log.Fatal(err)
		}
		// With TLS 1.3 the session tickets arrive with the first read.
		if _, err := c.Write([]byte("hi")); err != nil {
			log.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("connection %d: resumed %v\n", i+1, c.SessionReused())
		c.Close()
	}
	// Output:
	// connection 1: resumed false
	// connection 2: resumed true
	// connection 3: resumed true
}
