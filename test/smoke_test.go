package test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

func TestSmoke(t *testing.T) {
	for _, v := range []sslsession.Version{sslsession.TLS12, sslsession.TLS13} {
		srv, err := loopback.Start(loopback.Config{Max: v})
		require.NoError(t, err)
		cctx, err := loopback.ClientCtx(srv.Cert, 0, v)
		require.NoError(t, err)
		c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost"})
		require.NoError(t, err)
		s1, err := c.Session1()
		require.NoError(t, err)
		t.Log("right after handshake:", s1)
		_, err = c.Write([]byte("ping"))
		require.NoError(t, err)
		sess, err := c.AwaitSession(2 * time.Second)
		require.NoError(t, err)
		t.Log("awaited:", sess)
		buf := make([]byte, 4)
		n, err := c.Read(buf)
		require.NoError(t, err)
		require.Equal(t, "ping", string(buf[:n]))
		require.NoError(t, c.Close())
		c2, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost", Session: sess})
		require.NoError(t, err)
		require.True(t, c2.SessionReused(), v.String())
		c2.Close()
		sess.Close()
		s1.Close()
		srv.Close()
	}
}
