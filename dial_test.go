package sslsession_test

import (
	"net"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
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
