package sslsession_test

import (
	"errors"
	"io"
	"log"
	"net"
	"time"

	"github.com/sslsession/sslsession"
)

// A resumed TLS 1.3 request sent as early data (0-RTT), and a server that
// reads early data apart from the rest and answers it at once. Early data
// can be replayed: answer from it only requests that are safe to repeat,
// and give a fleet a shared ReplayCache (docs/early-data.md).
func ExampleDialConfig_earlyData() {
	cert := newExampleCert()
	sctx := exampleServerCtx(cert, sslsession.TLS13)
	sc, err := sslsession.NewCtx(sctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := sc.SetMaxEarlyData(16384, 0); errors.Is(err, sslsession.ErrUnsupported) {
		log.Print("OpenSSL 1.0.2: no TLS 1.3, no early data")
		return
	} else if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c, err := sslsession.Server(raw, sctx)
				if err != nil {
					raw.Close()
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 4096)
				n, err := c.ReadEarlyData(buf)
				if n > 0 { // a request in early data: answer before the handshake ends
					log.Printf("server: early data %q", buf[:n])
					_, _ = c.WriteEarlyData([]byte("200 early\n"))
					for err == nil {
						_, err = c.ReadEarlyData(buf)
					}
				}
				if err != nil && err != io.EOF {
					return
				}
				if n == 0 { // none, or rejected: the request comes after the handshake
					if n, err = c.Read(buf); err != nil {
						return
					}
					log.Printf("server: request %q", buf[:n])
					_, _ = c.Write([]byte("200 late\n"))
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()

	cctx := exampleClientCtx(cert, sslsession.TLS13)
	var sess *sslsession.Session
	for i := 0; i < 2; i++ {
		c, err := sslsession.Dial("tcp", ln.Addr().String(), &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost",
			Session: sess, EarlyData: []byte("GET /\n")})
		if err != nil {
			log.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("client: early data %s, answer %q", c.EarlyDataStatus(), buf[:n])
		if sess == nil {
			if sess, err = c.AwaitSession(5 * time.Second); err != nil {
				log.Fatal(err)
			}
			defer sess.Close()
		}
		c.Close()
	}
}
