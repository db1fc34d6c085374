package sslsession

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacemonkeygo/openssl"
)

// Conn is a TLS connection with its session calls. It is a net.Conn.
//
// Client, Server and Dial make connections on which OpenSSL reads and
// writes the socket itself (SSL_set_fd(3)), waiting for readiness in Go's
// netpoller: no memory BIOs, no copies, no callback into Go per read or
// write, no OS thread blocked, and the deadlines of net.Conn apply. Read
// and Write may be called concurrently. Renegotiation is refused (the
// error wraps ErrRenegotiation where OpenSSL reports it).
//
// On a net.Conn that is not a socket (not a *net.TCPConn or a stream
// *net.UnixConn), Client and Server make the SSL through spacemonkeygo,
// whose memory BIOs work over any net.Conn; OpenSSL returns that
// connection then. Conn drives both the same way: every method behaves
// alike on both, except where its documentation says otherwise.
type Conn struct {
	t   transport
	raw net.Conn // the net.Conn under TLS: addresses, deadlines
	ssl *SSL     // its lock guards every call on the SSL

	// The handshake runs once, under hsMu, before the first Read or
	// Write; its error is kept.
	hsMu          sync.Mutex
	handshakeDone atomic.Bool
	hsErr         error // under hsMu

	rmu sync.Mutex // one Read at a time: rd is its state

	wmu             sync.Mutex // one Write, CloseWrite or close_notify at a time
	werr            error      // the write error that ended writing, under wmu
	closeNotifySent bool       // under wmu

	closed atomic.Bool

	hs, rd, wr, cl step

	hasPending     atomic.Bool
	pendingMu      sync.Mutex                // guards pending
	pending        []byte                    // application data AwaitSession read
	handshakeNanos atomic.Int64              // the first Handshake call that ran it
	early          atomic.Pointer[earlyConn] // TLS 1.3 early data (earlydata.go), made on first use
}

// newConn makes the connection for conn: OpenSSL on the socket when conn
// is one, else spacemonkeygo's memory BIOs.
func newConn(conn net.Conn, sslCtx *openssl.Ctx, server bool) (*Conn, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	if conn == nil {
		return nil, ErrNilSSL
	}
	if sslCtx == nil {
		return nil, ErrNilCtx
	}
	if _, err := ctxPointer(sslCtx); err != nil {
		return nil, err // an empty openssl.Ctx
	}
	st, ssl, isSocket, err := newSockTransport(conn, sslCtx, server)
	if err != nil {
		return nil, err
	}
	if isSocket {
		return newConnOver(conn, st, ssl), nil
	}
	bt, ssl, err := newBioTransport(conn, sslCtx, server)
	if err != nil {
		return nil, err
	}
	return newConnOver(conn, bt, ssl), nil
}

// Client makes the client side of a TLS connection from sslCtx over a
// connected socket; the Conn owns conn from then on. With a non-nil sess
// the handshake offers it for resumption (SSL_set_session(3)); sess must
// belong to sslCtx (or to no context yet, when it was decoded from DER or
// PEM), else the error wraps ErrWrongContext. The handshake runs on first
// I/O or Handshake. Client neither sends SNI nor checks the host name: Dial
// does both (or SetServerName, VerifyResult and VerifyHostname).
//
// Unlike spacemonkeygo's DialSession, this never passes Go memory holding
// Go pointers to C, and accepts no empty session: it works under the cgo
// pointer checks of current Go.
func Client(conn net.Conn, sslCtx *openssl.Ctx, sess *Session) (*Conn, error) {
	c, err := newConn(conn, sslCtx, false)
	if err != nil {
		return nil, err
	}
	if sess != nil {
		if err := c.ssl.SetSession(sess); err != nil {
			c.ssl.Free()
			return nil, err
		}
	}
	return c, nil
}

// Server makes the server side of a TLS connection from sslCtx over an
// accepted socket; the Conn owns conn from then on.
func Server(conn net.Conn, sslCtx *openssl.Ctx) (*Conn, error) {
	return newConn(conn, sslCtx, true)
}

