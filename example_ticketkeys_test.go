package sslsession_test

import (
	"fmt"
	"log"
	"time"

	"github.com/sslsession/sslsession"
)

// Two servers share a ring of ticket keys: a ticket issued by one resumes on
// the other, with no session store. A fleet gets its ring from
// ticketring.New instead of building it by hand.
func ExampleCtx_SetTicketKeys() {
	cert := newExampleCert()
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
	var hosts []*exampleServer
	for i := 0; i < 2; i++ {
		ctx := exampleServerCtx(cert, sslsession.TLS12)
		sc, err := sslsession.NewCtx(ctx)
		if err != nil {
			log.Fatal(err)
		}
		sc.SetCacheMode(sslsession.CacheOff) // resume by ticket only
		if err := sc.SetTicketKeys(ring); err != nil {
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
