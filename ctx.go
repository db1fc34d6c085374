package sslsession

// #include <stdlib.h>
// #include "session_cgo.h"
import "C"

import (
	"fmt"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"github.com/spacemonkeygo/openssl"
)

// ctxPointer returns the SSL_CTX* inside a spacemonkeygo context.
func ctxPointer(c *openssl.Ctx) (*C.SSL_CTX, error) {
	if layout.err != nil {
		return nil, layout.err
	}
	if c == nil {
		return nil, ErrNilCtx
	}
	p := *(**C.SSL_CTX)(unsafe.Add(unsafe.Pointer(c), layout.ctxPtr))
	if p == nil {
		return nil, ErrNilCtx
	}
	return p, nil
}

// Ctx is the session side of an SSL_CTX: its session cache and statistics.
// It wraps a spacemonkeygo *openssl.Ctx and keeps it alive.
type Ctx struct {
	oc *openssl.Ctx
	p  *C.SSL_CTX
}

// NewCtx returns the session controls of c.
func NewCtx(c *openssl.Ctx) (*Ctx, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	p, err := ctxPointer(c)
	if err != nil {
		return nil, err
	}
	return &Ctx{oc: c, p: p}, nil
}

// OpenSSL returns the spacemonkeygo context.
func (c *Ctx) OpenSSL() *openssl.Ctx {
	if c == nil {
		return nil
	}
	return c.oc
}

// errNilCtx is what the methods of a nil or zero Ctx return (NewCtx makes
// a usable one); those without an error return zero values.
var errNilCtx = &Error{Func: "SSL_CTX", Err: fmt.Errorf("%w: nil or zero Ctx (use NewCtx)", ErrNilCtx)}

// Pointer returns the SSL_CTX* for your own cgo code (as unsafe.Pointer),
// or nil for a nil or zero Ctx. It stays valid while c, or the
// spacemonkeygo context it wraps, is reachable: keep c alive
// (runtime.KeepAlive) until your C code is done with it.
func (c *Ctx) Pointer() unsafe.Pointer {
	if c.nilCtx() {
		return nil
	}
	return unsafe.Pointer(c.p)
}

func (c *Ctx) nilCtx() bool { return c == nil || c.p == nil }

// CacheMode is a set of SSL_SESS_CACHE_* flags
// (SSL_CTX_set_session_cache_mode(3)).
type CacheMode int

// Cache modes: the SSL_SESS_CACHE_* values, the same on every supported
// OpenSSL (the build fails if a header says otherwise).
const (
	CacheOff              CacheMode = 0x000 // SSL_SESS_CACHE_OFF
	CacheClient           CacheMode = 0x001 // SSL_SESS_CACHE_CLIENT
	CacheServer           CacheMode = 0x002 // SSL_SESS_CACHE_SERVER
	CacheBoth             CacheMode = 0x003 // SSL_SESS_CACHE_BOTH
	CacheNoAutoClear      CacheMode = 0x080 // SSL_SESS_CACHE_NO_AUTO_CLEAR
	CacheNoInternalLookup CacheMode = 0x100 // SSL_SESS_CACHE_NO_INTERNAL_LOOKUP
	CacheNoInternalStore  CacheMode = 0x200 // SSL_SESS_CACHE_NO_INTERNAL_STORE
	CacheNoInternal       CacheMode = 0x300 // SSL_SESS_CACHE_NO_INTERNAL
)

// Compile-time checks that the constants above, written as numbers so
// that go doc shows them, are OpenSSL's: -uint(x) overflows unless x is 0.
const (
	_ = -uint(CacheOff ^ C.SSL_SESS_CACHE_OFF)
	_ = -uint(CacheClient ^ C.SSL_SESS_CACHE_CLIENT)
	_ = -uint(CacheServer ^ C.SSL_SESS_CACHE_SERVER)
	_ = -uint(CacheBoth ^ C.SSL_SESS_CACHE_BOTH)
	_ = -uint(CacheNoAutoClear ^ C.SSL_SESS_CACHE_NO_AUTO_CLEAR)
	_ = -uint(CacheNoInternalLookup ^ C.SSL_SESS_CACHE_NO_INTERNAL_LOOKUP)
	_ = -uint(CacheNoInternalStore ^ C.SSL_SESS_CACHE_NO_INTERNAL_STORE)
	_ = -uint(CacheNoInternal ^ C.SSL_SESS_CACHE_NO_INTERNAL)
	_ = -uint(OptionNoTicket ^ C.SSL_OP_NO_TICKET)
)