// SSL returns the connection's session calls (nil for a nil or zero Conn,
// whose session methods then return ErrNilSSL).
func (c *Conn) SSL() *SSL {
	if c == nil {
		return nil
	}
	return c.ssl
}

// zero reports a nil or zero Conn (Client, Server and Dial make usable
// ones).
func (c *Conn) zero() bool { return c == nil || c.ssl == nil || c.t == nil }

// OpenSSL returns spacemonkeygo's connection when Client or Server made
// the SSL through it (conn was not a socket), else nil. Use it for its
// certificate calls; Conn does the I/O itself, over the same SSL and BIOs:
// do not Read, Write, Handshake or Close through it.
func (c *Conn) OpenSSL() *openssl.Conn {
	if c.zero() {
		return nil
	}
	return c.t.spacemonkey()
}

// Handshake runs the TLS handshake if it has not run yet; the first Read or
// Write runs it otherwise. It obeys the connection's deadlines.
func (c *Conn) Handshake() error {
	if c.zero() {
		return ErrNilSSL
	}
	start := time.Now()
	err := c.handshake()
	if err == nil {
		c.handshakeNanos.CompareAndSwap(0, int64(time.Since(start)))
	}
	return err
}

// HandshakeDuration is how long the first successful Handshake call took
// (Dial makes one): the TLS handshake without the TCP connect. It is 0
// before that call; when Read or Write ran the handshake first, that call
// returns at once and its duration says nothing of the handshake.
func (c *Conn) HandshakeDuration() time.Duration {
	if c == nil {
		return 0
	}
	return time.Duration(c.handshakeNanos.Load())
}

// Read reads application data, first any that AwaitSession buffered. It
// returns io.EOF after the peer's close_notify (the connection can still
// write), and an error wrapping io.ErrUnexpectedEOF when the peer closed
// the connection without one: the data may have been cut short.
func (c *Conn) Read(b []byte) (int, error) {
	if c.zero() {
		return 0, ErrNilSSL
	}
	if c.hasPending.Load() {
		c.pendingMu.Lock()
		if len(c.pending) > 0 {
			n := copy(b, c.pending)
			c.pending = c.pending[n:]
			if len(c.pending) == 0 {
				c.pending = nil
				c.hasPending.Store(false)
			}
			c.pendingMu.Unlock()
			return n, nil
		}
		c.pendingMu.Unlock()
	}
	if err := c.handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.read(b, nil)
}

// copyBufs holds the buffers of WriteTo: one TLS record's plaintext, the
// most one OpenSSL read returns.
var copyBufs = sync.Pool{New: func() any { return new([16384]byte) }}

