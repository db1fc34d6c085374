package sslsession

// #include <stdlib.h>
// #include "conn_cgo.h"
//
// /* These never call back into Go. sslsess_conn_io is not listed: a
//    handshake or a read runs verify, SNI and session callbacks that enter
//    Go (and, over spacemonkeygo's memory BIOs, the BIO callbacks), and it
//    is given pointers into the heap, never the stack. */
// #cgo nocallback sslsess_conn_established
// #cgo nocallback sslsess_conn_adopt
// #cgo noescape sslsess_conn_adopt
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
	"syscall"
	"time"
	"unsafe"

	"github.com/spacemonkeygo/openssl"
)

// transport moves a Conn's TLS records between OpenSSL and the net.Conn
// under it, and waits when OpenSSL cannot go on. Two implement it:
// sockTransport (transport_sock.go), where OpenSSL reads and writes the
// socket itself and Go's netpoller waits for readiness, and bioTransport
// (transport_spacemonkey.go), where Go fills and drains spacemonkeygo's
// memory BIOs from and to any net.Conn.
//
// Everything else is Conn's and the same on both: the handshake run once,
// its error and a write error kept, close_notify, key updates, reads that
// stop when a session ticket arrives, the errors of every step.
type transport interface {
	// run tries s until OpenSSL is done with it, waiting in between; a
	// read with s.stop also ends when stop reports true while OpenSSL
	// wants more input. A non-nil error is the net.Conn's (a deadline, a
	// closed connection); otherwise s.r.st says how s ended.
	run(s *step) error
	// closeNotify runs s, the close_notify of Close, waiting at most
	// closeNotifyTimeout for the peer to take it.
	closeNotify(s *step) error
	// close closes the net.Conn.
	close() error
	// spacemonkey is spacemonkeygo's connection, or nil.
	spacemonkey() *openssl.Conn
}

// step is the state of one operation retried across waits. Its callbacks
// are made once, so that waiting allocates nothing.
type step struct {
	c        *Conn
	op       C.int
	buf      []byte
	r        C.sslsess_io // the last try; r.st is how it ended
	stop     func() bool  // a read stops waiting when this says so (AwaitSession)
	readable func(uintptr) bool
	writable func(uintptr) bool
}

// stFreed: the SSL was freed by Close while the step waited.
const stFreed = -1

func (s *step) init(c *Conn, op C.int) {
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
	s.r = C.sslsess_conn_io(ssl.p, s.op, p, C.int(len(s.buf)))
	ssl.mu.Unlock()
}

// wantsWrite: the step writes first (a write, a close_notify).
func (s *step) wantsWrite() bool {
	return s.op == C.SSLSESS_OP_WRITE || s.op == C.SSLSESS_OP_SHUTDOWN || s.op == C.SSLSESS_OP_WRITE_EARLY
}

// newConnOver makes the Conn of ssl, whose bytes t moves over raw.
func newConnOver(raw net.Conn, t transport, ssl *SSL) *Conn {
	c := &Conn{t: t, raw: raw, ssl: ssl}
	c.hs.init(c, C.SSLSESS_OP_HANDSHAKE)
	c.rd.init(c, C.SSLSESS_OP_READ)
	c.wr.init(c, C.SSLSESS_OP_WRITE)
	c.cl.init(c, C.SSLSESS_OP_SHUTDOWN)
	return c
}

// adopt gives an SSL made elsewhere the set-up of sslsess_conn_new:
// renegotiation refused, moving write buffers, read-ahead.
func adopt(s *SSL) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.unlock()
	var e C.sslsess_err
	if C.sslsess_conn_adopt(s.p, &e) != C.SSLSESS_OK {
		return newError("SSL_set_options", nil, &e)
	}
	return nil
}

// result turns how s ended into an error, nil when it succeeded.
func (c *Conn) result(s *step, fn string) error {
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
		if s.wantsWrite() {
			op = "write"
		}
		return &net.OpError{Op: op, Net: c.raw.LocalAddr().Network(), Source: c.raw.LocalAddr(), Addr: c.raw.RemoteAddr(),
			Err: os.NewSyscallError(op, syscall.Errno(s.r.e.sys_errno))}
	}
	return newError(fn, nil, &s.r.e)
}

