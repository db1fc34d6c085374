package sslsession_test

import (
	"fmt"
	"io"
	"log"

	"github.com/sslsession/sslsession"
)

// Two servers of a fleet share one store: a session made on host A resumes
// on host B. Each host has its own SSL_CTX, with the same certificate and
// session ID context. Here the store is in memory; across processes it is
// redisstore.
func ExampleCtx_SetStore() {
	cert := newExampleCert()
	store := sslsession.NewMemoryStore(0) // a fleet: redisstore.New(client, opts)

	var hosts []*exampleServer
	for i := 0; i < 2; i++ {
		ctx := exampleServerCtx(cert, sslsession.TLS12)
		sc, err := sslsession.NewCtx(ctx)
		if err != nil {
			log.Fatal(err)
		}
		sc.Options(sslsession.OptionNoTicket, 0) // resume by session ID, through the store
		if err := sc.SetSessionIDContext([]byte("my-fleet")); err != nil {
			log.Fatal(err)
		}
		if err := sc.SetStore(store, sslsession.StoreOptions{}); err != nil {
			log.Fatal(err)
		}
		srv := exampleServe(ctx)
		defer srv.Close()
		hosts = append(hosts, srv)
	}

	client := exampleClientCtx(cert, sslsession.TLS12)
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
	cert := newExampleCert()
	srv := exampleServe(exampleServerCtx(cert, 0))
	defer srv.Close()
	ctx := exampleClientCtx(cert, 0)
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
