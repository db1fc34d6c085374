package sslsession_test

import (
	"errors"
	"log"

	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
)

// A TLS 1.3 server that sends one session ticket per full handshake instead
// of OpenSSL's two: one client connection at a time needs only one.
func ExampleCtx_SetNumTickets() {
	oc, err := openssl.NewCtx()
	if err != nil {
		log.Fatal(err)
	}
	sc, err := sslsession.NewCtx(oc)
	if err != nil {
		log.Fatal(err)
	}
	switch err := sc.SetNumTickets(1); {
	case errors.Is(err, sslsession.ErrUnsupported):
		log.Print("OpenSSL 1.0.2: no TLS 1.3, no tickets to count")
	case err != nil:
		log.Fatal(err)
	default:
		log.Printf("%d ticket per full handshake", sc.NumTickets())
	}
}
