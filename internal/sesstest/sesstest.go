// Package sesstest is the tests' kit, for every package of the module: one
// certificate for the process, the protocol versions of the linked
// OpenSSL, contexts pinned to a version, loopback's echo server ending with
// the test, dials and round trips, a recording store and a store stress,
// real redis-server processes (single, Cluster, Sentinel with a replica),
// and the leak check every TestMain runs (Main).
package sesstest

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

var (
	certOnce sync.Once
	cert     *loopback.Cert
	certErr  error
)

// Cert is the process's self-signed certificate for localhost.
func Cert(t testing.TB) *loopback.Cert {
	t.Helper()
	certOnce.Do(func() { cert, certErr = loopback.SelfSigned() })
	require.NoError(t, certErr)
	return cert
}

// Is102 reports whether the linked OpenSSL is 1.0.2.
func Is102() bool {
	v := sslsession.RuntimeVersion()
	return v.Major() == 1 && v.Minor() == 0
}

// Versions are the protocol versions of the linked OpenSSL: TLS 1.2, and
// TLS 1.3 except on 1.0.2, which the check asserts rather than skips.
func Versions(t testing.TB) []sslsession.Version {
	t.Helper()
	if Is102() {
		require.Equal(t, sslsession.TLS12, sslsession.MaxSupportedVersion(), "OpenSSL 1.0.2 speaks up to TLS 1.2")
		return []sslsession.Version{sslsession.TLS12}
	}
	require.Equal(t, sslsession.TLS13, sslsession.MaxSupportedVersion())
	return []sslsession.Version{sslsession.TLS12, sslsession.TLS13}
}

// Serve runs loopback's echo server with ctx and Cert until the test ends,
// after the test's connections are closed (cleanups run last-in,
// first-out).
func Serve(t testing.TB, ctx *openssl.Ctx) *loopback.Server {
	t.Helper()
	srv, err := loopback.Serve(ctx, Cert(t))
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// ServerCtx makes a server context with Cert, configured by cfg and pinned
// to v.
func ServerCtx(t testing.TB, v sslsession.Version, cfg loopback.Config) *openssl.Ctx {
	t.Helper()
	cfg.Min, cfg.Max = v, v
	c, err := loopback.ServerCtx(Cert(t), cfg)
	require.NoError(t, err)
	return c
}

// ClientCtx makes a client context pinned to v that trusts Cert. It offers
// only P-256, the group 1.0.2's servers are given, so that the key
// exchange is the same on every version; the servers accept it at once,
// with no HelloRetryRequest (after one, OpenSSL would look a TLS 1.3
// ticket up twice, once per ClientHello).
func ClientCtx(t testing.TB, v sslsession.Version) *openssl.Ctx {
	t.Helper()
	c, err := loopback.ClientCtx(Cert(t), v, v)
	require.NoError(t, err)
	require.NoError(t, c.SetEllipticCurve(openssl.Prime256v1))
	return c
}

// CtxPair is ServerCtx and ClientCtx.
func CtxPair(t testing.TB, v sslsession.Version, cfg loopback.Config) (server, client *openssl.Ctx) {
	t.Helper()
	return ServerCtx(t, v, cfg), ClientCtx(t, v)
}

// NewCtx is sslsession.NewCtx, which must succeed.
func NewCtx(t testing.TB, c *openssl.Ctx) *sslsession.Ctx {
	t.Helper()
	sc, err := sslsession.NewCtx(c)
	require.NoError(t, err)
	return sc
}

// Dial dials addr as localhost with ctx, offering sess; the connection is
// closed when the test ends.
func Dial(t testing.TB, addr string, ctx *openssl.Ctx, sess *sslsession.Session) *sslsession.Conn {
	t.Helper()
	c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: ctx, Session: sess, ServerName: "localhost", Timeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// Roundtrip makes one connection to an echo server offering sess, echoes a
// message (so the server has finished its handshake, and stored its
// session, when it returns) and returns whether the session was reused and
// the connection's resumable session (owned; with TLS 1.3 read from a
// ticket).
func Roundtrip(t testing.TB, addr string, ctx *openssl.Ctx, sess *sslsession.Session) (bool, *sslsession.Session) {
	t.Helper()
	reused, next, err := TryRoundtrip(addr, ctx, sess)
	require.NoError(t, err)
	return reused, next
}

// TryRoundtrip is Roundtrip returning its error.
func TryRoundtrip(addr string, ctx *openssl.Ctx, sess *sslsession.Session) (bool, *sslsession.Session, error) {
	c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: ctx, ServerName: "localhost", Session: sess, Timeout: 10 * time.Second})
	if err != nil {
		return false, nil, err
	}
	defer c.Close()
	reused := c.SessionReused()
	if _, err := c.Write([]byte("ping")); err != nil {
		return false, nil, err
	}
	next, err := c.AwaitSession(5 * time.Second)
	if err != nil {
		return false, nil, err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		next.Close()
		return false, nil, fmt.Errorf("echo: %q, %v", buf, err)
	}
	return reused, next, nil
}

// Settle is the leak check: every owned session is given back once the
// garbage collector has run.
func Settle(t testing.TB) {
	t.Helper()
	require.Zero(t, SettleLive(), "owned sessions still live after GC")
}

// LeakCheck runs Settle when the test ends.
func LeakCheck(t testing.TB) {
	t.Cleanup(func() { Settle(t) })
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ServeTCP accepts TCP connections on 127.0.0.1 until the test ends, each
// given to handle on a goroutine of its own, and returns the address. The
// test's cleanup closes the listener and waits for every handler to return.
func ServeTCP(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// TCPPair is the two ends of a TCP connection on 127.0.0.1: what a client
// dialed and what the server accepted.
func TCPPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server, err = ln.Accept()
	require.NoError(t, err)
	return client, server
}
