// Package rawssl drives an SSL object of its own over a socket descriptor
// with OpenSSL's blocking calls (SSL_connect(3), SSL_accept(3), SSL_read(3),
// ...), so that the man-page checks (internal/reference) and the tests run
// handshakes with no Go connection in between. Its session calls are
// sslsession's own, on the same SSL* through sslsession.FromPointer. It also
// holds the floors of the wrapper benchmarks (the bare C calls), a Watch on
// OpenSSL's real free of a session, and HeapInUse, the C heap in use.
package rawssl

// #cgo pkg-config: libssl libcrypto
// #cgo CFLAGS: -Wno-deprecated-declarations
// #cgo nocallback rawssl_get0
// #cgo nocallback rawssl_get1_free
// #cgo nocallback rawssl_get1
// #cgo nocallback rawssl_session_free
// #include "rawssl.h"
import "C"

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
)

// SSL is an SSL object this package owns: Free, or the garbage collector,
// releases it with SSL_free(3). The embedded *sslsession.SSL makes the
// session calls of SSL_get_session(3) on it; its Free only detaches them
// (borrowed sessions report ErrStale from then on). The calls of this
// package hold the SSL's lock, blocking in OpenSSL on the socket given to
// SetFD; they and the session calls must not run at the same time.
type SSL struct {
	*sslsession.SSL

	mu    sync.Mutex
	p     *C.SSL
	ctx   *sslsession.Ctx // keeps the SSL_CTX alive
	freed bool
}

// New makes an SSL object from ctx (SSL_new(3)).
func New(ctx *openssl.Ctx) (*SSL, error) {
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		return nil, err
	}
	var e C.rawssl_err
	p := C.rawssl_new((*C.SSL_CTX)(sc.Pointer()), &e)
	runtime.KeepAlive(sc)
	if p == nil {
		return nil, newError("SSL_new", sslsession.ErrOpenSSL, &e)
	}
	ss, err := sslsession.FromPointer(unsafe.Pointer(p))
	if err != nil {
		C.rawssl_free(p)
		return nil, err
	}
	s := &SSL{SSL: ss, p: p, ctx: sc}
	runtime.SetFinalizer(s, (*SSL).Free)
	return s, nil
}

// Free detaches the session calls and frees the SSL (SSL_free(3)). Owned
// sessions (Session1) live on. A second Free does nothing.
func (s *SSL) Free() {
	if s == nil || s.SSL == nil {
		return
	}
	s.SSL.Free()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freed {
		return
	}
	s.freed = true
	runtime.SetFinalizer(s, nil)
	C.rawssl_free(s.p)
}

// lock takes the SSL's lock when it is usable.
func (s *SSL) lock() error {
	if s == nil || s.p == nil {
		return sslsession.ErrNilSSL // nil, or a zero SSL
	}
	s.mu.Lock()
	if s.freed {
		s.mu.Unlock()
		return sslsession.ErrFreed
	}
	return nil
}

func (s *SSL) unlock() {
	s.mu.Unlock()
	runtime.KeepAlive(s)
}

// Clear is SSL_clear(3): reset the SSL for a new connection. After a clean
// shutdown the session is kept for the next connection; after an unclean one
// it is removed from the cache and dropped.
func (s *SSL) Clear() error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.unlock()
	var e C.rawssl_err
	if C.rawssl_clear(s.p, &e) != 1 {
		return newError("SSL_clear", sslsession.ErrOpenSSL, &e)
	}
	return nil
}

// SetFD is SSL_set_fd(3): run the SSL over a connected socket descriptor.
func (s *SSL) SetFD(fd int) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.unlock()
	var e C.rawssl_err
	if C.rawssl_set_fd(s.p, C.int(fd), &e) != 1 {
		return newError("SSL_set_fd", sslsession.ErrOpenSSL, &e)
	}
	return nil
}

// Connect is SSL_connect(3): the client handshake.
func (s *SSL) Connect() error { _, err := s.io(C.RAWSSL_CONNECT, nil); return err }

// Accept is SSL_accept(3): the server handshake.
func (s *SSL) Accept() error { _, err := s.io(C.RAWSSL_ACCEPT, nil); return err }

// Shutdown is SSL_shutdown(3): send close_notify. A connection shut down
// this way before Free keeps its session resumable.
func (s *SSL) Shutdown() error { _, err := s.io(C.RAWSSL_SHUTDOWN, nil); return err }

// Read is SSL_read(3).
func (s *SSL) Read(b []byte) (int, error) { return s.io(C.RAWSSL_READ, b) }

// Write is SSL_write(3).
func (s *SSL) Write(b []byte) (int, error) { return s.io(C.RAWSSL_WRITE, b) }

var ioNames = [...]string{"SSL_connect", "SSL_accept", "SSL_shutdown", "SSL_read", "SSL_write"}

func (s *SSL) io(op C.int, b []byte) (int, error) {
	if (op == C.RAWSSL_READ || op == C.RAWSSL_WRITE) && len(b) == 0 {
		return 0, nil
	}
	if err := s.lock(); err != nil {
		return 0, err
	}
	defer s.unlock()
	var buf unsafe.Pointer
	if len(b) > 0 {
		buf = unsafe.Pointer(&b[0])
	}
	var e C.rawssl_err
	rv := C.rawssl_io(s.p, op, buf, C.int(len(b)), &e)
	switch {
	case rv > 0:
		return int(rv), nil
	case rv == 0 && op == C.RAWSSL_SHUTDOWN:
		return 0, nil // close_notify sent, the peer's not yet seen
	}
	class := sslsession.ErrIO
	if op == C.RAWSSL_CONNECT || op == C.RAWSSL_ACCEPT {
		class = sslsession.ErrHandshake
	}
	return 0, newError(ioNames[op], class, &e)
}

// newError turns a captured error queue into an *sslsession.Error.
func newError(fn string, class error, e *C.rawssl_err) error {
	out := &sslsession.Error{Func: fn, Err: class, SSLError: int(e.ssl_error)}
	if out.SSLError == C.SSL_ERROR_SYSCALL {
		out.Errno = int(e.sys_errno)
	}
	var buf [256]C.char
	for _, code := range e.codes[:e.n] {
		C.rawssl_err_string(code, &buf[0], C.size_t(len(buf)))
		out.Queue = append(out.Queue, C.GoString(&buf[0]))
	}
	return out
}

// Get0 is the floor of SSL.Session: SSL_get0_session(3) on p, an SSL*
// (sslsession.SSL.Pointer), and whether it returned a session.
func Get0(p unsafe.Pointer) bool { return C.rawssl_get0((*C.SSL)(p)) != 0 }

// Get1Free is the floor of Session1 and Close: SSL_get1_session(3) on p and
// SSL_SESSION_free(3).
func Get1Free(p unsafe.Pointer) { C.rawssl_get1_free((*C.SSL)(p)) }

// Get1 is SSL_get1_session(3) on p alone: with FreeSession, the two C calls
// Session1 and Close make, one cgo call each.
func Get1(p unsafe.Pointer) unsafe.Pointer { return unsafe.Pointer(C.rawssl_get1((*C.SSL)(p))) }

// FreeSession is SSL_SESSION_free(3).
func FreeSession(s unsafe.Pointer) { C.rawssl_session_free((*C.SSL_SESSION)(s)) }
