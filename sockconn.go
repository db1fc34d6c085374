package sslsession

// #include <stdlib.h>
// #include "conn_cgo.h"
//
// /* These never call back into Go. sslsess_conn_io is not listed: a
//    handshake or a read runs verify, SNI and session callbacks that enter
//    Go, and it is given pointers into the heap, never the stack. */
// #cgo nocallback sslsess_conn_established
// #cgo nocallback sslsess_conn_verify_result
// #cgo nocallback sslsess_conn_check_host
// #cgo noescape sslsess_conn_check_host
// #cgo nocallback sslsess_conn_key_update
// #cgo noescape sslsess_conn_key_update
import "C"

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/spacemonkeygo/openssl"
)

// sockConn is a TLS connection on which OpenSSL reads and writes the
// socket itself (SSL_set_fd(3)), with no memory BIO, no copy and no
// callback into Go for I/O. The socket stays non-blocking: when OpenSSL
// wants to read or write and cannot, Go's netpoller waits for readiness
// (syscall.RawConn), so no OS thread blocks and the net.Conn deadlines
// apply.
//
// Every OpenSSL call on the SSL runs inside a RawConn callback, which holds
// a reference on the descriptor: a concurrent Close cannot let the
// descriptor number be reused under OpenSSL. Every call also holds the
// SSL's lock (OpenSSL's SSL is not safe for concurrent use); the lock is
// released while waiting for readiness, so Read and Write can wait at the
// same time. The handshake runs once, under hsMu, before the first Read or
// Write. Renegotiation is refused (SSL_OP_NO_RENEGOTIATION, or its
// equivalent on 1.0.2), so after the handshake a write never waits for the
// socket to become readable; a read may need to write (a TLS 1.3 key update
// answer, an alert) and waits for writability in that case.
type sockConn struct {
	raw net.Conn
	rc  syscall.RawConn
	ssl *SSL // owns the SSL*; its lock guards every call on it
	p   *C.SSL

	hsMu   sync.Mutex
	hsDone atomic.Bool
	hsErr  error // sticky, under hsMu

	rmu sync.Mutex // one Read at a time: rd is its state

	wmu     sync.Mutex // one Write, CloseWrite or close_notify at a time
	werr    error      // sticky write error, under wmu
	wclosed bool       // close_notify sent, under wmu

	closed atomic.Bool

	hs, rd, wr, cl step
}

// step is the state of one operation retried across readiness waits. Its
// callbacks are made once, so that waiting allocates nothing.
type step struct {
	c        *sockConn
	op       C.int
	buf      []byte
	r        C.sslsess_io // the last try; r.st is how it ended
	stop     func() bool  // a read stops waiting when this says so (AwaitSession)
	readable func(uintptr) bool
	writable func(uintptr) bool
}

// stFreed: the SSL was freed by Close while the step waited.
const stFreed = -1

func (s *step) init(c *sockConn, op C.int) {
	s.c, s.op = c, op
	s.readable = func(uintptr) bool {
		s.try()
		return s.r.st != C.SSLSESS_IO_WANT_READ || (s.stop != nil && s.stop())
	}
	s.writable = func(uintptr) bool {
		s.try()
		return s.r.st != C.SSLSESS_IO_WANT_WRITE
	}
}

// try runs the operation once, under the SSL's lock.
func (s *step) try() {
	ssl := s.c.ssl
	ssl.mu.Lock()
	if ssl.freed.Load() {
		ssl.mu.Unlock()
		s.r.st = stFreed
		return
	}
	var p unsafe.Pointer
	if len(s.buf) > 0 {
		p = unsafe.Pointer(&s.buf[0])
	}
	s.r = C.sslsess_conn_io(s.c.p, s.op, p, C.int(len(s.buf)))
	ssl.mu.Unlock()
}

// newSockConn makes the client or server side of a TLS connection from ctx
// over conn, which must be a *net.TCPConn or a stream *net.UnixConn; ok is
// false for any other net.Conn.
func newSockConn(conn net.Conn, ctx *openssl.Ctx, server bool) (c *sockConn, ok bool, err error) {
	switch t := conn.(type) {
	case *net.TCPConn:
	case *net.UnixConn:
		if t.LocalAddr().Network() != "unix" {
			return nil, false, nil
		}
	default:
		return nil, false, nil
	}
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, true, err
	}
	cp, err := ctxPointer(ctx)
	if err != nil {
		return nil, true, err
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
	runtime.KeepAlive(ctx)
	if cerr != nil {
		return nil, true, cerr
	}
	if p == nil {
		return nil, true, newError("SSL_new", nil, &e)
	}
	s := &SSL{p: p, ctxAddr: ctxID(cp), keep: ctx, owns: true, roleSet: true}
	s.mu = &s.ownMu
	runtime.SetFinalizer(s, (*SSL).Free)
	c = &sockConn{raw: conn, rc: rc, ssl: s, p: p}
	c.hs.init(c, C.SSLSESS_OP_HANDSHAKE)
	c.rd.init(c, C.SSLSESS_OP_READ)
	c.wr.init(c, C.SSLSESS_OP_WRITE)
	c.cl.init(c, C.SSLSESS_OP_SHUTDOWN)
	return c, true, nil
}

