package sslsession

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/spacemonkeygo/openssl"
)

// Conn is a spacemonkeygo TLS connection with its session calls. It embeds
// *openssl.Conn, so it is a net.Conn; its Read also returns application
// data that AwaitSession read while waiting for a session ticket.
type Conn struct {
	*openssl.Conn
	ssl *SSL

	mu      sync.Mutex // guards pending
	pending []byte
}

func wrap(c *openssl.Conn) (*Conn, error) {
	s, err := FromConn(c)
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, ssl: s}, nil
}

// Client wraps a connected socket as the client side of a TLS connection
// made from ctx. With a non-nil sess the handshake offers it for resumption
// (SSL_set_session(3)); sess must belong to ctx (or to no context yet, when
// it was decoded from DER or PEM), else the error wraps ErrWrongContext. The
// handshake runs on first I/O or Handshake. Client neither sends SNI nor
// checks the host name: Dial does both.
//
// Unlike spacemonkeygo's DialSession, this never passes Go memory holding
// Go pointers to C, and accepts no empty session: it works under the cgo
// pointer checks of current Go.
func Client(conn net.Conn, ctx *openssl.Ctx, sess *Session) (*Conn, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	if conn == nil || ctx == nil {
		return nil, ErrNilSSL
	}
	oc, err := openssl.Client(conn, ctx)
	if err != nil {
		return nil, err
	}
	c, err := wrap(oc)
	if err != nil {
		return nil, err
	}
	if sess != nil {
		if err := c.ssl.SetSession(sess); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Server wraps an accepted socket as the server side of a TLS connection.
func Server(conn net.Conn, ctx *openssl.Ctx) (*Conn, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	if conn == nil || ctx == nil {
		return nil, ErrNilSSL
	}
	oc, err := openssl.Server(conn, ctx)
	if err != nil {
		return nil, err
	}
	return wrap(oc)
}

// SSL returns the connection's session calls.
func (c *Conn) SSL() *SSL { return c.ssl }

// Read reads application data, first any that AwaitSession buffered.
func (c *Conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// Session is SSL_get_session(3) on the connection; see SSL.Session.
func (c *Conn) Session() (*Session, error) { return c.ssl.Session() }

// Session1 is SSL_get1_session(3) on the connection; see SSL.Session1.
func (c *Conn) Session1() (*Session, error) { return c.ssl.Session1() }

// SessionReused is SSL_session_reused(3).
func (c *Conn) SessionReused() bool { return c.ssl.SessionReused() }

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
// (a server with tickets and its cache off sends none).
func (c *Conn) AwaitSession(timeout time.Duration) (*Session, error) {
	deadline := time.Now().Add(timeout)
	var buf [4096]byte
	for {
		if c.ssl.currentResumable() {
			return c.ssl.Session1()
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("%w: no session ticket within %s", ErrNotResumable, timeout)
		}
		// spacemonkeygo's Read returns only with application data: a
		// ticket alone is taken in but the read goes on. Read in short
		// slices and look at the session between them.
		slice := time.Now().Add(awaitSlice)
		if slice.After(deadline) {
			slice = deadline
		}
		if err := c.Conn.SetReadDeadline(slice); err != nil {
			return nil, err
		}
		n, err := c.Conn.Read(buf[:])
		_ = c.Conn.SetReadDeadline(time.Time{})
		if n > 0 {
			c.mu.Lock()
			c.pending = append(c.pending, buf[:n]...)
			c.mu.Unlock()
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

// awaitSlice is how long AwaitSession reads before it looks at the session.
const awaitSlice = 10 * time.Millisecond

// DialConfig configures Dial. The zero value dials with a new context that
// verifies the server against the system's roots.
type DialConfig struct {
	// Ctx is the client context. Sessions resume only within one context:
	// keep using the same Ctx for the connections that share sessions.
	Ctx *openssl.Ctx
	// Session, when set, is offered for resumption.
	Session *Session
	// ServerName is sent as SNI and checked against the certificate;
	// by default the host part of the address (SNI is not sent for an IP).
	ServerName string
	// InsecureSkipVerify skips the certificate and host name checks.
	InsecureSkipVerify bool
	// Timeout bounds the TCP connect and the handshake; 0 means none.
	Timeout time.Duration
}

// Dial connects to addr, performs the TLS handshake, resuming
// cfg.Session if one is given, and unless InsecureSkipVerify checks the
// server's certificate chain and host name. Whether the handshake resumed is
// SessionReused.
func Dial(network, addr string, cfg *DialConfig) (*Conn, error) {
	if cfg == nil {
		cfg = &DialConfig{}
	}
	ctx := cfg.Ctx
	if ctx == nil {
		var err error
		if ctx, err = openssl.NewCtx(); err != nil {
			return nil, err
		}
		if !cfg.InsecureSkipVerify {
			sc, err := NewCtx(ctx)
			if err != nil {
				return nil, err
			}
			if err := sc.UseSystemRoots(); err != nil {
				return nil, err
			}
		}
	}
	name := cfg.ServerName
	if name == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		name = host
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	raw, err := d.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	c, err := Client(raw, ctx, cfg.Session)
	if err != nil {
		raw.Close()
		return nil, err
	}
	if net.ParseIP(name) == nil && name != "" {
		if err := c.SetTlsExtHostName(name); err != nil {
			raw.Close()
			return nil, err
		}
	}
	if cfg.Timeout > 0 {
		_ = raw.SetDeadline(time.Now().Add(cfg.Timeout))
	}
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("sslsession: handshake with %s: %w", addr, err)
	}
	_ = raw.SetDeadline(time.Time{})
	if !cfg.InsecureSkipVerify {
		if r := c.VerifyResult(); r != openssl.Ok {
			c.Close()
			how := "handshake"
			if c.SessionReused() {
				// A resumed handshake reports the result stored in the
				// session by the handshake that made it.
				how = "resumed session"
			}
			return nil, fmt.Errorf("sslsession: certificate of %s not trusted (%s): %s (X509 error %d)",
				addr, how, VerifyErrorString(int(r)), int(r))
		}
		if err := c.VerifyHostname(name); err != nil {
			c.Close()
			return nil, fmt.Errorf("sslsession: certificate of %s: %w", addr, err)
		}
	}
	return c, nil
}
