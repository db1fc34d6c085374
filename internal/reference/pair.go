package reference

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/rawssl"
)

// failure is how a check stops on an error it cannot go on after; run
// recovers it and reports the check as a mismatch naming the error.
type failure struct{ err error }

// env is what one check runs with: the certificate, and what to release
// when the check ends (sessions, watches, connections), last first.
type env struct {
	opts    Options
	cert    *loopback.Cert
	cleanup []func()
}

func (e *env) must(err error, what string) {
	if err != nil {
		panic(failure{fmt.Errorf("%s: %w", what, err)})
	}
}

func (e *env) fail(format string, a ...any) {
	panic(failure{fmt.Errorf(format, a...)})
}

func (e *env) defer_(f func()) { e.cleanup = append(e.cleanup, f) }

func (e *env) release() {
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		e.cleanup[i]()
	}
	e.cleanup = nil
}

// ctxPair makes a server context configured by cfg and a client context
// trusting it, both pinned to v.
func (e *env) ctxPair(v sslsession.Version, cfg loopback.Config) (server, client *openssl.Ctx) {
	cfg.Min, cfg.Max = v, v
	s, err := loopback.ServerCtx(e.cert, cfg)
	e.must(err, "server context")
	c, err := loopback.ClientCtx(e.cert, v, v)
	e.must(err, "client context")
	return s, c
}

func (e *env) sessCtx(c *openssl.Ctx) *sslsession.Ctx {
	sc, err := sslsession.NewCtx(c)
	e.must(err, "sslsession.NewCtx")
	return sc
}

// owned1 is Session1 of ssl, closed when the check ends.
func (e *env) owned1(ssl *rawssl.SSL, what string) *sslsession.Session {
	s, err := ssl.Session1()
	e.must(err, what+": SSL_get1_session")
	e.defer_(func() { s.Close() })
	return s
}

func (e *env) watch(s *sslsession.Session) *rawssl.Watch {
	w, err := rawssl.WatchSession(s)
	e.must(err, "watch session")
	e.defer_(w.Release)
	return w
}

func (e *env) info(s *sslsession.Session, what string) sslsession.Info {
	i, err := s.Info()
	e.must(err, what)
	return i
}

// pair is a client and a server SSL over a TCP connection on 127.0.0.1,
// driven by OpenSSL's socket BIO.
type pair struct {
	e              *env
	Client, Server *rawssl.SSL
	files          []*os.File
	closed         bool
}

func (e *env) newPair(serverCtx, clientCtx *openssl.Ctx) *pair {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	e.must(err, "listen on 127.0.0.1")
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	e.must(err, "dial")
	sc, err := ln.Accept()
	if err != nil {
		cc.Close()
		e.must(err, "accept")
	}
	p := &pair{e: e}
	e.defer_(p.close)
	fds := [2]int{}
	for i, c := range []net.Conn{cc, sc} {
		f, err := c.(*net.TCPConn).File()
		c.Close()
		e.must(err, "socket descriptor")
		p.files = append(p.files, f)
		fd := int(f.Fd())
		e.must(syscall.SetNonblock(fd, false), "blocking socket")
		// No check can hang in OpenSSL on a silent peer.
		tv := syscall.Timeval{Sec: 10}
		e.must(syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv), "receive timeout")
		fds[i] = fd
	}
	p.Client, err = rawssl.New(clientCtx)
	e.must(err, "client SSL_new")
	p.Server, err = rawssl.New(serverCtx)
	e.must(err, "server SSL_new")
	e.must(p.Client.SetFD(fds[0]), "client SSL_set_fd")
	e.must(p.Server.SetFD(fds[1]), "server SSL_set_fd")
	return p
}

// handshake runs both sides; the server then sends one byte, so that a
// TLS 1.3 client reads the session tickets sent before it.
func (p *pair) handshake() {
	p.connect()
	p.readTickets()
}

// connect runs the handshake alone: a TLS 1.3 client has not read its
// tickets yet.
func (p *pair) connect() {
	errc := make(chan error, 1)
	go func() { errc <- p.Server.Accept() }()
	cerr := p.Client.Connect()
	serr := <-errc
	p.e.must(cerr, "SSL_connect")
	p.e.must(serr, "SSL_accept")
}

func (p *pair) readTickets() {
	errc := make(chan error, 1)
	go func() {
		_, err := p.Server.Write([]byte{'!'})
		errc <- err
	}()
	buf := make([]byte, 1)
	_, rerr := p.Client.Read(buf)
	werr := <-errc
	p.e.must(werr, "SSL_write")
	p.e.must(rerr, "SSL_read")
}

// shutdown sends close_notify both ways: a clean close.
func (p *pair) shutdown() {
	p.e.must(p.Client.Shutdown(), "client SSL_shutdown")
	p.e.must(p.Server.Shutdown(), "server SSL_shutdown")
}

// close frees both SSLs (without SSL_shutdown unless shutdown ran) and
// closes the sockets.
func (p *pair) close() {
	if p.closed {
		return
	}
	p.closed = true
	if p.Client != nil {
		p.Client.Free()
	}
	if p.Server != nil {
		p.Server.Free()
	}
	for _, f := range p.files {
		f.Close()
	}
}

// resumes reports whether a new connection offering s resumes it.
func (e *env) resumes(sctx, cctx *openssl.Ctx, s *sslsession.Session) bool {
	q := e.newPair(sctx, cctx)
	e.must(q.Client.SetSession(s), "SSL_set_session")
	q.handshake()
	c, srv := q.Client.SessionReused(), q.Server.SessionReused()
	if c != srv {
		e.fail("client and server disagree on resumption (client %t, server %t)", c, srv)
	}
	q.shutdown()
	q.close()
	return c
}

func is(err, target error) bool { return errors.Is(err, target) }