// handshake runs the TLS handshake if it has not run yet; read and write
// call it. Its error is kept: a failed handshake fails every later call.
func (c *Conn) handshake() error {
	if c.handshakeDone.Load() {
		return nil
	}
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.handshakeDone.Load() {
		return nil
	}
	if c.hsErr != nil {
		return c.hsErr
	}
	err := c.t.run(&c.hs)
	if err == nil {
		err = c.result(&c.hs, "SSL_do_handshake")
	}
	if err != nil {
		c.hsErr = err
		return err
	}
	if c.ssl.lock() == nil {
		C.sslsess_conn_established(c.ssl.p)
		c.ssl.unlock()
	}
	c.handshakeDone.Store(true)
	return nil
}

// maxIO bounds one SSL_read or SSL_write (their lengths are C ints).
const maxIO = 1 << 30

// read reads into b under rmu; with stop it returns (0, nil) when stop
// reports true while no data is there.
func (c *Conn) read(b []byte, stop func() bool) (int, error) {
	s := &c.rd
	s.buf, s.stop = b[:min(len(b), maxIO)], stop
	err := c.t.run(s)
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

func (c *Conn) write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if c.closeNotifySent {
		return 0, errWriteAfterClose
	}
	s := &c.wr
	n := 0
	for n < len(b) {
		s.buf = b[n:min(len(b), n+maxIO)]
		err := c.t.run(s)
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

// sendCloseNotify sends close_notify once, under wmu, waiting as long as
// the write deadline allows.
func (c *Conn) sendCloseNotify() error {
	if c.closeNotifySent || c.werr != nil {
		return c.werr
	}
	c.closeNotifySent = true
	err := c.t.run(&c.cl)
	if err == nil {
		err = c.result(&c.cl, "SSL_shutdown")
	}
	return err
}

func (c *Conn) closeWrite() error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if !c.handshakeDone.Load() {
		return errCloseWriteTooEarly
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendCloseNotify()
}

// closeNotifyTimeout bounds how long Close waits to send close_notify.
const closeNotifyTimeout = 5 * time.Second

func (c *Conn) close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	var alertErr error
	if c.handshakeDone.Load() && c.wmu.TryLock() {
		if !c.closeNotifySent && c.werr == nil {
			c.closeNotifySent = true
			alertErr = c.t.closeNotify(&c.cl)
			if alertErr == nil {
				alertErr = c.result(&c.cl, "SSL_shutdown")
			}
		}
		c.wmu.Unlock()
	}
	c.ssl.Free()
	if err := c.t.close(); err != nil {
		return err
	}
	if alertErr != nil {
		return fmt.Errorf("sslsession: close_notify not sent (the connection is closed anyway): %w", alertErr)
	}
	return nil
}

func (c *Conn) verifyResult() openssl.VerifyResult {
	if c.ssl.lock() != nil {
		return verifyUnspecified
	}
	defer c.ssl.unlock()
	return openssl.VerifyResult(C.sslsess_conn_verify_result(c.ssl.p))
}

func (c *Conn) verifyHostname(host string) error {
	isIP := C.int(0)
	if net.ParseIP(host) != nil {
		isIP = 1
	}
	cs := C.CString(host)
	defer C.free(unsafe.Pointer(cs))
	if err := c.ssl.lock(); err != nil {
		return err
	}
	rc := C.sslsess_conn_check_host(c.ssl.p, cs, isIP)
	c.ssl.unlock()
	switch rc {
	case 1:
		return nil
	case C.SSLSESS_NO_SESSION:
		return fmt.Errorf("%w: the peer sent no certificate", ErrHostname)
	}
	return fmt.Errorf("%w: the certificate is not valid for %q", ErrHostname, host)
}

func (c *Conn) keyUpdate(requestPeer bool) error {
	if err := c.handshake(); err != nil {
		return err
	}
	req := C.int(0)
	if requestPeer {
		req = 1
	}
	if err := c.ssl.lock(); err != nil {
		return err // closed: the same error on every OpenSSL
	}
	if MaxSupportedVersion() < TLS13 {
		c.ssl.unlock()
		return &Error{Func: "SSL_key_update", Err: ErrUnsupported}
	}
	var e C.sslsess_err
	rc := C.sslsess_conn_key_update(c.ssl.p, req, &e)
	c.ssl.unlock()
	if rc != C.SSLSESS_OK {
		return newError("SSL_key_update", nil, &e)
	}
	return nil
}
