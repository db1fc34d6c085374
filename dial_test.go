package sslsession_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// countingConn counts the bytes the TLS client reads through it.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	return n, err
}

// Dial's one path: its own net.Dialer, a wrapped connection, the cache, and
// the handshake's duration, on both connection paths.
func TestDialConfigDialerWrapCache(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			srv := cacheTicketServer(t, v)
			cctx := sesstest.ClientCtx(t, v)
			cc, err := sslsession.NewClientCache(cctx, 0)
			require.NoError(t, err)
			defer cc.Close()

			var dials atomic.Int64
			d := &net.Dialer{Control: func(string, string, syscall.RawConn) error {
				dials.Add(1)
				return nil
			}}
			var read atomic.Int64
			wrap := func(c net.Conn) net.Conn { return countingConn{Conn: c, read: &read} }
			for _, wrapped := range []bool{false, true} {
				cfg := &sslsession.DialConfig{Cache: cc, ServerName: "localhost", NetDialer: d}
				if wrapped {
					cfg.WrapConn = wrap
				}
				for round := 0; round < 2; round++ {
					c, err := sslsession.Dial("tcp", srv.Addr, cfg)
					require.NoError(t, err)
					require.Positive(t, c.HandshakeDuration(), "Dial times its handshake")
					require.Equal(t, wrapped, c.OpenSSL() != nil, "a wrapped conn runs on spacemonkeygo's path")
					require.Equal(t, round > 0 || wrapped, c.SessionReused(), "the cache resumes, round %d", round)
					cacheEcho(t, c)
					require.NoError(t, c.Close())
				}
			}
			require.Equal(t, int64(4), dials.Load(), "every dial used the given net.Dialer")
			require.Positive(t, read.Load(), "the wrapped connections read through the wrapper")

			_, err = sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cc, ServerName: "localhost",
				WrapConn: func(net.Conn) net.Conn { return nil }})
			require.ErrorIs(t, err, sslsession.ErrNilSSL, "a WrapConn returning nil is an error, not a panic")
		})
	}
}

// HandshakeDuration is 0 until Handshake runs, and on a zero Conn.
func TestHandshakeDurationBefore(t *testing.T) {
	var zero sslsession.Conn
	require.Zero(t, zero.HandshakeDuration())
	require.ErrorIs(t, zero.Handshake(), sslsession.ErrNilSSL)
	var nilConn *sslsession.Conn
	require.Zero(t, nilConn.HandshakeDuration())
	require.ErrorIs(t, nilConn.Handshake(), sslsession.ErrNilSSL)
}

// preludeServer accepts connections on 127.0.0.1, sends "GO\n", waits for
// "OK\n", then runs the TLS server side and echoes; a client that answers
// anything else is dropped. It reports what each connection's prelude read.
func preludeServer(t *testing.T, v sslsession.Version) (addr string, got <-chan string) {
	t.Helper()
	sctx, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{Min: v, Max: v})
	require.NoError(t, err)
	ch := make(chan string, 16)
	addr = sesstest.ServeTCP(t, func(raw net.Conn) {
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := raw.Write([]byte("GO\n")); err != nil {
			ch <- err.Error()
			return
		}
		buf := make([]byte, 3)
		n, err := io.ReadFull(raw, buf)
		if err != nil || string(buf) != "OK\n" {
			ch <- fmt.Sprintf("%q %v", buf[:n], err)
			return
		}
		ch <- "OK"
		c, err := sslsession.Server(raw, sctx)
		if err != nil {
			return
		}
		if c.Handshake() == nil {
			_, _ = io.Copy(c, c)
		}
		_ = c.Close()
	})
	return addr, ch
}

// readPrelude is a BeforeHandshake that reads the server's "GO\n" one byte
// at a time (nothing past it) and answers "OK\n".
func readPrelude(conn net.Conn) error {
	var b [1]byte
	var line []byte
	for len(line) < 3 {
		if _, err := conn.Read(b[:]); err != nil {
			return err
		}
		line = append(line, b[0])
	}
	if string(line) != "GO\n" {
		return fmt.Errorf("unexpected prelude %q", line)
	}
	_, err := conn.Write([]byte("OK\n"))
	return err
}

// DialConfig.BeforeHandshake runs a plaintext exchange (as STARTTLS does)
// on the socket before the handshake: the connection stays on the socket
// path and resumes; the hook's error, or its timeout, ends Dial with the
// socket closed.
func TestDialBeforeHandshake(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			addr, got := preludeServer(t, v)
			cctx := sesstest.ClientCtx(t, v)
			var calls atomic.Int64
			cfg := &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost", Timeout: 5 * time.Second,
				BeforeHandshake: func(conn net.Conn) error {
					calls.Add(1)
					_, isTCP := conn.(*net.TCPConn)
					require.True(t, isTCP, "the hook gets the socket, before WrapConn")
					return readPrelude(conn)
				}}
			c, err := sslsession.Dial("tcp", addr, cfg)
			require.NoError(t, err)
			require.Equal(t, "OK", <-got)
			require.Nil(t, c.OpenSSL(), "the hook keeps the socket path")
			require.False(t, c.SessionReused())
			cacheEcho(t, c)
			sess, err := c.AwaitSession(5 * time.Second)
			require.NoError(t, err)
			require.NoError(t, c.Close())

			cfg.Session = sess
			c, err = sslsession.Dial("tcp", addr, cfg)
			require.NoError(t, err)
			require.Equal(t, "OK", <-got)
			require.True(t, c.SessionReused(), "a session resumes after the plaintext exchange")
			cacheEcho(t, c)
			require.NoError(t, c.Close())
			require.NoError(t, sess.Close())
			require.Equal(t, int64(2), calls.Load())

			// The hook's error: wrapped, the socket closed (the server
			// reads EOF instead of "OK\n").
			errNo := errors.New("no STARTTLS here")
			_, err = sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost",
				BeforeHandshake: func(net.Conn) error { return errNo }})
			require.ErrorIs(t, err, errNo)
			require.Contains(t, err.Error(), addr)
			require.Regexp(t, "EOF|reset", <-got, "the server saw the socket closed")

			// A hook waiting for more than the server sends runs into
			// Timeout.
			start := time.Now()
			_, err = sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost",
				Timeout: 200 * time.Millisecond,
				BeforeHandshake: func(conn net.Conn) error {
					_, err := io.ReadAll(conn)
					return err
				}})
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			require.Less(t, time.Since(start), 5*time.Second, "the deadline ended the hook, not the server")
			require.Regexp(t, "EOF|reset", <-got, "the server saw the socket closed")
		})
	}
}
