package sslsession

// #cgo pkg-config: libssl libcrypto
// #cgo CFLAGS: -Wno-deprecated-declarations
//
// /* These C functions never call back into Go and keep no pointer they
//    are given: the cgo calls skip that bookkeeping, and Go memory passed
//    to them (error and info structs) stays on the stack. SSL_free,
//    SSL_clear, SSL_set_session, I/O and cache calls are not listed: they
//    can run session callbacks that enter Go. */
//
// #cgo nocallback sslsess_get
// #cgo nocallback sslsess_get0
// #cgo nocallback sslsess_get1
// #cgo nocallback sslsess_free
// #cgo nocallback sslsess_get1_free
// #cgo nocallback sslsess_check_serial
// #cgo nocallback sslsess_serial
// #cgo nocallback sslsess_up_ref_checked
// #cgo nocallback sslsess_info_get
// #cgo noescape sslsess_info_get
// #cgo nocallback sslsess_i2d
// #cgo noescape sslsess_i2d
// #cgo nocallback sslsess_d2i
// #cgo noescape sslsess_d2i
// #cgo nocallback sslsess_master_key
// #cgo noescape sslsess_master_key
// #cgo nocallback sslsess_peer_der
// #cgo noescape sslsess_peer_der
// #cgo nocallback sslsess_set_timeout
// #cgo nocallback sslsess_set_time
// #cgo nocallback sslsess_session_reused
// #cgo nocallback sslsess_current_resumable
// #cgo nocallback sslsess_set_session_check
// #include "session_cgo.h"
import "C"

import (
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/spacemonkeygo/openssl"
)

// SSL is one connection's SSL object, for the session calls of
// SSL_get_session(3). Make one with FromConn (a spacemonkeygo connection),
// New (an SSL object this package owns) or FromPointer (an SSL* of your own
// cgo code).
//
// Every call that uses or changes the connection's session takes the
// connection's lock: for a spacemonkeygo Conn it is the Conn's own mutex, the
// one its Read, Write and Handshake hold around their OpenSSL calls, so a
// session can never be freed by a concurrent handshake while it is read.
type SSL struct {
	p     *C.SSL
	ctx   uintptr     // ctxID of the SSL_CTX the SSL was made from; owned sessions bind to it
	mu    *sync.Mutex // the connection's lock
	ownMu sync.Mutex  // used as mu when there is no spacemonkeygo Conn
	conn  *openssl.Conn
	keep  *openssl.Ctx // keeps a New SSL's context alive
	owns  bool         // SSL_free is ours (New)
	freed atomic.Bool  // set under mu by Free

	roleSet bool // SSL_is_server tells the role (under mu): a socket Conn's SSL, or Connect or Accept ran

	// The borrowed wrapper of the current session, reused while the session
	// pointer is unchanged, so Session0 does not allocate.
	borrowed atomic.Pointer[Session]
}

// layout holds the offsets of the spacemonkeygo fields this package needs
// and cannot reach otherwise: Conn.mtx, SSL.ssl and Ctx.ctx. They are found
// by name and type once; if the pinned version ever changes shape, FromConn
// and Ctx report ErrUnsupported instead of guessing.
var layout struct {
	err       error
	connMutex uintptr
	sslPtr    uintptr
	ctxPtr    uintptr
}

func init() {
	field := func(t reflect.Type, name string, want func(reflect.Type) bool) uintptr {
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 || !want(f.Type) {
			if layout.err == nil {
				layout.err = fmt.Errorf("%w: github.com/spacemonkeygo/openssl %s.%s has an unexpected shape", ErrUnsupported, t.Name(), name)
			}
			return 0
		}
		return f.Offset
	}
	cPtr := func(elem string) func(reflect.Type) bool {
		return func(t reflect.Type) bool { return t.Kind() == reflect.Pointer && t.Elem().Name() == elem }
	}
	layout.connMutex = field(reflect.TypeOf((*openssl.Conn)(nil)).Elem(), "mtx",
		func(t reflect.Type) bool { return t == reflect.TypeOf((*sync.Mutex)(nil)).Elem() })
	layout.sslPtr = field(reflect.TypeOf((*openssl.SSL)(nil)).Elem(), "ssl", cPtr("_Ctype_struct_ssl_st"))
	layout.ctxPtr = field(reflect.TypeOf((*openssl.Ctx)(nil)).Elem(), "ctx", cPtr("_Ctype_struct_ssl_ctx_st"))
}