// SetCacheMode sets the cache mode and returns the previous one.
func (c *Ctx) SetCacheMode(m CacheMode) CacheMode {
	if c.nilCtx() {
		return 0
	}
	defer runtime.KeepAlive(c)
	return CacheMode(C.sslsess_ctx_set_cache_mode(c.p, C.long(m)))
}

// CacheMode returns the cache mode (SSL_CTX_get_session_cache_mode(3)).
func (c *Ctx) CacheMode() CacheMode {
	if c.nilCtx() {
		return 0
	}
	defer runtime.KeepAlive(c)
	return CacheMode(C.sslsess_ctx_get_cache_mode(c.p))
}

// SetCacheSize bounds the internal cache (SSL_CTX_sess_set_cache_size(3));
// 0 means unbounded. It returns the previous size.
func (c *Ctx) SetCacheSize(n int) int {
	if c.nilCtx() {
		return 0
	}
	defer runtime.KeepAlive(c)
	return int(C.sslsess_ctx_set_cache_size(c.p, C.long(n)))
}

// CacheSize returns the cache bound (SSL_CTX_sess_get_cache_size(3)).
func (c *Ctx) CacheSize() int {
	if c.nilCtx() {
		return 0
	}
	defer runtime.KeepAlive(c)
	return int(C.sslsess_ctx_get_cache_size(c.p))
}

// SetTimeout sets the lifetime of new sessions, in whole seconds
// (SSL_CTX_set_timeout(3)), and returns the previous one.
func (c *Ctx) SetTimeout(d time.Duration) time.Duration {
	if c.nilCtx() {
		return 0
	}
	defer runtime.KeepAlive(c)
	return time.Duration(C.sslsess_ctx_set_timeout(c.p, C.long(d/time.Second))) * time.Second
}

// Timeout returns the lifetime of new sessions (SSL_CTX_get_timeout(3)).
func (c *Ctx) Timeout() time.Duration {
	if c.nilCtx() {
		return 0
	}
	defer runtime.KeepAlive(c)
	return time.Duration(C.sslsess_ctx_get_timeout(c.p)) * time.Second
}

// SetSessionIDContext sets the session ID context
// (SSL_CTX_set_session_id_context(3)): a server only resumes sessions made
// under the same context, so every server of a fleet must set the same one.
func (c *Ctx) SetSessionIDContext(id []byte) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if len(id) == 0 || len(id) > C.SSL_MAX_SID_CTX_LENGTH {
		return fmt.Errorf("%w: session ID context must be 1 to %d bytes", ErrInvalidArgument, C.SSL_MAX_SID_CTX_LENGTH)
	}
	var e C.sslsess_err
	rc := C.sslsess_ctx_set_sid_ctx(c.p, (*C.uchar)(unsafe.Pointer(&id[0])), C.uint(len(id)), &e)
	runtime.KeepAlive(c)
	if rc != C.SSLSESS_OK {
		return newError("SSL_CTX_set_session_id_context", nil, &e)
	}
	return nil
}

// Flush is SSL_CTX_flush_sessions(3): remove from the internal cache every
// session that has timed out at t (created + timeout < t). Sessions still
// used by a connection, or held by an owned Session, stay alive; they are
// only taken out of the cache. The Stats.Timeouts counter does not count
// these removals. Called from inside a session callback it returns an
// error wrapping ErrInCallback instead of deadlocking (see SessionStore).
func (c *Ctx) Flush(t time.Time) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if err := callbackGuard("SSL_CTX_flush_sessions"); err != nil {
		return err
	}
	C.sslsess_ctx_flush(c.p, C.long(t.Unix()))
	runtime.KeepAlive(c)
	return nil
}

// AddSession is SSL_CTX_add_session(3): put sess into the internal cache.
// It reports false when the same session was already there.
func (c *Ctx) AddSession(sess *Session) (bool, error) {
	if c.nilCtx() {
		return false, errNilCtx
	}
	if err := callbackGuard("SSL_CTX_add_session"); err != nil {
		return false, err
	}
	var added bool
	err := sess.do("SSL_CTX_add_session", func(_ *C.SSL, p *C.SSL_SESSION) C.int {
		added = C.sslsess_ctx_add(c.p, p) == 1
		return C.SSLSESS_OK
	})
	runtime.KeepAlive(c)
	return added, err
}

