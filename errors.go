package sslsession

// #include "session_cgo.h"
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// Sentinel errors. Every error the package returns either is one of these or
// wraps one of them (test with errors.Is), so callers can branch on the cause
// without parsing messages. None of them ever carries key material.
var (
	// ErrClosed: the owned session was closed; Close frees it exactly once.
	ErrClosed = errors.New("sslsession: session is closed")
	// ErrStale: a borrowed session (SSL_get_session / SSL_get0_session) is no
	// longer its connection's session: a new handshake replaced it, or
	// SSL_clear or SSL_free ended it. The man page says such a pointer "can
	// become invalid"; the package reports it instead of reading it.
	ErrStale = errors.New("sslsession: borrowed session is no longer the connection's session")
	// ErrNoSession: the connection has no session (the man page's NULL).
	ErrNoSession = errors.New("sslsession: connection has no session")
	// ErrNilSession: a nil *Session was passed.
	ErrNilSession = errors.New("sslsession: nil session")
	// ErrNilSSL: a nil connection was passed or used: a nil *SSL,
	// *openssl.Conn, net.Conn, *Conn or raw SSL pointer, or a
	// DialConfig.WrapConn that returned nil.
	ErrNilSSL = errors.New("sslsession: nil connection")
	// ErrNilCtx: a nil or empty *openssl.Ctx was passed, or a method was
	// called on a nil or zero Ctx (NewCtx makes one).
	ErrNilCtx = errors.New("sslsession: nil context")
	// ErrZeroValue: a method was called on a nil or zero ClientCache or
	// MemoryStore; their New functions make usable ones.
	ErrZeroValue = errors.New("sslsession: nil or zero value (use its New function)")
	// ErrFreed: the SSL object was freed with (*SSL).Free, or an SSL_CTX's
	// session hooks were already released by SSL_CTX_free.
	ErrFreed = errors.New("sslsession: SSL object was freed")
	// ErrWrongContext: SetSession refused a session that belongs to another
	// SSL_CTX. SSL_get_session(3): one SSL_SESSION "must therefore only be
	// used with one SSL_CTX object"; OpenSSL itself does not check this.
	ErrWrongContext = errors.New("sslsession: session belongs to another SSL_CTX")
	// ErrHandshakeStarted: SetSession was called once the connection's
	// handshake had begun. OpenSSL would replace the live connection's
	// session (its peer certificate and verification result with it);
	// CPython refuses the same ("Cannot set session after handshake").
	ErrHandshakeStarted = errors.New("sslsession: cannot set a session after the handshake began")
	// ErrServerSide: SetSession was called on a server-side SSL, where a
	// session is only ever chosen by the handshake (SSL_set_session(3) is
	// for clients).
	ErrServerSide = errors.New("sslsession: cannot set a session on a server-side SSL")
	// ErrMalformed: DER or PEM input is not an SSL session.
	ErrMalformed = errors.New("sslsession: malformed session data")
	// ErrNewerFormat: the input is a session, but written by a newer OpenSSL
	// in a format this one cannot read (1.0.2 reading what 1.1.1 or 3.x
	// wrote, 1.1.1 reading 3.x's): its outer structure, format version and
	// protocol are a session's, and the decoder gave up on a field it does
	// not know. It wraps ErrMalformed. The session store bridge counts such
	// values apart from invalid ones (StoreStats.NewerFormat).
	ErrNewerFormat = fmt.Errorf("sslsession: session written by a newer OpenSSL, in a format this one cannot read: %w", ErrMalformed)
	// ErrInvalidArgument: an argument is out of range or of the wrong
	// kind (a timeout under one second, an empty or too long session ID
	// context, a nil store, UnmarshalBinary on a Session in use). The
	// error's text names the argument.
	ErrInvalidArgument = errors.New("sslsession: invalid argument")
	// ErrNotResumable: no resumable session arrived in time (TLS 1.3 tickets).
	ErrNotResumable = errors.New("sslsession: no resumable session")
	// ErrAwaitBufferFull: AwaitSession kept MaxAwaitBuffer bytes of
	// application data without seeing a session ticket, and stopped
	// reading. Nothing is lost: Read returns the data kept, then the rest.
	ErrAwaitBufferFull = errors.New("sslsession: AwaitSession buffer full")
	// ErrUnsupported: the linked OpenSSL or spacemonkeygo version cannot do this.
	ErrUnsupported = errors.New("sslsession: not supported by this OpenSSL or spacemonkeygo version")
	// ErrRenegotiation: the peer started a TLS 1.2 renegotiation, which
	// connections made by Client, Server and Dial refuse.
	ErrRenegotiation = errors.New("sslsession: renegotiation refused")
	// ErrHostname: the peer's certificate is not valid for the host name.
	ErrHostname = errors.New("sslsession: certificate does not match the host name")
	// ErrHandshake: a TLS handshake failed (Connect, Accept, Dial, a Conn's
	// Handshake); the error's chain holds OpenSSL's reason.
	ErrHandshake = errors.New("sslsession: handshake failed")
	// ErrVerify: the peer's certificate was not trusted, or does not match
	// the host name (Dial; such errors from Dial also wrap ErrHostname).
	ErrVerify = errors.New("sslsession: certificate verification failed")
	// ErrIO: reading, writing, shutting down or dialing failed (network
	// errors, a peer that went away, OpenSSL I/O errors).
	ErrIO = errors.New("sslsession: I/O failed")
	// ErrOpenSSL: any other failed OpenSSL call (SSL_new,
	// SSL_set_tlsext_host_name, ...); Error.Func names it.
	ErrOpenSSL = errors.New("sslsession: OpenSSL call failed")
	// ErrSetup: the process's OpenSSL is not usable safely (version mismatch
	// between headers and library, or missing 1.0.2 thread callbacks).
	ErrSetup = errors.New("sslsession: OpenSSL setup")
)