// WriteTo writes what the connection reads to w until the peer closes
// (io.WriterTo), first any data AwaitSession buffered. io.Copy from a Conn
// uses it: one pooled buffer of a TLS record instead of a new 32 KiB one
// per copy. It returns nil at the end of the stream (close_notify), the
// error of the read or of w otherwise, and io.ErrShortWrite when w writes
// less than it was given without an error.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if c.zero() {
		return 0, ErrNilSSL
	}
	buf := copyBufs.Get().(*[16384]byte)
	defer copyBufs.Put(buf)
	var total int64
	for {
		n, rerr := c.Read(buf[:])
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr == nil && m != n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// Write writes application data; it returns an error when not all of b was
// written. After a failed Write the connection cannot write any more: the
// next Write returns the same error.
func (c *Conn) Write(b []byte) (int, error) {
	if c.zero() {
		return 0, ErrNilSSL
	}
	return c.write(b)
}

// Close sends close_notify (when the handshake is done and no Write is
// blocked; a blocked Write is released with an error instead, as with
// crypto/tls), frees the SSL and closes the net.Conn. It waits at most 5
// seconds for the peer to take close_notify. A connection closed this way
// keeps its session resumable (SSL_get_session(3): an unclean shutdown
// removes it from the cache). Borrowed sessions report ErrFreed
// afterwards; owned ones live on. A second Close returns net.ErrClosed,
// and so do Read and Handshake after Close; Write returns an error
// wrapping it.
//
// On spacemonkeygo's connection (see OpenSSL) the SSL is not freed at
// once but by spacemonkeygo's finalizer; the Conn no longer uses it.
func (c *Conn) Close() error {
	if c.zero() {
		return ErrNilSSL
	}
	return c.close()
}

// CloseWrite sends close_notify (SSL_shutdown(3) once): the peer reads
// io.EOF, this side can still read what the peer sends, and Write returns
// an error wrapping net.ErrClosed. The net.Conn itself stays open, as with
// crypto/tls. Before the handshake completed it returns an error and
// sends nothing.
func (c *Conn) CloseWrite() error {
	if c.zero() {
		return ErrNilSSL
	}
	return c.closeWrite()
}

// LocalAddr is the net.Conn's local address.
func (c *Conn) LocalAddr() net.Addr {
	if c.zero() {
		return nil
	}
	return c.raw.LocalAddr()
}

// RemoteAddr is the net.Conn's remote address.
func (c *Conn) RemoteAddr() net.Addr {
	if c.zero() {
		return nil
	}
	return c.raw.RemoteAddr()
}

// SetDeadline sets the read and write deadlines of the net.Conn; they
// apply to the handshake too. A Write that misses its deadline leaves the
// connection unable to write, as with crypto/tls.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.zero() {
		return ErrNilSSL
	}
	return c.raw.SetDeadline(t)
}

// SetReadDeadline sets the read deadline; a Read past it returns an error
// wrapping os.ErrDeadlineExceeded, and a later Read with a new deadline
// goes on reading.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.zero() {
		return ErrNilSSL
	}
	return c.raw.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline; a Write past it returns an
// error wrapping os.ErrDeadlineExceeded, and ends writing (see Write).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.zero() {
		return ErrNilSSL
	}
	return c.raw.SetWriteDeadline(t)
}

// SetServerName sets the SNI host name a client sends
// (SSL_set_tlsext_host_name(3)); call it before the handshake.
func (c *Conn) SetServerName(name string) error { return c.SSL().SetServerName(name) }

// VerifyResult is SSL_get_verify_result(3): the result of the certificate
// verification of the last handshake; for a resumed one, the result stored
// in the session. A nil or zero Conn reports X509_V_ERR_UNSPECIFIED (1),
// never X509_V_OK.
func (c *Conn) VerifyResult() openssl.VerifyResult {
	if c.zero() {
		return verifyUnspecified
	}
	return c.verifyResult()
}

// VerifyHostname checks the peer's certificate against host, a DNS name or
// an IP address (X509_check_host(3), X509_check_ip_asc(3)); the error
// wraps ErrHostname.
func (c *Conn) VerifyHostname(host string) error {
	if c.zero() {
		return ErrNilSSL
	}
	return c.verifyHostname(host)
}

// KeyUpdate is SSL_key_update(3) on a TLS 1.3 connection: new keys for what
// this side sends, announced with the next Write; with requestPeer the peer
// is asked to update its keys too. It runs the handshake first if needed.
// The error wraps ErrUnsupported before OpenSSL 1.1.1; on a TLS 1.2
// connection it is OpenSSL's (an *Error naming SSL_key_update).
func (c *Conn) KeyUpdate(requestPeer bool) error {
	if c.zero() {
		return ErrNilSSL
	}
	return c.keyUpdate(requestPeer)
}

// Session is SSL_get_session(3) on the connection; see SSL.Session.
func (c *Conn) Session() (*Session, error) { return c.SSL().Session() }

// Session1 is SSL_get1_session(3) on the connection; see SSL.Session1.
func (c *Conn) Session1() (*Session, error) { return c.SSL().Session1() }

// SessionReused is SSL_session_reused(3).
func (c *Conn) SessionReused() bool { return c.SSL().SessionReused() }