// RemoveSession is SSL_CTX_remove_session(3): take sess out of the internal
// cache and mark it not resumable. It reports whether it was there.
func (c *Ctx) RemoveSession(sess *Session) (bool, error) {
	if c.nilCtx() {
		return false, errNilCtx
	}
	if err := callbackGuard("SSL_CTX_remove_session"); err != nil {
		return false, err
	}
	var removed bool
	err := sess.do("SSL_CTX_remove_session", func(_ *C.SSL, p *C.SSL_SESSION) C.int {
		removed = C.sslsess_ctx_remove(c.p, p) == 1
		return C.SSLSESS_OK
	})
	runtime.KeepAlive(c)
	return removed, err
}

// Option is a set of SSL_OP_* flags (SSL_CTX_set_options(3)).
type Option uint64

// OptionNoTicket is SSL_OP_NO_TICKET: no stateless session tickets (on
// OpenSSL 1.1.1+ TLS 1.3 then uses stateful tickets, kept in the cache).
const OptionNoTicket Option = 0x4000

// Options sets then clears SSL_OP_* options (SSL_CTX_set_options(3)) and
// returns the result; Options(0, 0) reads them. Session-related ones are
// SSL_OP_NO_TICKET (OptionNoTicket); any other SSL_OP_* value may be given
// as Option(value).
func (c *Ctx) Options(set, clear Option) Option {
	if c.nilCtx() {
		return 0
	}
	defer runtime.KeepAlive(c)
	return Option(uint64(C.sslsess_ctx_options(c.p, C.long(set), C.long(clear))))
}

// SetNumTickets sets how many TLS 1.3 session tickets a server sends after
// a full handshake (SSL_CTX_set_num_tickets(3); OpenSSL's default is 2),
// stateless or, with OptionNoTicket, stateful ones. 0 sends none: such a
// server's TLS 1.3 sessions cannot be resumed. A resumption sends one
// ticket whatever n is, unless n is 0. TLS 1.2 is not affected. It fails
// with an error wrapping ErrInvalidArgument for a negative n, and
// ErrUnsupported on OpenSSL 1.0.2, which has no TLS 1.3.
func (c *Ctx) SetNumTickets(n int) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if n < 0 {
		return &Error{Func: "SSL_CTX_set_num_tickets", Err: fmt.Errorf("%w: number of tickets %d is negative", ErrInvalidArgument, n)}
	}
	var e C.sslsess_err
	rc := C.sslsess_ctx_set_num_tickets(c.p, C.size_t(n), &e)
	runtime.KeepAlive(c)
	if rc != C.SSLSESS_OK {
		if e.n > 0 {
			return newError("SSL_CTX_set_num_tickets", nil, &e)
		}
		return &Error{Func: "SSL_CTX_set_num_tickets", Err: fmt.Errorf("%w: TLS 1.3 session tickets need OpenSSL 1.1.1 or later", ErrUnsupported)}
	}
	return nil
}

// SetCipherSuites sets the TLS 1.3 cipher suites, in order of preference,
// as a colon-separated list of their IANA names
// (SSL_CTX_set_ciphersuites(3)), for example "TLS_AES_128_GCM_SHA256".
// OpenSSL's default puts TLS_AES_256_GCM_SHA384 first; Go's crypto/tls
// prefers TLS_AES_128_GCM_SHA256 on machines with AES instructions. TLS 1.2
// and earlier are set with spacemonkeygo's Ctx.SetCipherList. It fails
// with an error wrapping ErrInvalidArgument when list is empty or OpenSSL
// refuses it, and the context keeps its suites: 1.1.1 refuses a list with
// any name it does not know, 3.x only one with no name it knows (it skips
// the others). It fails with ErrUnsupported on OpenSSL 1.0.2, which has no
// TLS 1.3.
func (c *Ctx) SetCipherSuites(list string) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if list == "" || strings.IndexByte(list, 0) >= 0 {
		return &Error{Func: "SSL_CTX_set_ciphersuites", Err: fmt.Errorf("%w: cipher suite list %q", ErrInvalidArgument, list)}
	}
	cs := C.CString(list)
	defer C.free(unsafe.Pointer(cs))
	var e C.sslsess_err
	rc := C.sslsess_ctx_set_ciphersuites(c.p, cs, &e)
	runtime.KeepAlive(c)
	if rc == C.SSLSESS_OK {
		return nil
	}
	if e.n == 0 {
		return &Error{Func: "SSL_CTX_set_ciphersuites", Err: fmt.Errorf("%w: TLS 1.3 cipher suites need OpenSSL 1.1.1 or later", ErrUnsupported)}
	}
	return newError("SSL_CTX_set_ciphersuites", fmt.Errorf("%w: OpenSSL refuses the cipher suites %q", ErrInvalidArgument, list), &e)
}