// Error is a failed OpenSSL call: the function that failed, the sentinel that
// classifies it, and OpenSSL's error queue as it was on the thread that
// failed, drained inside the same C call.
type Error struct {
	Func     string   // the OpenSSL function, e.g. "d2i_SSL_SESSION"
	Err      error    // the sentinel it wraps (ErrMalformed, ErrWrongContext, ...), or nil
	Queue    []string // OpenSSL's error queue, oldest first
	SSLError int      // SSL_get_error(3) result for I/O calls, else 0
	Errno    int      // errno for SSL_ERROR_SYSCALL, else 0
}

// Error names the function, the cause and the OpenSSL error queue.
func (e *Error) Error() string {
	if e == nil {
		return "sslsession: <nil *Error>"
	}
	var b strings.Builder
	b.WriteString("sslsession: ")
	b.WriteString(e.Func)
	b.WriteString(" failed")
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "sslsession: "))
	}
	if e.SSLError != 0 {
		fmt.Fprintf(&b, " (%s)", sslErrorName(e.SSLError))
	}
	if len(e.Queue) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Queue, "; "))
	}
	return b.String()
}

// Unwrap returns the sentinel, so errors.Is(err, ErrMalformed) works. A
// nil *Error unwraps to nothing.
func (e *Error) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

func sslErrorName(n int) string {
	switch n {
	case C.SSL_ERROR_SSL:
		return "SSL_ERROR_SSL"
	case C.SSL_ERROR_WANT_READ:
		return "SSL_ERROR_WANT_READ"
	case C.SSL_ERROR_WANT_WRITE:
		return "SSL_ERROR_WANT_WRITE"
	case C.SSL_ERROR_SYSCALL:
		return "SSL_ERROR_SYSCALL"
	case C.SSL_ERROR_ZERO_RETURN:
		return "SSL_ERROR_ZERO_RETURN"
	}
	return fmt.Sprintf("SSL error %d", n)
}

// newError turns a captured error queue into an *Error.
func newError(fn string, sentinel error, e *C.sslsess_err) *Error {
	if sentinel == nil {
		sentinel = ErrOpenSSL
	}
	out := &Error{Func: fn, Err: sentinel}
	if e == nil {
		return out
	}
	out.SSLError = int(e.ssl_error)
	if out.SSLError == C.SSL_ERROR_SYSCALL {
		out.Errno = int(e.sys_errno)
	}
	var buf [256]C.char
	for i := 0; i < int(e.n); i++ {
		C.sslsess_err_string(e.codes[i], &buf[0], C.size_t(len(buf)))
		out.Queue = append(out.Queue, C.GoString((*C.char)(unsafe.Pointer(&buf[0]))))
	}
	return out
}

// statusError maps a shim status code to an error.
func statusError(fn string, rc C.int) error {
	switch rc {
	case C.SSLSESS_OK:
		return nil
	case C.SSLSESS_STALE:
		return ErrStale
	case C.SSLSESS_NO_SESSION:
		return ErrNoSession
	case C.SSLSESS_WRONG_CTX:
		return &Error{Func: fn, Err: ErrWrongContext}
	case C.SSLSESS_BEGUN:
		return &Error{Func: fn, Err: ErrHandshakeStarted}
	case C.SSLSESS_SERVER_SIDE:
		return &Error{Func: fn, Err: ErrServerSide}
	}
	return &Error{Func: fn, Err: ErrOpenSSL}
}

// VerifyErrorString describes an X509 verification result
// (X509_verify_cert_error_string(3)), e.g. 18: "self signed certificate".
func VerifyErrorString(code int) string {
	return C.GoString(C.sslsess_verify_string(C.long(code)))
}