// AwaitSession returns an owned, resumable session of this client
// connection, waiting up to timeout for one.
//
// With TLS 1.2 the session is resumable as soon as the handshake is done
// and AwaitSession returns at once. With TLS 1.3 the server sends its
// session tickets after the handshake, and OpenSSL only sees them when the
// client reads: until then Session1 returns a session that is not
// resumable. AwaitSession reads from the connection until a ticket has
// arrived. Application data read meanwhile is kept and returned by the next
// Read, so nothing is lost. It uses the read deadline while it waits and
// clears it afterwards; do not call it concurrently with Read.
//
// It returns an error wrapping ErrNotResumable if no ticket arrives in time
// (a server with tickets and its cache off sends none). It keeps at most
// MaxAwaitBuffer bytes of application data: past that it stops reading and
// returns an error wrapping both ErrAwaitBufferFull and ErrNotResumable;
// the data it kept is still returned by Read, and the rest is still
// unread on the connection.
func (c *Conn) AwaitSession(timeout time.Duration) (*Session, error) {
	if c.zero() {
		return nil, ErrNilSSL
	}
	deadline := time.Now().Add(timeout)
	var buf [4096]byte
	for {
		if c.ssl.currentResumable() {
			return c.ssl.Session1()
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%w: no session ticket within %s", ErrNotResumable, timeout)
		}
		c.pendingMu.Lock()
		room := MaxAwaitBuffer - len(c.pending)
		c.pendingMu.Unlock()
		if room <= 0 {
			return nil, fmt.Errorf("%w: %w: %d bytes of application data and no session ticket", ErrNotResumable, ErrAwaitBufferFull, MaxAwaitBuffer)
		}
		n, err := c.awaitRead(buf[:min(len(buf), room)], deadline)
		if n > 0 {
			c.pendingMu.Lock()
			c.pending = append(c.pending, buf[:n]...)
			c.hasPending.Store(true)
			c.pendingMu.Unlock()
		}
		if err != nil {
			if c.ssl.currentResumable() {
				return c.ssl.Session1()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: connection closed before a session ticket arrived", ErrNotResumable)
			}
			return nil, err
		}
	}
}

// awaitRead reads once for AwaitSession: until application data, a
// resumable session, or the deadline. OpenSSL takes a ticket in and
// reports that it wants more input: the read ends there as soon as the
// session is resumable, without waiting for data.
func (c *Conn) awaitRead(buf []byte, deadline time.Time) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	if err := c.raw.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	defer func() { _ = c.raw.SetReadDeadline(time.Time{}) }()
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.read(buf, c.ssl.currentResumable)
}

// MaxAwaitBuffer bounds the application data AwaitSession keeps for Read
// while it waits for a session ticket.
const MaxAwaitBuffer = 1 << 20

