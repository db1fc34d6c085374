package sslsession

// #include "conn_cgo.h"
import "C"

import (
	"errors"
	"net"
	"runtime"
	"syscall"
	"time"

	"github.com/spacemonkeygo/openssl"
)

// sockTransport is the transport on which OpenSSL reads and writes the
// socket itself (SSL_set_fd(3)), with no memory BIO, no copy and no
// callback into Go for I/O. The socket stays non-blocking: when OpenSSL
// wants to read or write and cannot, Go's netpoller waits for readiness
// (syscall.RawConn), so no OS thread blocks and the net.Conn deadlines
// apply.
//
// Every try of a step runs inside a RawConn callback, which holds a
// reference on the descriptor: a concurrent Close cannot let the
// descriptor number be reused under OpenSSL. The SSL's lock is released
// while waiting for readiness, so Read and Write can wait at the same time.
// Renegotiation is refused, so after the handshake a write never waits for
// the socket to become readable; a read may need to write (a TLS 1.3 key
// update answer, an alert) and waits for writability in that case.
type sockTransport struct {
	raw net.Conn
	rc  syscall.RawConn
}

// newSockTransport makes the SSL of the client or server side of a TLS
// connection from sslCtx over conn, with OpenSSL on the socket. isSocket is
// false, and nothing is made, when conn is not a *net.TCPConn or a stream
// *net.UnixConn.
func newSockTransport(conn net.Conn, sslCtx *openssl.Ctx, server bool) (t *sockTransport, ssl *SSL, isSocket bool, err error) {
	switch u := conn.(type) {
	case *net.TCPConn:
	case *net.UnixConn:
		if u.LocalAddr().Network() != "unix" {
			return nil, nil, false, nil
		}
	default:
		return nil, nil, false, nil
	}
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, nil, true, err
	}
	cp, err := ctxPointer(sslCtx)
	if err != nil {
		return nil, nil, true, err
	}
	srv := C.int(0)
	if server {
		srv = 1
	}
	var p *C.SSL
	var e C.sslsess_err
	cerr := rc.Control(func(fd uintptr) {
		p = C.sslsess_conn_new(cp, C.int(fd), srv, &e)
	})
	runtime.KeepAlive(sslCtx)
	if cerr != nil {
		return nil, nil, true, cerr
	}
	if p == nil {
		return nil, nil, true, newError("SSL_new", nil, &e)
	}
	s := &SSL{p: p, ctxAddr: ctxID(cp), keep: sslCtx, owns: true, roleSet: true}
	s.mu = &s.ownMu
	runtime.SetFinalizer(s, (*SSL).Free)
	return &sockTransport{raw: conn, rc: rc}, s, true, nil
}

func (t *sockTransport) run(s *step) error {
	var err error
	if s.wantsWrite() {
		err = t.rc.Write(s.writable)
	} else {
		err = t.rc.Read(s.readable)
	}
	for err == nil {
		switch s.r.st {
		case C.SSLSESS_IO_WANT_READ:
			if s.op == C.SSLSESS_OP_SHUTDOWN || (s.stop != nil && s.stop()) {
				return nil
			}
			err = t.rc.Read(s.readable)
		case C.SSLSESS_IO_WANT_WRITE:
			err = t.rc.Write(s.writable)
		default:
			return nil
		}
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		// RawConn names its operations raw-read and raw-write.
		switch oe.Op {
		case "raw-read":
			oe.Op = "read"
		case "raw-write":
			oe.Op = "write"
		}
	}
	return err
}

// closeNotify tries once without waiting, then, only if the socket cannot
// take the alert, waits under a write deadline of closeNotifyTimeout.
// Setting a deadline moves a runtime timer and can wake the netpoller;
// almost every close_notify goes out at the first try and needs none.
func (t *sockTransport) closeNotify(s *step) error {
	if err := t.rc.Control(func(uintptr) { s.try() }); err != nil {
		return err
	}
	if s.r.st != C.SSLSESS_IO_WANT_WRITE {
		return nil
	}
	_ = t.raw.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
	return t.run(s)
}

func (t *sockTransport) close() error { return t.raw.Close() }

func (t *sockTransport) spacemonkey() *openssl.Conn { return nil }
