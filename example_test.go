package sslsession_test

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/sslsession/sslsession"
)

// Save a session after one connection and resume it on the next: the whole
// cycle, through PEM as a program that stores sessions would.
func Example_saveAndResume() {
	cert := newExampleCert()
	srv := exampleServe(exampleServerCtx(cert, 0))
	defer srv.Close()
	ctx := exampleClientCtx(cert, 0)
	cfg := &sslsession.DialConfig{Ctx: ctx, ServerName: "localhost"}

	// First connection: a full handshake.
	c, err := sslsession.Dial("tcp", srv.Addr, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Write([]byte("hello"))
	// With TLS 1.3 the ticket comes after the handshake: wait for it.
	sess, err := c.AwaitSession(5 * time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	saved, _ := sess.MarshalPEM() // store it: it is a secret
	sess.Close()
	c.Close()
	fmt.Println("first resumed:", c.SessionReused())

	// Later: load it and resume.
	loaded, err := sslsession.ParsePEM(saved)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer loaded.Close()
	cfg.Session = loaded
	c2, err := sslsession.Dial("tcp", srv.Addr, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c2.Close()
	fmt.Println("second resumed:", c2.SessionReused())
	// Output:
	// first resumed: false
	// second resumed: true
}

// Borrow the connection's session (SSL_get0_session), read it, and keep it
// beyond the connection with Owned (an up-ref, like SSL_get1_session).
func ExampleSSL_Session() {
	cert := newExampleCert()
	srv := exampleServe(exampleServerCtx(cert, sslsession.TLS12))
	defer srv.Close()
	ctx := exampleClientCtx(cert, 0)
	c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: ctx, ServerName: "localhost"})
	if err != nil {
		fmt.Println(err)
		return
	}
	borrowed, _ := c.SSL().Session()
	info, _ := borrowed.Info()
	fmt.Println(info.Protocol, "resumable:", info.Resumable)
	kept, _ := borrowed.Owned()
	defer kept.Close()
	c.Close()
	fmt.Println("borrowed:", borrowed.Borrowed(), "kept:", !kept.Borrowed())
	// Output:
	// TLSv1.2 resumable: true
	// borrowed: true kept: true
}

// Lend a session's SSL_SESSION* to your own cgo code for the length of a
// call. Here the pointers only show that Owned takes a reference to the
// same SSL_SESSION instead of copying it.
func ExampleSession_WithPointer() {
	cert := newExampleCert()
	srv := exampleServe(exampleServerCtx(cert, sslsession.TLS12))
	defer srv.Close()
	c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: exampleClientCtx(cert, 0), ServerName: "localhost"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	s, _ := c.SSL().Session1()
	defer s.Close()
	kept, _ := s.Owned()
	defer kept.Close()

	var same bool
	s.WithPointer(func(p unsafe.Pointer) error { // your C call here
		return kept.WithPointer(func(q unsafe.Pointer) error {
			same = p != nil && p == q
			return nil
		})
	})
	fmt.Println("one SSL_SESSION:", same)
	// Output: one SSL_SESSION: true
}
