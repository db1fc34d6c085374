package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/spf13/cobra"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// connFlags are the flags of every command that connects to a server.
type connFlags struct {
	tls12, tls13 bool
	serverName   string
	caFile       string
	insecure     bool
	timeout      time.Duration
	certFile     string // client certificate, PEM (--cert)
	keyFile      string // its private key, PEM (--key)
	starttls     string // protocol of a STARTTLS exchange before TLS, or ""
}

func (f *connFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.tls12, "tls1.2", false, "speak TLS 1.2 only")
	fl.BoolVar(&f.tls13, "tls1.3", false, "speak TLS 1.3 only (not with OpenSSL 1.0.2)")
	fl.StringVar(&f.serverName, "servername", "", "SNI name to send and check the certificate against (default: the host of host:port)")
	fl.StringVar(&f.caFile, "cafile", "", "PEM file of CA certificates to verify the server with (default: the system's)")
	fl.BoolVar(&f.insecure, "insecure", false, "do not verify the server's certificate")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Second, "limit for each connection's whole exchange: TCP connect, STARTTLS, TLS handshake, reading tickets and closing")
	fl.StringVar(&f.certFile, "cert", "", "client certificate to present, PEM (for servers that require one; with --key)")
	fl.StringVar(&f.keyFile, "key", "", "private key of --cert, PEM (default: read from the --cert file)")
	fl.StringVar(&f.starttls, "starttls", "", "before TLS, ask the server for it in PROTO (smtp, imap or pop3), as openssl s_client -starttls")
	cmd.MarkFlagsMutuallyExclusive("tls1.2", "tls1.3")
	cmd.MarkFlagsMutuallyExclusive("cafile", "insecure")
}

// versions returns the protocol range the flags ask for.
func (f *connFlags) versions() (min, max sslsession.Version, err error) {
	switch {
	case f.tls12:
		return sslsession.TLS12, sslsession.TLS12, nil
	case f.tls13:
		if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
			return 0, 0, failf("TLS 1.3 is not available: OpenSSL %s speaks at most %s",
				sslsession.RuntimeVersion(), sslsession.MaxSupportedVersion())
		}
		return sslsession.TLS13, sslsession.TLS13, nil
	}
	return 0, 0, nil
}

// client connects to one server, again and again, with one configuration.
type client struct {
	addr       string // host:port
	serverName string // SNI and name checked; "" for none
	verify     bool   // check the certificate chain and name
	timeout    time.Duration
	min, max   sslsession.Version
	caFile     string // trust these CAs instead of the system's
	trustPEM   []byte // trust this certificate (the embedded server's)
	cert       *openssl.Certificate
	key        openssl.PrivateKey // with cert: the client certificate, or nil
	starttls   string             // STARTTLS protocol, or ""
}

// newClient checks the flags and makes a client for addr. trustPEM, when not
// nil, is the only certificate trusted (the embedded server's).
func newClient(f *connFlags, addr string, trustPEM []byte) (*client, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return nil, usageError("target %q is not host:port", addr)
	}
	if f.timeout <= 0 {
		return nil, usageError("--timeout must be positive")
	}
	if f.starttls != "" && starttlsProtocols[f.starttls] == nil {
		return nil, usageError("--starttls %q: unknown protocol (one of %s)", f.starttls, starttlsNames())
	}
	min, max, err := f.versions()
	if err != nil {
		return nil, err
	}
	name := f.serverName
	if name == "" {
		name = host
	}
	if f.caFile != "" {
		if _, err := os.Stat(f.caFile); err != nil {
			return nil, fileError(err)
		}
	}
	cl := &client{
		addr: addr, serverName: name, verify: !f.insecure, timeout: f.timeout,
		min: min, max: max, caFile: f.caFile, trustPEM: trustPEM,
		starttls: f.starttls,
	}
	if err := cl.loadClientCert(f.certFile, f.keyFile); err != nil {
		return nil, err
	}
	return cl, nil
}

// loadClientCert reads the client certificate and its key (from certFile
// when keyFile is empty), as openssl s_client -cert/-key does.
func (c *client) loadClientCert(certFile, keyFile string) error {
	if certFile == "" {
		if keyFile != "" {
			return usageError("--key needs --cert")
		}
		return nil
	}
	if keyFile == "" {
		keyFile = certFile
	}
	certPEM, err := readInput(certFile, "certificate file (--cert)")
	if err != nil {
		return err
	}
	keyPEM, err := readInput(keyFile, "key file (--key)")
	if err != nil {
		return err
	}
	cert, err := openssl.LoadCertificateFromPEM(certPEM)
	if err != nil {
		return failf("%s holds no PEM certificate: %s", certFile, opensslReasons(err))
	}
	key, err := openssl.LoadPrivateKeyFromPEM(keyPEM)
	if err != nil {
		return failf("%s holds no PEM private key: %s", keyFile, opensslReasons(err))
	}
	c.cert, c.key = cert, key
	return nil
}

