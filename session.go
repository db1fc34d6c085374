package sslsession

// #include <stdlib.h>
// #include "session_cgo.h"
import "C"

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// Session is an OpenSSL SSL_SESSION, held in one of two ways:
//
//   - Owned (from SSL.Session1, Session.Owned, ParseDER, ParsePEM): holds one
//     reference. Close gives it back exactly once; a second Close is a
//     no-op; if Close is never called the garbage collector gives it back
//     once the session is unreachable (see Close). Any use after Close
//     returns ErrClosed.
//   - Borrowed (from SSL.Session, SSL_get0_session): holds no reference and
//     keeps its connection alive. It is usable while it is still the
//     connection's session; afterwards every method returns ErrStale.
//     Close does nothing.
//
// Both forms share every method. A Session is safe for concurrent use.
type Session struct {
	// Owned sessions: use counts the calls using p, or is closedState once
	// Close took p. Close waits for running calls, then frees p: a cheaper
	// guard than a mutex (Close is one compare-and-swap), which the
	// Get1Close benchmark showed.
	use atomic.Int32
	p   *C.SSL_SESSION // owned: set before the session is shared; borrowed: the pointer seen
	ssl *SSL           // borrowed: the connection it is borrowed from
	// borrowed: the SSL_SESSION's serial (sslsess_serial), taken with p
	// under the connection's lock: p alone may be the address of another
	// session after OpenSSL freed this one.
	serial  uintptr
	ctxAddr uintptr // owned: the SSL_CTX it belongs to (its C address), 0 while unbound; atomic after creation

	// fwd is set, once, by UnmarshalBinary on a Session the caller
	// allocated (a variable, a struct field, a slice element): the decoded
	// session is a Session of its own, and s forwards every call to it. No
	// cleanup is ever set on the caller's memory, which may be an interior
	// pointer.
	fwd atomic.Pointer[Session]
}

// target is the session s stands for: itself, or the one UnmarshalBinary
// decoded into it.
func (s *Session) target() *Session {
	if f := s.fwd.Load(); f != nil {
		return f
	}
	return s
}

const closedState = -1 << 30

// ctxID names an SSL_CTX by its C address. It is only compared, never
// turned back into a pointer: a session's context is written once before
// the session is shared, then read with atomic loads, so that binding a
// decoded session (a compare-and-swap from 0) is safe.
func ctxID(p *C.SSL_CTX) uintptr { return uintptr(unsafe.Pointer(p)) }

func (s *Session) context() uintptr { return atomic.LoadUintptr(&s.ctxAddr) }