// NumTickets returns how many TLS 1.3 tickets a server sends after a full
// handshake (SSL_CTX_get_num_tickets(3)): 2 unless SetNumTickets changed
// it, and 0 on OpenSSL 1.0.2 and for a nil or zero Ctx.
func (c *Ctx) NumTickets() int {
	if c.nilCtx() {
		return 0
	}
	defer runtime.KeepAlive(c)
	n := int(C.sslsess_ctx_get_num_tickets(c.p))
	if n < 0 {
		return 0
	}
	return n
}

// Stats are the SSL_CTX_sess_*(3) counters of a context. OpenSSL 1.1.0+
// counts atomically; OpenSSL 1.0.2 increments plain ints without a lock, so
// under concurrent handshakes its counters can fall slightly short.
type Stats struct {
	Number             int64 `json:"number"`              // sessions in the internal cache
	Connect            int64 `json:"connect"`             // client handshakes started
	ConnectGood        int64 `json:"connect_good"`        // client handshakes completed
	ConnectRenegotiate int64 `json:"connect_renegotiate"` // client renegotiations started
	Accept             int64 `json:"accept"`              // server handshakes started
	AcceptGood         int64 `json:"accept_good"`         // server handshakes completed
	AcceptRenegotiate  int64 `json:"accept_renegotiate"`  // server renegotiations started
	Hits               int64 `json:"hits"`                // sessions resumed
	CbHits             int64 `json:"cb_hits"`             // sessions found by the get-session callback
	Misses             int64 `json:"misses"`              // sessions proposed by clients but not found
	Timeouts           int64 `json:"timeouts"`            // sessions proposed but expired
	CacheFull          int64 `json:"cache_full"`          // sessions dropped because the cache was full
}

// cacheStats reads every cache counter in one call.
func (c *Ctx) cacheStats() Stats {
	if c.nilCtx() {
		return Stats{}
	}
	var s C.sslsess_stats
	C.sslsess_ctx_stats(c.p, &s)
	runtime.KeepAlive(c)
	return Stats{
		Number: int64(s.number), Connect: int64(s.connect), ConnectGood: int64(s.connect_good),
		ConnectRenegotiate: int64(s.connect_renegotiate), Accept: int64(s.accept),
		AcceptGood: int64(s.accept_good), AcceptRenegotiate: int64(s.accept_renegotiate),
		Hits: int64(s.hits), CbHits: int64(s.cb_hits), Misses: int64(s.misses),
		Timeouts: int64(s.timeouts), CacheFull: int64(s.cache_full),
	}
}

// SetProtocolRange limits the TLS versions the context speaks, inclusive;
// 0 leaves a side open (SSL_CTX_set_min_proto_version(3); SSL_OP_NO_*
// options on 1.0.2). Each call replaces the range before it, on every
// version: a range narrowed, then widened, speaks the wider one. It fails
// with ErrUnsupported when the library cannot speak min at all, as TLS 1.3
// on OpenSSL 1.0.2.
func (c *Ctx) SetProtocolRange(min, max Version) error {
	if c.nilCtx() {
		return errNilCtx
	}
	var e C.sslsess_err
	rc := C.sslsess_ctx_set_proto_range(c.p, C.int(min), C.int(max), &e)
	runtime.KeepAlive(c)
	if rc != C.SSLSESS_OK {
		return newError("SSL_CTX_set_min_proto_version", fmt.Errorf("%w: protocol range %s..%s", ErrUnsupported, min, max), &e)
	}
	return nil
}

// MaxSupportedVersion is the newest TLS version the linked OpenSSL speaks:
// TLS 1.2 on 1.0.2, TLS 1.3 on 1.1.1 and 3.x.
func MaxSupportedVersion() Version { return Version(C.sslsess_max_supported_proto()) }

// Protocol versions, for SetProtocolRange.
const (
	TLS12 Version = 0x0303
	TLS13 Version = 0x0304
)

// UseSystemRoots makes the context verify peers against the system's
// default CA locations (SSL_CTX_set_default_verify_paths(3)).
func (c *Ctx) UseSystemRoots() error {
	if c.nilCtx() {
		return errNilCtx
	}
	var e C.sslsess_err
	rc := C.sslsess_ctx_default_verify_paths(c.p, &e)
	runtime.KeepAlive(c)
	if rc != C.SSLSESS_OK {
		return newError("SSL_CTX_set_default_verify_paths", nil, &e)
	}
	return nil
}