// DialConfig configures Dial. The zero value dials with a new context that
// verifies the server against the system's roots.
type DialConfig struct {
	// Ctx is the client context. Sessions resume only within one context:
	// keep using the same Ctx for the connections that share sessions. With
	// a Cache, Ctx must be nil or the cache's context.
	Ctx *openssl.Ctx
	// Session, when set, is offered for resumption (instead of a cached
	// one).
	Session *Session
	// Cache, when set, is consulted as crypto/tls consults
	// Config.ClientSessionCache: the handshake offers the session cached
	// under ClientCacheKey(server name, addr), and the cache keeps what the
	// connection yields (a TLS 1.2 session at once, TLS 1.3 tickets as they
	// arrive). A cached session whose handshake fails is dropped.
	Cache *ClientCache
	// ServerName is sent as SNI and checked against the certificate;
	// by default the host part of the address (SNI is not sent for an IP).
	ServerName string
	// InsecureSkipVerify skips the certificate and host name checks.
	InsecureSkipVerify bool
	// Timeout bounds the TCP connect and the handshake; 0 means none.
	Timeout time.Duration
	// NetDialer makes the TCP connection; by default a net.Dialer whose
	// Timeout is Timeout. Timeout still bounds the handshake.
	NetDialer *net.Dialer
	// WrapConn, when set, is given the connected socket and returns the
	// net.Conn the TLS client runs over (to observe or shape the bytes).
	// Unless it returns the socket itself, the connection runs over
	// spacemonkeygo's memory BIOs (see Conn).
	WrapConn func(net.Conn) net.Conn
	// BeforeHandshake, when set, runs on the connected socket before the
	// TLS client is made over it (and before WrapConn): a plaintext
	// exchange such as STARTTLS (RFC 3207 for SMTP, RFC 2595 for IMAP and
	// POP3). It must not read past the server's last plaintext reply, as
	// the TLS handshake reads on from there. Timeout bounds it too (a
	// deadline on the socket, cleared when it returns). Its error ends
	// Dial: the socket is closed and the error returned wraps it. It does
	// not change the path the connection takes (see Conn).
	BeforeHandshake func(net.Conn) error
	// EarlyData, when set, is sent to the server exactly once: as TLS 1.3
	// early data (0-RTT) with the ClientHello when the session offered
	// allows it (as much as its MaxEarlyData), else after the handshake.
	// Early data the server rejects is sent again after the handshake,
	// unless KeepRejectedEarlyData. Conn.EarlyDataStatus tells what
	// happened. Early data may be replayed by an attacker: send only
	// requests that are safe to repeat (docs/early-data.md). Before
	// OpenSSL 1.1.1, or when WrapConn does not return the socket, Dial
	// fails with an error wrapping ErrUnsupported.
	EarlyData []byte
	// KeepRejectedEarlyData: when the server rejects the early data, Dial
	// does not send it again; the application decides (EarlyDataStatus is
	// EarlyDataRejected) and none of EarlyData was processed.
	KeepRejectedEarlyData bool
}

// verifyUnspecified is X509_V_ERR_UNSPECIFIED, which spacemonkeygo does
// not name.
const verifyUnspecified openssl.VerifyResult = 1

// VerifyError is Dial's error when the server's certificate is not trusted
// or not valid for the server name. It wraps ErrVerify, and ErrHostname
// when the name did not match.
type VerifyError struct {
	Addr string // the address dialed
	// Result is the X509 verification result (X509_V_OK, 0, when only the
	// name did not match); VerifyErrorString describes it.
	Result int
	// Name is the server name the certificate is not valid for, when
	// that was the failure.
	Name string
	// Resumed: the handshake resumed a session, which carries no
	// certificate; what failed is the result and certificate stored in the
	// session by the handshake that made it.
	Resumed bool
	err     error // the host name check's error
}

// Error says which check failed, for which address.
func (e *VerifyError) Error() string {
	how := "handshake"
	if e.Resumed {
		how = "resumed session"
	}
	if e.Name != "" {
		return fmt.Sprintf("sslsession: certificate of %s (%s) is not valid for %q: %v", e.Addr, how, e.Name, e.err)
	}
	return fmt.Sprintf("sslsession: certificate of %s not trusted (%s): %s (X509 error %d)",
		e.Addr, how, VerifyErrorString(e.Result), e.Result)
}

// Unwrap returns ErrVerify and the host name check's error.
func (e *VerifyError) Unwrap() []error {
	if e.err != nil {
		return []error{ErrVerify, e.err}
	}
	return []error{ErrVerify}
}