// FromConn returns the SSL object of a spacemonkeygo connection. The *SSL
// keeps the connection alive. Sessions borrowed from it use the Conn's own
// mutex, so they are safe against a concurrent Read, Write or Handshake.
func FromConn(c *openssl.Conn) (*SSL, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	if layout.err != nil {
		return nil, layout.err
	}
	if c == nil || c.SSL == nil {
		return nil, ErrNilSSL
	}
	p := *(**C.SSL)(unsafe.Add(unsafe.Pointer(c.SSL), layout.sslPtr))
	if p == nil {
		return nil, ErrNilSSL
	}
	s := &SSL{
		p:    p,
		ctx:  ctxID(C.sslsess_ssl_ctx(p)),
		mu:   (*sync.Mutex)(unsafe.Add(unsafe.Pointer(c), layout.connMutex)),
		conn: c,
	}
	return s, nil
}

// New makes a new SSL object from ctx (SSL_new(3)) that this package owns:
// Free, or the garbage collector, releases it with SSL_free(3). Drive it
// over a socket with SetFD, Connect or Accept, Read, Write and Shutdown.
func New(ctx *openssl.Ctx) (*SSL, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	cp, err := ctxPointer(ctx)
	if err != nil {
		return nil, err
	}
	var e C.sslsess_err
	p := C.sslsess_ssl_new(cp, &e)
	runtime.KeepAlive(ctx)
	if p == nil {
		return nil, newError("SSL_new", nil, &e)
	}
	s := &SSL{p: p, ctx: ctxID(cp), keep: ctx, owns: true}
	s.mu = &s.ownMu
	runtime.SetFinalizer(s, (*SSL).Free)
	return s, nil
}

// FromPointer wraps an SSL* made by your own cgo code (pass it as
// unsafe.Pointer). The caller keeps ownership: the SSL* must stay valid
// while the *SSL or any session borrowed from it is in use, and must not be
// used concurrently by other code during these calls.
func FromPointer(p unsafe.Pointer) (*SSL, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	if p == nil {
		return nil, ErrNilSSL
	}
	s := &SSL{p: (*C.SSL)(p)}
	s.ctx = ctxID(C.sslsess_ssl_ctx(s.p))
	s.mu = &s.ownMu
	return s, nil
}

// Pointer returns the underlying SSL* for your own cgo code, or nil once the
// SSL was freed.
func (s *SSL) Pointer() unsafe.Pointer {
	if s.lock() != nil {
		return nil
	}
	defer s.unlock()
	return unsafe.Pointer(s.p)
}

// Conn returns the spacemonkeygo connection the SSL came from, or nil.
func (s *SSL) Conn() *openssl.Conn {
	if s == nil {
		return nil
	}
	return s.conn
}

// lock takes the connection's lock and reports whether the SSL is usable.
// It returns with the lock held only when err is nil.
func (s *SSL) lock() error {
	if s == nil || s.p == nil || s.mu == nil {
		return ErrNilSSL // nil, or a zero SSL
	}
	s.mu.Lock()
	if s.freed.Load() {
		s.mu.Unlock()
		return ErrFreed
	}
	return nil
}

func (s *SSL) unlock() {
	s.mu.Unlock()
	runtime.KeepAlive(s)
}

// Session is SSL_get_session(3): the session actually used by the
// connection, borrowed. No reference is taken: the session stays usable
// only while it is the connection's session; after a new handshake,
// SSL_clear or SSL_free its methods return ErrStale instead of reading freed
// memory. Use Owned, or Session1, to keep it. Returns ErrNoSession when the
// connection has none (the man page's NULL).
func (s *SSL) Session() (*Session, error) { return s.borrow(false) }

// Session0 is SSL_get0_session(3), the same as Session.
func (s *SSL) Session0() (*Session, error) { return s.borrow(true) }

func (s *SSL) borrow(zero bool) (*Session, error) {
	if s == nil || s.p == nil || s.mu == nil {
		return nil, ErrNilSSL
	}
	// Under the connection's lock: the session's identity (its serial) is
	// read from the session itself, which a concurrent handshake could
	// free. spacemonkeygo's Conn does not hold the lock while it waits on
	// the network.
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.unlock()
	var p *C.SSL_SESSION
	if zero {
		p = C.sslsess_get0(s.p)
	} else {
		p = C.sslsess_get(s.p)
	}
	if p == nil {
		return nil, ErrNoSession
	}
	serial := uintptr(C.sslsess_serial(p))
	if b := s.borrowed.Load(); b != nil && b.p == p && b.serial == serial {
		return b, nil
	}
	b := &Session{p: p, ssl: s, serial: serial}
	s.borrowed.Store(b)
	return b, nil
}

