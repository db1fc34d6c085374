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
// #cgo nocallback sslsess_borrow
// #cgo nocallback sslsess_get1
// #cgo nocallback sslsess_free
// #cgo nocallback sslsess_check_serial
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
// SSL_get_session(3). A Conn has one (Conn.SSL); make one with FromConn (a
// spacemonkeygo connection) or FromPointer (an SSL* of your own cgo code).
//
// Every call that uses or changes the connection's session takes the
// connection's lock: for a spacemonkeygo Conn it is the Conn's own mutex, the
// one its Read, Write and Handshake hold around their OpenSSL calls, so a
// session can never be freed by a concurrent handshake while it is read.
type SSL struct {
	p       *C.SSL
	ctxAddr uintptr     // ctxID of the SSL_CTX the SSL was made from; owned sessions bind to it
	mu      *sync.Mutex // the connection's lock
	ownMu   sync.Mutex  // used as mu when there is no spacemonkeygo Conn
	conn    *openssl.Conn
	keep    *openssl.Ctx // keeps a socket Conn's context alive
	owns    bool         // SSL_free is ours (a socket Conn's SSL)
	freed   atomic.Bool  // set under mu by Free

	roleSet bool // SSL_is_server tells the role: a socket Conn's SSL

	// The borrowed wrapper of the current session, reused while the session
	// pointer is unchanged, so Session does not allocate.
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
		p:       p,
		ctxAddr: ctxID(C.sslsess_ssl_ctx(p)),
		mu:      (*sync.Mutex)(unsafe.Add(unsafe.Pointer(c), layout.connMutex)),
		conn:    c,
	}
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
	s.ctxAddr = ctxID(C.sslsess_ssl_ctx(s.p))
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

// Session is SSL_get_session(3), which OpenSSL also names
// SSL_get0_session: the session actually used by the connection, borrowed. No reference is taken: the session stays usable
// only while it is the connection's session; after a new handshake,
// SSL_clear or SSL_free its methods return ErrStale instead of reading freed
// memory. Use Owned, or Session1, to keep it. Returns ErrNoSession when the
// connection has none (the man page's NULL).
func (s *SSL) Session() (*Session, error) { return s.borrow() }

func (s *SSL) borrow() (*Session, error) {
	// Under the connection's lock: the session's identity (its serial) is
	// read from the session itself, which a concurrent handshake could
	// free. spacemonkeygo's Conn does not hold the lock while it waits on
	// the network. One C call reads both.
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.unlock()
	got := C.sslsess_borrow(s.p)
	p, serial := got.p, uintptr(got.serial)
	if p == nil {
		return nil, ErrNoSession
	}
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
	return newOwned(p, s.ctxAddr), nil
}

// SetSession is SSL_set_session(3): use sess for the next handshake of this
// client connection, to resume it. sess must belong to this connection's
// SSL_CTX (the man page's one-context rule); otherwise the error wraps
// ErrWrongContext. A session decoded from DER or PEM belongs to no context
// until it is first set; from then on it belongs to that one. OpenSSL takes
// its own reference: sess can be closed right after.
//
// It is refused, with an error wrapping ErrHandshakeStarted, once the
// connection's handshake has begun (until SSL_clear(3)), and with
// ErrServerSide on a server-side SSL: a Conn from Server or a spacemonkeygo
// server connection. (An SSL from FromPointer has no role this package
// knows; a session set on a server's SSL before its handshake is replaced by
// that handshake.) A refused SetSession changes nothing: neither the SSL nor the
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
	if rc := C.sslsess_set_session_check(s.p, s.roleKnownFlag()); rc != C.SSLSESS_OK {
		return statusError("SSL_set_session", rc)
	}
	// Bind first, then set: the one-context rule is decided by one
	// compare-and-swap, so that of two SSLs of different contexts setting
	// one unbound session at once, the loser changes nothing. Under the
	// SSL's lock its context cannot change meanwhile.
	cur := ctxID(C.sslsess_ssl_ctx(s.p))
	if !atomic.CompareAndSwapUintptr(&sess.ctxAddr, 0, cur) && sess.context() != cur {
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

// roleKnownFlag is 1 when SSL_is_server tells the SSL's role (0 when not),
// for the C call: a
// spacemonkeygo Conn is made client or server (SSL_set_connect_state or
// SSL_set_accept_state) from the start, and so is a socket Conn's SSL; an
// SSL from FromPointer has none (a new SSL_new(3) object reports itself a
// server until its role is set). Call with the lock held.
func (s *SSL) roleKnownFlag() C.int {
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

// Free detaches the SSL: sessions borrowed from it report ErrStale from then
// on; owned ones (Session1) live on. A second Free does nothing. The
// connection, or the caller of FromPointer, still owns the SSL* and frees
// it (a socket Conn's Close frees its own with SSL_free(3)).
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