// run drives s until OpenSSL is done with it, waiting for readiness in
// between. A non-nil error is the netpoller's: a deadline or a closed
// socket. Otherwise s.r.st says how it ended.
func (c *sockConn) run(s *step) error {
	var err error
	if s.op == C.SSLSESS_OP_WRITE || s.op == C.SSLSESS_OP_SHUTDOWN {
		err = c.rc.Write(s.writable)
	} else {
		err = c.rc.Read(s.readable)
	}
	for err == nil {
		switch s.r.st {
		case C.SSLSESS_IO_WANT_READ:
			if s.op == C.SSLSESS_OP_SHUTDOWN || (s.stop != nil && s.stop()) {
				return nil
			}
			err = c.rc.Read(s.readable)
		case C.SSLSESS_IO_WANT_WRITE:
			err = c.rc.Write(s.writable)
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

// result turns how s ended into an error, nil when it succeeded.
func (c *sockConn) result(s *step, fn string) error {
	switch s.r.st {
	case C.SSLSESS_IO_DONE:
		return nil
	case stFreed:
		return net.ErrClosed
	case C.SSLSESS_IO_CLOSED:
		if s.op == C.SSLSESS_OP_READ {
			return io.EOF
		}
		return &Error{Func: fn, Err: io.EOF, SSLError: int(s.r.e.ssl_error)}
	case C.SSLSESS_IO_EOF:
		if s.op == C.SSLSESS_OP_READ {
			return io.ErrUnexpectedEOF
		}
		return &Error{Func: fn, Err: io.ErrUnexpectedEOF, SSLError: int(s.r.e.ssl_error)}
	case C.SSLSESS_IO_RENEGOTIATION:
		return &Error{Func: fn, Err: ErrRenegotiation}
	}
	if s.r.e.ssl_error == C.SSL_ERROR_SYSCALL && s.r.e.sys_errno != 0 && s.r.e.n == 0 {
		op := "read"
		if s.op == C.SSLSESS_OP_WRITE || s.op == C.SSLSESS_OP_SHUTDOWN {
			op = "write"
		}
		return &net.OpError{Op: op, Net: c.raw.LocalAddr().Network(), Source: c.raw.LocalAddr(), Addr: c.raw.RemoteAddr(),
			Err: os.NewSyscallError(op, syscall.Errno(s.r.e.sys_errno))}
	}
	return newError(fn, nil, &s.r.e)
}

// Handshake runs the TLS handshake if it has not run yet; Read and Write
// call it. Its error is kept: a failed handshake fails every later call.
func (c *sockConn) Handshake() error {
	if c.hsDone.Load() {
		return nil
	}
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.hsDone.Load() {
		return nil
	}
	if c.hsErr != nil {
		return c.hsErr
	}
	err := c.run(&c.hs)
	if err == nil {
		err = c.result(&c.hs, "SSL_do_handshake")
	}
	if err != nil {
		c.hsErr = err
		return err
	}
	if c.ssl.lock() == nil {
		C.sslsess_conn_established(c.p)
		c.ssl.unlock()
	}
	c.hsDone.Store(true)
	return nil
}

// maxIO bounds one SSL_read or SSL_write (their lengths are C ints).
const maxIO = 1 << 30

func (c *sockConn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.read(b, nil)
}

// read reads into b under rmu; with stop it returns (0, nil) when stop
// reports true while no data is there.
func (c *sockConn) read(b []byte, stop func() bool) (int, error) {
	s := &c.rd
	s.buf, s.stop = b[:min(len(b), maxIO)], stop
	err := c.run(s)
	s.buf, s.stop = nil, nil
	if err != nil {
		return 0, err
	}
	if s.r.st == C.SSLSESS_IO_WANT_READ {
		return 0, nil // stopped
	}
	if err := c.result(s, "SSL_read"); err != nil {
		return 0, err
	}
	return int(s.r.n), nil
}

func (c *sockConn) Write(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if c.wclosed {
		return 0, errWriteAfterClose
	}
	s := &c.wr
	n := 0
	for n < len(b) {
		s.buf = b[n:min(len(b), n+maxIO)]
		err := c.run(s)
		s.buf = nil
		if err == nil {
			err = c.result(s, "SSL_write")
		}
		if err != nil {
			// OpenSSL may hold part of a record: the write side cannot
			// go on after a failure, as with crypto/tls.
			c.werr = err
			return n, err
		}
		n += int(s.r.n)
	}
	return n, nil
}

var (
	errWriteAfterClose    = fmt.Errorf("sslsession: write after CloseWrite or Close: %w", net.ErrClosed)
	errCloseWriteTooEarly = errors.New("sslsession: CloseWrite before the handshake completed")
)

// closeNotify sends close_notify once, under wmu.
func (c *sockConn) closeNotify() error {
	if c.wclosed || c.werr != nil {
		return c.werr
	}
	c.wclosed = true
	err := c.run(&c.cl)
	if err == nil {
		err = c.result(&c.cl, "SSL_shutdown")
	}
	return err
}

// closeNotifyBounded is closeNotify for Close, under wmu: one try that
// does not wait, then, only if the socket cannot take the alert, a wait
// bounded by closeNotifyTimeout. Setting a deadline moves a runtime timer
// and can wake the netpoller; almost every close_notify goes out at the
// first try and needs none.
func (c *sockConn) closeNotifyBounded() error {
	s := &c.cl
	if err := c.rc.Control(func(uintptr) { s.try() }); err != nil {
		c.wclosed = true
		return err
	}
	if s.r.st != C.SSLSESS_IO_WANT_WRITE {
		c.wclosed = true
		return c.result(s, "SSL_shutdown")
	}
	_ = c.raw.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
	return c.closeNotify()
}

// CloseWrite sends close_notify; the peer reads io.EOF, and this side can
// still read. The socket itself stays open for reading, as with
// crypto/tls.
func (c *sockConn) CloseWrite() error {
	if !c.hsDone.Load() {
		return errCloseWriteTooEarly
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closeNotify()
}

// closeNotifyTimeout bounds how long Close waits to send close_notify.
const closeNotifyTimeout = 5 * time.Second

// Close sends close_notify when the handshake is done and no Write is
// blocked (a blocked Write is released with an error instead, as with
// crypto/tls), frees the SSL and closes the socket. A connection closed
// this way keeps its session resumable.
func (c *sockConn) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	var alertErr error
	if c.hsDone.Load() && c.wmu.TryLock() {
		if !c.wclosed && c.werr == nil {
			alertErr = c.closeNotifyBounded()
		}
		c.wmu.Unlock()
	}
	c.ssl.Free()
	if err := c.raw.Close(); err != nil {
		return err
	}
	if alertErr != nil {
		return fmt.Errorf("sslsession: close_notify not sent (the connection is closed anyway): %w", alertErr)
	}
	return nil
}

func (c *sockConn) LocalAddr() net.Addr                { return c.raw.LocalAddr() }
func (c *sockConn) RemoteAddr() net.Addr               { return c.raw.RemoteAddr() }
func (c *sockConn) SetDeadline(t time.Time) error      { return c.raw.SetDeadline(t) }
func (c *sockConn) SetReadDeadline(t time.Time) error  { return c.raw.SetReadDeadline(t) }
func (c *sockConn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

func (c *sockConn) VerifyResult() openssl.VerifyResult {
	if c.ssl.lock() != nil {
		return openssl.VerifyResult(C.X509_V_ERR_UNSPECIFIED)
	}
	defer c.ssl.unlock()
	return openssl.VerifyResult(C.sslsess_conn_verify_result(c.p))
}

func (c *sockConn) VerifyHostname(host string) error {
	isIP := C.int(0)
	if net.ParseIP(host) != nil {
		isIP = 1
	}
	cs := C.CString(host)
	defer C.free(unsafe.Pointer(cs))
	if err := c.ssl.lock(); err != nil {
		return err
	}
	rc := C.sslsess_conn_check_host(c.p, cs, isIP)
	c.ssl.unlock()
	switch rc {
	case 1:
		return nil
	case C.SSLSESS_NO_SESSION:
		return fmt.Errorf("%w: the peer sent no certificate", ErrHostname)
	}
	return fmt.Errorf("%w: the certificate is not valid for %q", ErrHostname, host)
}

// KeyUpdate is SSL_key_update(3): new traffic keys for what this side
// sends, announced with the next Write; with requestPeer the peer is asked
// to update its keys too. TLS 1.3 only (OpenSSL 1.1.1+).
func (c *sockConn) KeyUpdate(requestPeer bool) error {
	if err := c.Handshake(); err != nil {
		return err
	}
	if MaxSupportedVersion() < TLS13 {
		return &Error{Func: "SSL_key_update", Err: ErrUnsupported}
	}
	req := C.int(0)
	if requestPeer {
		req = 1
	}
	if err := c.ssl.lock(); err != nil {
		return err
	}
	var e C.sslsess_err
	rc := C.sslsess_conn_key_update(c.p, req, &e)
	c.ssl.unlock()
	if rc != C.SSLSESS_OK {
		return newError("SSL_key_update", nil, &e)
	}
	return nil
}