// newCtx makes a client context. Sessions resume only within the context
// that made them, so each series of connections shares one. noTicket makes
// the client refuse tickets (SSL_OP_NO_TICKET): it then sends no ticket
// extension and a TLS 1.2 server falls back to its session-ID cache.
func (c *client) newCtx(noTicket bool) (*openssl.Ctx, error) {
	ctx, sc, err := loopback.NewCtx(c.min, c.max)
	if err != nil {
		return nil, err
	}
	if noTicket {
		sc.Options(sslsession.OptionNoTicket, 0)
	}
	if c.cert != nil {
		if err := ctx.UseCertificate(c.cert); err != nil {
			return nil, failf("cannot use the client certificate: %s", opensslReasons(err))
		}
		if err := ctx.UsePrivateKey(c.key); err != nil {
			return nil, failf("cannot use the client key (does it match --cert?): %s", opensslReasons(err))
		}
	}
	switch {
	case !c.verify:
	case c.trustPEM != nil:
		cert, err := openssl.LoadCertificateFromPEM(c.trustPEM)
		if err != nil {
			return nil, err
		}
		if err := ctx.GetCertificateStore().AddCertificate(cert); err != nil {
			return nil, err
		}
	case c.caFile != "":
		if err := ctx.LoadVerifyLocations(c.caFile, ""); err != nil {
			return nil, failf("cannot load CA file %s: %s", c.caFile, opensslReasons(err))
		}
	default:
		if err := sc.UseSystemRoots(); err != nil {
			return nil, err
		}
	}
	return ctx, nil
}

// tlsConn is one client connection and what was measured on it.
type tlsConn struct {
	*sslsession.Conn
	addr      string
	remote    string // the address actually connected to, IP:port
	rec       *recordConn
	handshake time.Duration // the TLS handshake alone, without the TCP connect
	// ticketsCapped: collectTickets stopped at maxTickets while the server
	// was still sending.
	ticketsCapped bool
}

// maxTickets is the most TLS 1.3 tickets collectTickets counts after one
// handshake. OpenSSL servers send two by default and a server is free to
// send a few more; one that keeps sending (openssl s_server -num_tickets
// 2000000000 does) is reported as flooding instead of being read forever.
const maxTickets = 16

// dial connects through sslsession.Dial, offers sess when it is not nil, and
// reads through a recordConn (see collectTickets). Errors are already one
// line naming the cause.
//
// The client's timeout bounds the connection's whole exchange, from the
// TCP connect to the close: one deadline, set now, that no step moves
// (recordConn clamps every deadline set on the socket to it). A server
// that keeps talking cannot hold the command past it.
func (c *client) dial(ctx *openssl.Ctx, sess *sslsession.Session) (*tlsConn, error) {
	limit := time.Now().Add(c.timeout)
	var rec *recordConn
	var before func(net.Conn) error
	if c.starttls != "" {
		before = func(raw net.Conn) error {
			_ = raw.SetDeadline(limit) // Dial's own is Timeout from its start
			return startTLS(raw, c.starttls, c.addr)
		}
	}
	conn, err := sslsession.Dial("tcp", c.addr, &sslsession.DialConfig{
		Ctx:                ctx,
		Session:            sess,
		ServerName:         c.serverName,
		InsecureSkipVerify: !c.verify,
		Timeout:            c.timeout,
		NetDialer:          &net.Dialer{Timeout: c.timeout, Deadline: limit},
		WrapConn: func(raw net.Conn) net.Conn {
			rec = newRecordConn(raw, limit)
			return rec
		},
		BeforeHandshake: before,
	})
	if err != nil {
		var ce *cliError // the STARTTLS exchange's, already one line
		if errors.As(err, &ce) {
			return nil, ce
		}
		return nil, dialError(c.addr, err)
	}
	return &tlsConn{Conn: conn, addr: c.addr, remote: rec.Conn.RemoteAddr().String(), rec: rec,
		handshake: conn.HandshakeDuration()}, nil
}

// close ends the connection with a close_notify, so that neither side
// drops the session as the man pages say an unclean shutdown does.
func (t *tlsConn) close() { _ = t.Conn.Close() }

// probe is what collectTickets writes to an echo server, the embedded one.
var probe = []byte("sslsession probe\n")