// Dial connects to addr, performs the TLS handshake, resuming
// cfg.Session or the session cfg.Cache holds for the server if one is
// given, and unless InsecureSkipVerify checks the server's certificate chain
// and host name (the error is then a *VerifyError). Whether the handshake
// resumed is SessionReused; how long it took is HandshakeDuration.
func Dial(network, addr string, cfg *DialConfig) (*Conn, error) {
	if cfg == nil {
		cfg = &DialConfig{}
	}
	name := cfg.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrIO, err)
		}
		name = host
	}
	sslCtx := cfg.Ctx
	cache := cfg.Cache
	if cache != nil {
		if cache.zero() {
			return nil, errNilCache
		}
		if sslCtx != nil && sslCtx != cache.oc {
			return nil, &Error{Func: "Dial", Err: fmt.Errorf("%w: DialConfig.Ctx is not the cache's context", ErrWrongContext)}
		}
		sslCtx = cache.oc
	}
	if sslCtx == nil {
		var err error
		if sslCtx, err = openssl.NewCtx(); err != nil {
			return nil, fmt.Errorf("%w: SSL_CTX_new: %w", ErrOpenSSL, err)
		}
		if !cfg.InsecureSkipVerify {
			roots, err := NewCtx(sslCtx)
			if err != nil {
				return nil, err
			}
			if err := roots.UseSystemRoots(); err != nil {
				return nil, err
			}
		}
	}
	key := ClientCacheKey(name, addr)
	sess := cfg.Session
	var cached *Session
	if sess == nil && cache != nil {
		cached = cache.Get(key)
		sess = cached
	}
	c, err := dial(network, addr, name, sslCtx, sess, cfg)
	if cached != nil {
		cached.Close() // the handshake's SSL holds its own reference
	}
	if err != nil {
		if cached != nil {
			cache.Remove(key)
		}
		return nil, err
	}
	if cache != nil {
		if err := cache.track(c, key); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// dial is Dial once the context and the session to offer are known.
func dial(network, addr, name string, sslCtx *openssl.Ctx, sess *Session, cfg *DialConfig) (*Conn, error) {
	d := cfg.NetDialer
	if d == nil {
		d = &net.Dialer{Timeout: cfg.Timeout}
	}
	raw, err := d.Dial(network, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIO, err)
	}
	if cfg.BeforeHandshake != nil {
		if err := beforeHandshake(raw, cfg); err != nil {
			raw.Close()
			return nil, fmt.Errorf("sslsession: before the handshake with %s: %w", addr, err)
		}
	}
	conn := raw
	if cfg.WrapConn != nil {
		if conn = cfg.WrapConn(raw); conn == nil {
			raw.Close()
			return nil, &Error{Func: "Dial", Err: fmt.Errorf("%w: DialConfig.WrapConn returned nil", ErrNilSSL)}
		}
	}
	c, err := Client(conn, sslCtx, sess)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if net.ParseIP(name) == nil && name != "" {
		if err := c.SetServerName(name); err != nil {
			c.Close()
			return nil, err
		}
	}
	if cfg.Timeout > 0 {
		_ = c.SetDeadline(time.Now().Add(cfg.Timeout))
	}
	if err := c.dialEarly(cfg.EarlyData); err != nil {
		c.Close()
		return nil, fmt.Errorf("sslsession: early data to %s: %w", addr, err)
	}
	if err := c.Handshake(); err != nil {
		c.Close()
		if errors.Is(err, ErrHandshake) {
			return nil, fmt.Errorf("sslsession: handshake with %s: %w", addr, err)
		}
		return nil, fmt.Errorf("sslsession: handshake with %s: %w: %w", addr, ErrHandshake, err)
	}
	_ = c.SetDeadline(time.Time{})
	if !cfg.InsecureSkipVerify {
		if r := c.VerifyResult(); r != openssl.Ok {
			resumed := c.SessionReused()
			c.Close()
			return nil, &VerifyError{Addr: addr, Result: int(r), Resumed: resumed}
		}
		if err := c.VerifyHostname(name); err != nil {
			resumed := c.SessionReused()
			c.Close()
			return nil, &VerifyError{Addr: addr, Name: name, Resumed: resumed, err: err}
		}
	}
	if err := c.dialEarlyDone(cfg.EarlyData, cfg.KeepRejectedEarlyData); err != nil {
		c.Close()
		return nil, fmt.Errorf("sslsession: early data to %s: %w", addr, err)
	}
	return c, nil
}

// beforeHandshake runs cfg.BeforeHandshake on the socket under cfg.Timeout.
func beforeHandshake(raw net.Conn, cfg *DialConfig) error {
	if cfg.Timeout > 0 {
		if err := raw.SetDeadline(time.Now().Add(cfg.Timeout)); err != nil {
			return err
		}
	}
	if err := cfg.BeforeHandshake(raw); err != nil {
		return err
	}
	return raw.SetDeadline(time.Time{})
}