// Session1 is SSL_get1_session(3): the connection's session with its
// reference count incremented by one. The returned session is owned: it
// outlives the connection until Close gives the reference back (or the
// garbage collector does, if Close is never called). Returns ErrNoSession
// when the connection has none.
//
// TLS 1.3 (OpenSSL 1.1.1+): right after the handshake a client's session is
// not resumable yet; it becomes so when the server's NewSessionTicket is
// read, after the handshake. Check Resumable, or use Conn.AwaitSession.
func (s *SSL) Session1() (*Session, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	p := C.sslsess_get1(s.p)
	s.unlock()
	if p == nil {
		return nil, ErrNoSession
	}
	return newOwned(p, s.ctx), nil
}

// SetSession is SSL_set_session(3): use sess for the next handshake of this
// client connection, to resume it. sess must belong to this connection's
// SSL_CTX (the man page's one-context rule); otherwise the error wraps
// ErrWrongContext. A session decoded from DER or PEM belongs to no context
// until it is first set; from then on it belongs to that one. OpenSSL takes
// its own reference: sess can be closed right after.
//
// It is refused, with an error wrapping ErrHandshakeStarted, once the
// connection's handshake has begun (until Clear), and with ErrServerSide on
// a server-side SSL: a Conn from Server, or an SSL that Accept ran on. (An
// SSL from New or FromPointer has no known role before its first Connect
// or Accept; a session set on it before Accept is replaced by the server
// handshake.) A refused SetSession changes nothing: neither the SSL nor the
// session's context.
func (s *SSL) SetSession(sess *Session) error {
	if sess == nil {
		return ErrNilSession
	}
	sess = sess.target()
	if sess.ssl != nil {
		owned, err := sess.Owned()
		if err != nil {
			return err
		}
		defer owned.Close()
		sess = owned
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.unlock()
	if !sess.acquire() {
		return ErrClosed
	}
	defer sess.release()
	if rc := C.sslsess_set_session_check(s.p, C.int(s.roleKnown())); rc != C.SSLSESS_OK {
		return statusError("SSL_set_session", rc)
	}
	// Bind first, then set: the one-context rule is decided by one
	// compare-and-swap, so that of two SSLs of different contexts setting
	// one unbound session at once, the loser changes nothing. Under the
	// SSL's lock its context cannot change meanwhile.
	cur := ctxID(C.sslsess_ssl_ctx(s.p))
	if !atomic.CompareAndSwapUintptr(&sess.ctx, 0, cur) && sess.context() != cur {
		return &Error{Func: "SSL_set_session", Err: ErrWrongContext}
	}
	var e C.sslsess_err
	switch rc := C.sslsess_set_session(s.p, sess.p, C.uintptr_t(cur), &e); rc {
	case C.SSLSESS_OK:
		return nil
	case C.SSLSESS_FAIL:
		return newError("SSL_set_session", nil, &e)
	default:
		return statusError("SSL_set_session", rc)
	}
}

// roleKnown reports whether SSL_is_server tells the SSL's role: a
// spacemonkeygo Conn is made client or server (SSL_set_connect_state or
// SSL_set_accept_state) from the start; an SSL of New or FromPointer once
// Connect or Accept ran. Call with the lock held.
func (s *SSL) roleKnown() int {
	if s.conn != nil || s.roleSet {
		return 1
	}
	return 0
}

// SessionReused is SSL_session_reused(3): whether the last handshake
// resumed a session.
func (s *SSL) SessionReused() bool {
	if s.lock() != nil {
		return false
	}
	defer s.unlock()
	return C.sslsess_session_reused(s.p) == 1
}

// currentResumable reports whether the connection's session can be resumed.
func (s *SSL) currentResumable() bool {
	if s.lock() != nil {
		return false
	}
	defer s.unlock()
	return C.sslsess_current_resumable(s.p) == 1
}

// Free is SSL_free(3) for an SSL made by New. Sessions borrowed from it
// report ErrStale from then on; owned ones (Session1) live on. A second Free
// does nothing. For SSLs from FromConn or FromPointer, Free only detaches:
// the connection or the caller still owns the SSL*.
func (s *SSL) Free() {
	if s == nil || s.mu == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freed.Load() {
		return
	}
	s.freed.Store(true)
	s.borrowed.Store(nil)
	if s.owns {
		runtime.SetFinalizer(s, nil)
		C.sslsess_ssl_free(s.p)
	}
}

// Clear is SSL_clear(3): reset the SSL for a new connection. After a clean
// shutdown the session is kept for the next connection; after an unclean one
// it is removed from the cache and dropped.
func (s *SSL) Clear() error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.unlock()
	var e C.sslsess_err
	if C.sslsess_ssl_clear(s.p, &e) != C.SSLSESS_OK {
		return newError("SSL_clear", nil, &e)
	}
	return nil
}