// collectTickets reads after a TLS 1.3 handshake until the server's session
// tickets have arrived, and counts them. OpenSSL sees a ticket only when
// the client reads, and then makes the connection's session a new
// SSL_SESSION holding that ticket, whose session ID is the SHA-256 of the
// ticket: the count is the number of times the session's ID (or ticket)
// changed while reading. The connection hands OpenSSL one TLS record at a
// time (recordConn) and the session is looked at between records, so two
// tickets arriving together count as two. It stops at maxTickets
// (ticketsCapped) and at the connection's deadline.
//
// With echo set the server echoes (the embedded one): a probe is written and
// the wait ends when the echo arrives, which the server sends after its
// tickets. Otherwise the wait ends wait after the handshake if no ticket
// came, or settle after the last ticket.
func (t *tlsConn) collectTickets(echo bool, wait, settle time.Duration) (int, error) {
	ssl := t.SSL()
	key := func() (string, error) {
		s, err := ssl.Session()
		if err != nil {
			return "", err
		}
		i, err := s.Info()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%x/%d/%d", i.ID, i.TicketLength, i.TicketLifetimeHint), nil
	}
	last, err := key()
	if err != nil {
		return 0, err
	}
	count := 0
	check := func() {
		if t.ticketsCapped {
			return
		}
		cur, err := key()
		if err != nil || cur == last {
			return
		}
		last = cur
		count++
		if count >= maxTickets {
			// The read under way returns at once, with the deadline.
			t.ticketsCapped = true
			_ = t.rec.SetReadDeadline(time.Now())
			return
		}
		_ = t.rec.SetReadDeadline(time.Now().Add(settle))
	}
	t.rec.setHook(check)
	defer t.rec.setHook(nil)
	if echo {
		if _, err := t.Write(probe); err != nil {
			return 0, err
		}
	}
	_ = t.rec.SetReadDeadline(time.Now().Add(wait))
	defer func() { _ = t.rec.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, 4096)
	got := 0
	for {
		n, err := t.Conn.Read(buf)
		check()
		got += n
		if t.ticketsCapped {
			return count, nil
		}
		if err != nil {
			// The wait is over (a timeout), or the server closed the
			// connection: the tickets that came before count. An alert
			// (a TLS 1.3 server refusing the client's certificate sends
			// its alert after the client's side of the handshake) is an
			// error.
			if isTimeout(err) || isClosed(err) {
				return count, nil
			}
			return count, afterHandshakeError(t.addr, err)
		}
		if echo && got >= len(probe) {
			return count, nil
		}
	}
}

// recordConn hands what it reads to OpenSSL one TLS record at a time, and
// calls a hook each time OpenSSL asks for more after a whole record: by
// then OpenSSL has processed every record before. spacemonkeygo reads the
// socket only when SSL_read or SSL_do_handshake want more input, outside
// its connection lock, so the hook may call into the connection.
type recordConn struct {
	net.Conn
	br    *bufio.Reader
	left  int       // bytes of the current record not yet handed over
	limit time.Time // no deadline set through it is later

	mu   sync.Mutex
	hook func()
}

// newRecordConn wraps c; limit is the connection's deadline, which it sets
// at once.
func newRecordConn(c net.Conn, limit time.Time) *recordConn {
	r := &recordConn{Conn: c, br: bufio.NewReaderSize(c, 1<<15), limit: limit}
	_ = c.SetDeadline(limit)
	return r
}

// clamp is t, or the connection's limit when t is later or none.
func (r *recordConn) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(r.limit) {
		return r.limit
	}
	return t
}

// SetDeadline and its two halves never go past the connection's limit.
func (r *recordConn) SetDeadline(t time.Time) error { return r.Conn.SetDeadline(r.clamp(t)) }

// SetReadDeadline is clamped to the connection's limit.
func (r *recordConn) SetReadDeadline(t time.Time) error { return r.Conn.SetReadDeadline(r.clamp(t)) }

// SetWriteDeadline is clamped to the connection's limit.
func (r *recordConn) SetWriteDeadline(t time.Time) error { return r.Conn.SetWriteDeadline(r.clamp(t)) }

// closeDrain bounds what Close reads while it waits for the server's close:
// a server that keeps sending tickets never closes.
const closeDrain = 64 << 10

// Close, after spacemonkeygo has sent close_notify, half-closes the socket
// and waits (a second at most, within the connection's limit, and for
// closeDrain bytes at most) for the server to close its side before
// closing. A server answers only once its own side of the handshake is done:
// OpenSSL writes its last flight before it caches the session, so without
// this wait a resumption attempted at once could reach the server before the
// session it offers is in the server's cache.
func (r *recordConn) Close() error {
	if tc, ok := r.Conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = r.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(r.br, closeDrain))
	}
	return r.Conn.Close()
}

func (r *recordConn) setHook(h func()) {
	r.mu.Lock()
	r.hook = h
	r.mu.Unlock()
}

// Read returns at most the rest of the current TLS record.
func (r *recordConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.left == 0 {
		r.mu.Lock()
		h := r.hook
		r.mu.Unlock()
		if h != nil {
			h()
		}
		hdr, err := r.br.Peek(5)
		if err != nil {
			// EOF or a timeout before a whole header: a partial header
			// stays buffered for a later Read.
			return 0, err
		}
		r.left = 5 + int(binary.BigEndian.Uint16(hdr[3:5]))
	}
	if len(p) > r.left {
		p = p[:r.left]
	}
	n, err := r.br.Read(p)
	r.left -= n
	return n, err
}
