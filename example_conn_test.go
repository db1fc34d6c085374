package sslsession_test

import (
	"fmt"
	"io"
	"net"

	"github.com/sslsession/sslsession"
)

// A server on which OpenSSL reads and writes the accepted sockets itself:
// net.Listen, then Server on each connection. The client half-closes with
// CloseWrite (close_notify) and still reads the reply.
func ExampleServer() {
	cert := newExampleCert()
	sctx := exampleServerCtx(cert, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		c, err := sslsession.Server(raw, sctx)
		if err != nil {
			raw.Close()
			return
		}
		defer c.Close()
		req, _ := io.ReadAll(c) // until the client's close_notify
		fmt.Fprintf(c, "got %q", req)
	}()

	cctx := exampleClientCtx(cert, 0)
	c, err := sslsession.Dial("tcp", ln.Addr().String(), &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.CloseWrite()
	reply, err := io.ReadAll(c)
	fmt.Println(string(reply), err)
	// Output: got "hello" <nil>
}
