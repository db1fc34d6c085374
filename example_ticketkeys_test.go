package sslsession_test

import (
	"fmt"
	"log"
	"time"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// Two servers share a ring of ticket keys: a ticket issued by one resumes on
// the other, with no session store. A fleet gets its ring from
// ticketring.New instead of building it by hand.
func ExampleCtx_SetTicketKeys() {
	cert, err := loopback.SelfSigned()
	if err != nil {
		log.Fatal(err)
	}
	current, err := sslsession.NewTicketKey()
	if err != nil {
		log.Fatal(err)
	}
	next, err := sslsession.NewTicketKey()
	if err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	ring := []sslsession.TicketRingKey{
		{Key: current, Encrypt: true, Start: now},
		// Published now, encrypts in an hour: every server can already
		// decrypt what the first one to switch will issue.
		{Key: next, Encrypt: true, Start: now.Add(time.Hour)},
	}
	var hosts []*loopback.Server
	for i := 0; i < 2; i++ {
		ctx, err := loopback.ServerCtx(cert, loopback.Config{Max: sslsession.TLS12, NoCache: true})
		if err != nil {
			log.Fatal(err)
		}
		sc, err := sslsession.NewCtx(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if err := sc.SetTicketKeys(ring); err != nil {
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
		fmt.Printf("host %d: resumed=%v\n", i, c.SessionReused())
		if sess == nil {
			if sess, err = c.Session1(); err != nil {
				log.Fatal(err)
			}
			defer sess.Close()
		}
		c.Close()
	}
	// Output:
	// host 0: resumed=false
	// host 1: resumed=true
}