// SetFD is SSL_set_fd(3): run the SSL over a connected socket descriptor.
func (s *SSL) SetFD(fd int) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.unlock()
	var e C.sslsess_err
	if C.sslsess_ssl_set_fd(s.p, C.int(fd), &e) != C.SSLSESS_OK {
		return newError("SSL_set_fd", nil, &e)
	}
	return nil
}

// SetServerName sets the SNI host name a client sends
// (SSL_set_tlsext_host_name(3)).
func (s *SSL) SetServerName(name string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.unlock()
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var e C.sslsess_err
	if C.sslsess_ssl_set_host(s.p, cs, &e) != C.SSLSESS_OK {
		return newError("SSL_set_tlsext_host_name", nil, &e)
	}
	return nil
}

// The raw I/O calls below block in OpenSSL on the socket given to SetFD and
// hold the SSL's lock meanwhile.

// Connect is SSL_connect(3): the client handshake.
func (s *SSL) Connect() error { _, err := s.io(opConnect, nil); return err }

// Accept is SSL_accept(3): the server handshake.
func (s *SSL) Accept() error { _, err := s.io(opAccept, nil); return err }

// Shutdown is SSL_shutdown(3): send close_notify. A connection shut down
// this way before Free keeps its session resumable.
func (s *SSL) Shutdown() error { _, err := s.io(opShutdown, nil); return err }

// Read is SSL_read(3).
func (s *SSL) Read(b []byte) (int, error) { return s.io(opRead, b) }

// Write is SSL_write(3).
func (s *SSL) Write(b []byte) (int, error) { return s.io(opWrite, b) }

type ioOp int

const (
	opConnect ioOp = iota
	opAccept
	opShutdown
	opRead
	opWrite
)

var ioNames = [...]string{"SSL_connect", "SSL_accept", "SSL_shutdown", "SSL_read", "SSL_write"}

func (s *SSL) io(op ioOp, b []byte) (int, error) {
	if (op == opRead || op == opWrite) && len(b) == 0 {
		return 0, nil
	}
	if err := s.lock(); err != nil {
		return 0, err
	}
	defer s.unlock()
	var e C.sslsess_err
	var rv C.int
	if op == opConnect || op == opAccept {
		s.roleSet = true
	}
	switch op {
	case opConnect:
		rv = C.sslsess_ssl_connect(s.p, &e)
	case opAccept:
		rv = C.sslsess_ssl_accept(s.p, &e)
	case opShutdown:
		// 0 means close_notify was sent and the peer's is not yet seen.
		if rv = C.sslsess_ssl_shutdown(s.p, &e); rv == 0 {
			return 0, nil
		}
	case opRead:
		rv = C.sslsess_ssl_read(s.p, unsafe.Pointer(&b[0]), C.int(len(b)), &e)
	case opWrite:
		rv = C.sslsess_ssl_write(s.p, unsafe.Pointer(&b[0]), C.int(len(b)), &e)
	}
	if rv > 0 {
		return int(rv), nil
	}
	class := ErrIO
	if op == opConnect || op == opAccept {
		class = ErrHandshake
	}
	return 0, newError(ioNames[op], class, &e)
}

// Version is the connection's negotiated protocol (SSL_version(3)).
func (s *SSL) Version() Version {
	if s.lock() != nil {
		return 0
	}
	defer s.unlock()
	return Version(C.sslsess_ssl_version(s.p))
}

// Cipher is the connection's negotiated cipher name, or "" before the
// handshake (SSL_get_current_cipher(3)).
func (s *SSL) Cipher() string {
	if s.lock() != nil {
		return ""
	}
	defer s.unlock()
	var buf [64]C.char
	if C.sslsess_ssl_cipher(s.p, &buf[0], C.size_t(len(buf))) == 0 {
		return ""
	}
	return C.GoString(&buf[0])
}