// acquire marks one more call using the owned session's pointer; false
// when the session is closed (or was never opened).
func (s *Session) acquire() bool {
	for {
		v := s.use.Load()
		if v < 0 || s.p == nil {
			return false
		}
		if s.use.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

func (s *Session) release() { s.use.Add(-1) }

// Close gives the owned session's reference back (SSL_SESSION_free(3)). It
// is safe to call twice, and from several goroutines: the reference is given
// back exactly once. Methods called after Close return ErrClosed. For a
// borrowed session Close does nothing: it holds no reference.
//
// Without Close, the garbage collector gives the reference back at the
// first collections after the session became unreachable (a finalizer per
// session, finalizers.go), whatever other sessions are still in use; Close
// gives it back at once and FinalizedSessions counts the ones it missed.
func (s *Session) Close() error {
	if s == nil {
		return nil
	}
	s = s.target()
	if s.ssl != nil {
		return nil
	}
	for {
		v := s.use.Load()
		if v < 0 {
			return nil // closed already
		}
		if v == 0 && s.use.CompareAndSwap(0, closedState) {
			break
		}
		runtime.Gosched() // a call is using the session: let it finish
	}
	if s.p == nil {
		return nil // a zero Session: nothing to give back
	}
	s.closeOwned()
	return nil
}

// Borrowed reports whether the session is borrowed from a connection.
func (s *Session) Borrowed() bool { return s != nil && s.ssl != nil }

// do runs fn on the session pointer while it is sure to be valid: under the
// connection's lock for a borrowed session (and fn's C call checks that the
// pointer is still the connection's session); for an owned one, holding a
// use of its atomic use count, which Close waits to drain. fn gets the SSL*
// to check against, or nil. name is the OpenSSL function a failure is
// reported under.
func (s *Session) do(name string, fn func(ssl *C.SSL, p *C.SSL_SESSION) C.int) error {
	if s == nil {
		return ErrNilSession
	}
	s = s.target()
	if c := s.ssl; c != nil {
		if err := c.lock(); err != nil {
			if err == ErrFreed {
				return ErrStale
			}
			return err
		}
		defer c.unlock()
		// Checked here for every closure, under the lock; the C accessors
		// check again in their own call.
		if rc := C.sslsess_check_serial(c.p, s.p, C.uintptr_t(s.serial)); rc != C.SSLSESS_OK {
			return statusError(name, rc)
		}
		return statusError(name, fn(c.p, s.p))
	}
	if !s.acquire() {
		return ErrClosed
	}
	defer s.release()
	return statusError(name, fn(nil, s.p))
}

// WithPointer runs fn with the session's SSL_SESSION* for your own cgo
// code (pass it on as unsafe.Pointer) and returns fn's error. The pointer is
// valid only while fn runs: an owned session's Close waits for fn; a
// borrowed one is checked to still be its connection's session (else
// ErrStale) and fn runs under the connection's lock, so fn must not call
// methods of the session or of its SSL. fn must neither free the session nor
// keep the pointer: take a reference of your own (SSL_SESSION_up_ref(3)) to
// keep it.
func (s *Session) WithPointer(fn func(p unsafe.Pointer) error) error {
	if fn == nil {
		return &Error{Func: "Session.WithPointer", Err: fmt.Errorf("%w: nil func", ErrInvalidArgument)}
	}
	var ferr error
	err := s.do("SSL_SESSION", func(_ *C.SSL, p *C.SSL_SESSION) C.int {
		ferr = fn(unsafe.Pointer(p))
		return C.SSLSESS_OK
	})
	if err != nil {
		return err
	}
	return ferr
}

// Owned returns an owned session that holds its own reference to the same
// SSL_SESSION (an up-ref), for a borrowed session to outlive its
// connection, or for an owned one to be shared with a separate Close.
func (s *Session) Owned() (*Session, error) {
	if s == nil {
		return nil, ErrNilSession
	}
	s = s.target()
	var ctx uintptr
	var ref *C.SSL_SESSION
	err := s.do("SSL_SESSION_up_ref", func(ssl *C.SSL, p *C.SSL_SESSION) C.int {
		if ssl != nil {
			ctx = s.ssl.ctxAddr
		} else {
			ctx = s.context()
		}
		ref = p
		return C.sslsess_up_ref_checked(ssl, p)
	})
	if err != nil {
		return nil, err
	}
	return newOwned(ref, ctx), nil
}

// Version is a TLS protocol version number as on the wire (0x0303 is TLS 1.2).
type Version uint16

// String names the version as OpenSSL does ("TLSv1.2").
func (v Version) String() string {
	switch v {
	case 0x0300:
		return "SSLv3"
	case 0x0301:
		return "TLSv1"
	case 0x0302:
		return "TLSv1.1"
	case 0x0303:
		return "TLSv1.2"
	case 0x0304:
		return "TLSv1.3"
	case 0xfeff:
		return "DTLSv1"
	case 0xfefd:
		return "DTLSv1.2"
	}
	return fmt.Sprintf("0x%04x", uint16(v))
}

// Info is everything about a session that is safe to show: never the master
// key. It is what String and the command line print; its JSON form is stable.
type Info struct {
	ID                 []byte        `json:"id"`                   // SSL_SESSION_get_id(3); a client's ticket session gets the SHA-256 of its ticket
	IDContext          []byte        `json:"id_context"`           // SSL_SESSION_get0_id_context(3); servers only
	Created            time.Time     `json:"created"`              // SSL_SESSION_get_time(3)
	Timeout            time.Duration `json:"timeout"`              // SSL_SESSION_get_timeout(3)
	Protocol           Version       `json:"protocol"`             // SSL_SESSION_get_protocol_version(3)
	Cipher             string        `json:"cipher"`               // OpenSSL's cipher name
	CipherID           uint32        `json:"cipher_id"`            // 0x0300XXXX, XXXX the IANA cipher suite
	Resumable          bool          `json:"resumable"`            // SSL_SESSION_is_resumable(3); from the session's fields on 1.0.2
	HasTicket          bool          `json:"has_ticket"`           // SSL_SESSION_has_ticket(3)
	TicketLength       int           `json:"ticket_length"`        // bytes of the ticket
	TicketLifetimeHint time.Duration `json:"ticket_lifetime_hint"` // SSL_SESSION_get_ticket_lifetime_hint(3)
	HasPeer            bool          `json:"has_peer_certificate"` // SSL_SESSION_get0_peer(3) != NULL
	// MaxEarlyData is how many bytes of TLS 1.3 early data the session
	// allows (SSL_SESSION_get_max_early_data(3)); 0 when none, and always
	// 0 before OpenSSL 1.1.1 (Session.MaxEarlyData says why).
	MaxEarlyData uint32 `json:"max_early_data,omitempty"`
}

// Expires is when the session times out: Created + Timeout.
func (i Info) Expires() time.Time { return i.Created.Add(i.Timeout) }

// String renders Info on one line.
func (i Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", i.Protocol, orDash(i.Cipher))
	fmt.Fprintf(&b, " id=%s", orDash(hex.EncodeToString(i.ID)))
	fmt.Fprintf(&b, " created=%s timeout=%s", i.Created.UTC().Format(time.RFC3339), i.Timeout)
	fmt.Fprintf(&b, " resumable=%t", i.Resumable)
	if i.HasTicket {
		fmt.Fprintf(&b, " ticket=%dB lifetime_hint=%s", i.TicketLength, i.TicketLifetimeHint)
	} else {
		b.WriteString(" ticket=none")
	}
	fmt.Fprintf(&b, " peer_certificate=%t", i.HasPeer)
	if i.MaxEarlyData > 0 {
		fmt.Fprintf(&b, " max_early_data=%d", i.MaxEarlyData)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Info reads everything showable about the session in one C call.
func (s *Session) Info() (Info, error) {
	var ci C.sslsess_info
	err := s.do("SSL_SESSION_get_id", func(ssl *C.SSL, p *C.SSL_SESSION) C.int { return C.sslsess_info_get(ssl, p, &ci) })
	if err != nil {
		return Info{}, err
	}
	return Info{
		ID:                 C.GoBytes(unsafe.Pointer(&ci.id[0]), C.int(ci.id_len)),
		IDContext:          C.GoBytes(unsafe.Pointer(&ci.sid_ctx[0]), C.int(ci.sid_ctx_len)),
		Created:            clampTime(int64(ci.time)),
		Timeout:            seconds(int64(ci.timeout)),
		Protocol:           Version(ci.protocol),
		Cipher:             C.GoString(&ci.cipher_name[0]),
		CipherID:           uint32(ci.cipher_id),
		Resumable:          ci.resumable == 1,
		HasTicket:          ci.has_ticket == 1,
		TicketLength:       int(ci.ticket_len),
		TicketLifetimeHint: seconds(clampU64(uint64(ci.ticket_lifetime_hint))),
		HasPeer:            ci.has_peer == 1,
		MaxEarlyData:       uint32(ci.max_early_data),
	}, nil
}

// Bounds of Info's times: a session's fields are whatever its DER said.
// Created is clamped to the years 1 to 9999 (what JSON and RFC 3339 can
// hold) and durations to [0, the longest time.Duration], so that a
// hostile or odd session never gives a negative duration or an Info that
// does not marshal.
var (
	minCreated = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxCreated = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

func clampTime(unix int64) time.Time {
	switch {
	case unix < minCreated.Unix():
		return minCreated.Local()
	case unix > maxCreated.Unix():
		return maxCreated.Local()
	}
	return time.Unix(unix, 0)
}

func clampU64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// seconds is n seconds as a Duration, saturated to [0, MaxInt64].
func seconds(n int64) time.Duration {
	switch {
	case n <= 0:
		return 0
	case n > math.MaxInt64/int64(time.Second):
		return math.MaxInt64
	}
	return time.Duration(n) * time.Second
}

// String shows the session's Info, or why it cannot be read. It never shows
// the master key.
func (s *Session) String() string {
	kind := "owned"
	if s.Borrowed() {
		kind = "borrowed"
	}
	info, err := s.Info()
	if err != nil {
		return fmt.Sprintf("Session(%s: %v)", kind, err)
	}
	return fmt.Sprintf("Session(%s: %s)", kind, info)
}

// GoString is String, so that %#v cannot dump internals either.
func (s *Session) GoString() string { return s.String() }

// SetTimeout sets the session's lifetime in whole seconds
// (SSL_SESSION_set_timeout(3)).
func (s *Session) SetTimeout(d time.Duration) error {
	if d < time.Second {
		return fmt.Errorf("%w: timeout %s is under one second", ErrInvalidArgument, d)
	}
	return s.do("SSL_SESSION_set_timeout", func(ssl *C.SSL, p *C.SSL_SESSION) C.int {
		return C.sslsess_set_timeout(ssl, p, C.long(d/time.Second))
	})
}

// SetCreated sets the session's creation time (SSL_SESSION_set_time(3)),
// which with the timeout decides when SSL_CTX_flush_sessions drops it.
func (s *Session) SetCreated(t time.Time) error {
	return s.do("SSL_SESSION_set_time", func(ssl *C.SSL, p *C.SSL_SESSION) C.int {
		return C.sslsess_set_time(ssl, p, C.long(t.Unix()))
	})
}

// PeerCertificate is the peer's certificate stored in the session
// (SSL_SESSION_get0_peer(3)), or nil when there is none (a server's session
// of a client without a certificate).
func (s *Session) PeerCertificate() (*x509.Certificate, error) {
	der, err := s.twoStep("i2d_X509", func(ssl *C.SSL, p *C.SSL_SESSION, buf *C.uchar, n *C.int) C.int {
		return C.sslsess_peer_der(ssl, p, buf, *n, n)
	})
	if err != nil || len(der) == 0 {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// MasterKey returns a copy of the session's master key
// (SSL_SESSION_get_master_key(3)). It is the secret that protects every
// connection resumed from this session: nothing in this package prints,
// logs or marshals it to JSON. Use it only for debugging tools (the
// command's inspect --show-secret).
func (s *Session) MasterKey() ([]byte, error) {
	// A decoded session may carry more than SSL_MAX_MASTER_KEY_LENGTH (48)
	// bytes: OpenSSL 3.x keeps up to 512 (TLS13_MAX_RESUMPTION_PSK_LENGTH).
	// The buffer is larger than any version's, and a key that still does
	// not fit is an error, never zeros.
	var key [1024]byte
	var n C.size_t
	err := s.do("SSL_SESSION_get_master_key", func(ssl *C.SSL, p *C.SSL_SESSION) C.int {
		return C.sslsess_master_key(ssl, p, (*C.uchar)(unsafe.Pointer(&key[0])), C.size_t(len(key)), &n)
	})
	if err != nil {
		return nil, err
	}
	if int(n) > len(key) {
		return nil, &Error{Func: "SSL_SESSION_get_master_key", Err: fmt.Errorf("%w: %d-byte master key", ErrMalformed, int(n))}
	}
	out := make([]byte, int(n))
	copy(out, key[:n])
	clear(key[:])
	return out, nil
}

// twoStep runs a C encoder once for the length and once into a buffer of
// that length, both under the session's lock.
func (s *Session) twoStep(fn string, enc func(ssl *C.SSL, p *C.SSL_SESSION, buf *C.uchar, n *C.int) C.int) ([]byte, error) {
	var out []byte
	err := s.do(fn, func(ssl *C.SSL, p *C.SSL_SESSION) C.int {
		var n C.int
		if rc := enc(ssl, p, nil, &n); rc != C.SSLSESS_OK || n == 0 {
			return rc
		}
		out = make([]byte, int(n))
		return enc(ssl, p, (*C.uchar)(unsafe.Pointer(&out[0])), &n)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MarshalBinary encodes the session as DER (i2d_SSL_SESSION(3)), the form
// `openssl sess_id -inform DER` reads. The DER holds the master key: store
// it as a secret.
func (s *Session) MarshalBinary() ([]byte, error) {
	var der []byte
	var encErr error
	err := s.do("i2d_SSL_SESSION", func(ssl *C.SSL, p *C.SSL_SESSION) C.int {
		der, encErr = encodeDER(ssl, p)
		return C.SSLSESS_OK
	})
	if err == nil {
		err = encErr
	}
	if err != nil {
		return nil, err
	}
	return der, nil
}

// encodeDER is i2d_SSL_SESSION(3): the one encoder, for MarshalBinary and
// the store bridge. With ssl set, p is borrowed from it and is checked to be
// its session still; call it where p cannot be freed meanwhile (Session.do,
// or inside an OpenSSL callback).
func encodeDER(ssl *C.SSL, p *C.SSL_SESSION) ([]byte, error) {
	var e C.sslsess_err
	var n C.int
	rc := C.sslsess_i2d(ssl, p, nil, 0, &n, &e)
	var der []byte
	if rc == C.SSLSESS_OK {
		der = make([]byte, int(n)) // n > 0: the shim fails otherwise
		rc = C.sslsess_i2d(ssl, p, (*C.uchar)(unsafe.Pointer(&der[0])), n, &n, &e)
	}
	switch rc {
	case C.SSLSESS_OK:
		return der, nil
	case C.SSLSESS_FAIL:
		return nil, newError("i2d_SSL_SESSION", nil, &e)
	}
	return nil, statusError("i2d_SSL_SESSION", rc)
}

// PEMType is the PEM block type of an SSL session, as written by
// PEM_write_SSL_SESSION(3) and `openssl sess_id`.
const PEMType = "SSL SESSION PARAMETERS"

// MarshalPEM encodes the session as PEM (-----BEGIN SSL SESSION
// PARAMETERS-----), the format `openssl sess_id` and `openssl s_client
// -sess_in` read.
func (s *Session) MarshalPEM() ([]byte, error) {
	der, err := s.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMType, Bytes: der}), nil
}

// MaxDERSize bounds the DER a session may be decoded from. A session holds at
// most a ticket (under 64 KiB) and a peer certificate; anything larger is
// refused before OpenSSL parses it.
const MaxDERSize = 1 << 20

// ParseDER decodes a session from DER (d2i_SSL_SESSION(3)) into a new owned
// session. The input must be exactly one session: empty, oversized,
// truncated or trailing data is an error wrapping ErrMalformed.
func ParseDER(der []byte) (*Session, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	p, err := decodeDER(der)
	if err != nil {
		return nil, err
	}
	return newOwned(p, 0), nil
}

// decodeDER is d2i_SSL_SESSION(3) under ParseDER's rules (MaxDERSize, the
// 1.0.2 format screen, exactly one session and no trailing bytes): the
// one decoder, for ParseDER and the store bridge. The session returned
// carries one reference for the caller.
func decodeDER(der []byte) (*C.SSL_SESSION, error) {
	switch {
	case len(der) == 0:
		return nil, &Error{Func: "d2i_SSL_SESSION", Err: fmt.Errorf("%w: empty input", ErrMalformed)}
	case len(der) > MaxDERSize:
		return nil, &Error{Func: "d2i_SSL_SESSION", Err: fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrMalformed, len(der), MaxDERSize)}
	}
	if is102 {
		if err := checkFormat(der, knownFields); err != nil {
			return nil, err
		}
	}
	var e C.sslsess_err
	var used C.long
	p := C.sslsess_d2i((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)), &used, &e)
	if p == nil {
		err := newError("d2i_SSL_SESSION", ErrMalformed, &e)
		if errors.Is(checkFormat(der, knownFields), ErrNewerFormat) {
			err.Err = ErrNewerFormat
		}
		return nil, err
	}
	if int(used) != len(der) {
		C.sslsess_free(p)
		return nil, &Error{Func: "d2i_SSL_SESSION", Err: fmt.Errorf("%w: %d trailing bytes after the session", ErrMalformed, len(der)-int(used))}
	}
	return p, nil
}

// checkFormat walks a session's DER as OpenSSL's decoder reads it, field
// by field, knowing fields up to [knownMax]: the format version, a known
// protocol, the cipher (3 bytes for SSLv2 on 1.0.2, 2 otherwise), the
// session ID, the master key (at most 48 bytes on 1.0.2, which would keep
// the first 48 and drop the rest without an error), then optional fields
// in increasing tag order, each of its type. A field past knownMax in an
// otherwise sound TLS session is ErrNewerFormat; anything else out of
// place is ErrMalformed. Bytes after the outer SEQUENCE are left to
// decodeDER.
//
// It has two uses. On 1.0.2 it screens every input before
// d2i_SSL_SESSION: that decoder reuses one buffer from field to field and
// does not free it on most of its error paths (an unknown protocol, a
// cipher of the wrong length, a field that does not parse), so malformed
// bytes would leak memory. (1.1.1 and 3.x decode with templates that free
// what they allocate.) On every version it decides, after the decoder
// failed, whether the session is a newer OpenSSL's or damaged: only a
// session whose every known field is sound is blamed on a newer OpenSSL.
func checkFormat(der []byte, knownMax int) error {
	bad := func(format string, args ...any) error {
		return &Error{Func: "d2i_SSL_SESSION", Err: fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)}
	}
	var outer asn1.RawValue
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		return bad("not one DER element: %v", err)
	}
	if outer.Class != asn1.ClassUniversal || outer.Tag != asn1.TagSequence || !outer.IsCompound {
		return bad("not an ASN.1 SEQUENCE")
	}
	b := outer.Bytes
	next := func() (asn1.RawValue, error) {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err == nil {
			b = rest
		}
		return v, err
	}
	// universal reports whether v is a primitive element of the universal
	// class with the tag (an INTEGER also needs at least one byte).
	universal := func(v asn1.RawValue, tag int) bool {
		return v.Class == asn1.ClassUniversal && v.Tag == tag && !v.IsCompound && (tag != asn1.TagInteger || len(v.Bytes) > 0)
	}
	names := [5]string{"format version", "protocol version", "cipher", "session ID", "master key"}
	var head [5]asn1.RawValue
	for i := range head {
		v, err := next()
		if err != nil {
			return bad("%s: %v", names[i], err)
		}
		tag, kind := asn1.TagOctetString, "OCTET STRING"
		if i < 2 {
			tag, kind = asn1.TagInteger, "INTEGER"
		}
		if !universal(v, tag) {
			return bad("%s is not an %s", names[i], kind)
		}
		head[i] = v
	}
	var proto int
	if _, err := asn1.Unmarshal(head[1].FullBytes, &proto); err != nil {
		return bad("protocol version: %v", err)
	}
	major := proto >> 8
	cipherLen := 2
	switch {
	case proto == 0x0002 && is102: // SSLv2
		cipherLen = 3
	case major == 0x03, major == 0xfe, proto == 0x0100: // SSLv3 to TLS 1.3, DTLS
	default:
		return bad("protocol version %#04x is unknown", proto)
	}
	if len(head[2].Bytes) != cipherLen {
		return bad("%d-byte cipher, want %d", len(head[2].Bytes), cipherLen)
	}
	if n := len(head[4].Bytes); is102 && n > C.SSL_MAX_MASTER_KEY_LENGTH {
		return bad("%d-byte master key (OpenSSL 1.0.2 keeps at most %d)", n, C.SSL_MAX_MASTER_KEY_LENGTH)
	}
	last, newer := -1, 0
	for len(b) > 0 {
		v, err := next()
		if err != nil {
			return bad("field after [%d]: %v", last, err)
		}
		if v.Class != asn1.ClassContextSpecific || v.Tag <= last {
			return bad("field %d/%d out of place after [%d]", v.Class, v.Tag, last)
		}
		last = v.Tag
		if v.Tag == 0 { // key_arg, IMPLICIT OCTET STRING
			if v.IsCompound {
				return bad("field [0] is constructed")
			}
			continue
		}
		// The others are EXPLICIT: one element of the field's type.
		var in asn1.RawValue
		rest, err := asn1.Unmarshal(v.Bytes, &in)
		if !v.IsCompound || err != nil || len(rest) != 0 {
			return bad("field [%d] does not hold exactly one element", v.Tag)
		}
		switch {
		case v.Tag > knownMax:
			if newer == 0 {
				newer = v.Tag
			}
		case v.Tag == 3: // peer certificate
			if in.Class != asn1.ClassUniversal || in.Tag != asn1.TagSequence || !in.IsCompound {
				return bad("field [3] is not a certificate")
			}
		case integerField[v.Tag]:
			if !universal(in, asn1.TagInteger) {
				return bad("field [%d] is not an INTEGER", v.Tag)
			}
		default:
			if !universal(in, asn1.TagOctetString) {
				return bad("field [%d] is not an OCTET STRING", v.Tag)
			}
		}
	}
	if newer != 0 {
		if major != 0x03 {
			return bad("unknown field [%d]", newer)
		}
		return &Error{Func: "d2i_SSL_SESSION", Err: fmt.Errorf("%w: field [%d] is not in OpenSSL %s's format", ErrNewerFormat, newer, RuntimeVersion())}
	}
	return nil
}

// integerField: the session fields that hold an INTEGER (time, timeout,
// verify result, ticket lifetime hint, flags, ticket age add, max early
// data, max fragment length mode, key exchange group); the others hold an
// OCTET STRING, and [3] a certificate.
var integerField = map[int]bool{1: true, 2: true, 5: true, 9: true, 13: true, 14: true, 15: true, 17: true, 19: true}

// knownFields is the highest session field the running OpenSSL decodes:
// [12] on 1.0.2, [18] (ticket app data) on 1.1.1, [19] (key exchange
// group) on 3.0 and 3.1, [20] (raw public key) from 3.2.
var knownFields = func() int {
	switch v := RuntimeVersion(); {
	case v.Major() == 1 && v.Minor() == 0:
		return 12
	case v.Major() == 1:
		return 18
	case v.Major() == 3 && v.Minor() < 2:
		return 19
	}
	return 20
}()

var is102 = RuntimeVersion().Major() == 1 && RuntimeVersion().Minor() == 0

// ParsePEM decodes the first PEM block of type "SSL SESSION PARAMETERS" (as
// `openssl sess_id` and `openssl s_client -sess_out` write it) into a new
// owned session. Text and blocks of other types before it (a CERTIFICATE,
// as `openssl sess_id -cert` writes) are skipped, as PEM_read_SSL_SESSION
// does.
func ParsePEM(data []byte) (*Session, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	rest := data
	var other string
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == PEMType {
			return ParseDER(block.Bytes)
		}
		if other == "" {
			other = block.Type
		}
		rest = r
	}
	if other != "" {
		return nil, &Error{Func: "PEM_read_SSL_SESSION", Err: fmt.Errorf("%w: PEM block is %q, want %q", ErrMalformed, other, PEMType)}
	}
	return nil, &Error{Func: "PEM_read_SSL_SESSION", Err: fmt.Errorf("%w: no PEM block", ErrMalformed)}
}

// Parse decodes a session from PEM or DER, deciding by structure: DER is
// one ASN.1 SEQUENCE, so input that starts with its tag (0x30) is DER, and
// anything else is read as PEM (whatever text comes before the block).
func Parse(data []byte) (*Session, error) {
	if len(data) > 0 && data[0] == 0x30 {
		return ParseDER(data)
	}
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		return nil, &Error{Func: "d2i_SSL_SESSION", Err: fmt.Errorf("%w: neither DER (an ASN.1 SEQUENCE) nor PEM", ErrMalformed)}
	}
	return ParsePEM(data)
}

// UnmarshalBinary decodes DER into s, which must be a zero Session
// (encoding.BinaryUnmarshaler, so encoding/gob can decode a struct with a
// Session field). s may be a variable, a struct field or a slice element:
// the decoded session is held by the package, and s forwards to it. Close s
// when done, or let the garbage collector give the reference back once s is
// unreachable. A second UnmarshalBinary into the same Session, or one into a
// Session already in use, returns an error wrapping ErrInvalidArgument and
// changes nothing. Prefer ParseDER.
func (s *Session) UnmarshalBinary(der []byte) error {
	if s == nil {
		return ErrNilSession
	}
	if s.use.Load() != 0 || s.p != nil || s.ssl != nil || s.fwd.Load() != nil {
		return &Error{Func: "d2i_SSL_SESSION", Err: fmt.Errorf("%w: UnmarshalBinary needs a zero Session", ErrInvalidArgument)}
	}
	d, err := ParseDER(der)
	if err != nil {
		return err
	}
	if !s.fwd.CompareAndSwap(nil, d) {
		d.Close()
		return &Error{Func: "d2i_SSL_SESSION", Err: fmt.Errorf("%w: UnmarshalBinary needs a zero Session", ErrInvalidArgument)}
	}
	return nil
}
