package test

import (
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// echo sends a probe and reads it back: the read also takes in a TLS 1.3
// server's session tickets.
func echo(t testing.TB, c *sslsession.Conn) {
	t.Helper()
	_, err := c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = c.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))
}

// Resumption end to end through Dial against the embedded echo server: by
// session ID (tickets off) and by ticket (server cache off), on every
// protocol version the library speaks.
func TestResumeEndToEnd(t *testing.T) {
	cases := []struct {
		name string
		cfg  loopback.Config
	}{
		{"session-id", loopback.Config{NoTickets: true}},
		{"ticket", loopback.Config{NoCache: true}},
	}
	for _, v := range sesstest.Versions(t) {
		for _, tc := range cases {
			t.Run(v.String()+"/"+tc.name, func(t *testing.T) {
				sctx, cctx := sesstest.CtxPair(t, v, tc.cfg)
				srv := sesstest.Serve(t, sctx)
				stats := sesstest.NewCtx(t, sctx)

				first := sesstest.Dial(t, srv.Addr, cctx, nil)
				require.False(t, first.SessionReused())
				echo(t, first)
				sess, err := first.AwaitSession(5 * time.Second)
				require.NoError(t, err)
				defer sess.Close()
				info, err := sess.Info()
				require.NoError(t, err)
				require.NoError(t, first.Close())
				if tc.name == "ticket" {
					assert.True(t, info.HasTicket)
				}
				if tc.name == "session-id" && v == sslsession.TLS12 {
					assert.False(t, info.HasTicket)
					assert.Len(t, info.ID, 32)
				}

				second := sesstest.Dial(t, srv.Addr, cctx, sess)
				echo(t, second)
				assert.True(t, second.SessionReused(), "client must see the resumption")
				require.NoError(t, second.Close())
				require.NoError(t, srv.Close())
				assert.Equal(t, int64(1), srv.Reused(), "server must see the resumption")
				if tc.name == "session-id" {
					assert.GreaterOrEqual(t, stats.Metrics().Cache.Hits, int64(1), "an ID resumption is a cache hit")
				}
			})
		}
	}
}

// A server with its cache and tickets off cannot resume: AwaitSession says
// so where the client can tell (TLS 1.2), and a second connection is a full
// handshake on every version.
func TestNoResumptionWhenServerCachesNothing(t *testing.T) {
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{NoTickets: true, NoCache: true})
			srv := sesstest.Serve(t, sctx)
			first := sesstest.Dial(t, srv.Addr, cctx, nil)
			echo(t, first)
			sess, err := first.AwaitSession(300 * time.Millisecond)
			if v == sslsession.TLS12 || sesstest.Is102() {
				// No session ID and no ticket: the client can tell.
				require.ErrorIs(t, err, sslsession.ErrNotResumable)
				sess, err = first.Session1()
			}
			// TLS 1.3 with SSL_OP_NO_TICKET: the server still sends
			// stateful tickets although it caches nothing, so the client
			// holds a "resumable" session that the server cannot resume.
			require.NoError(t, err)
			defer sess.Close()
			second := sesstest.Dial(t, srv.Addr, cctx, sess)
			echo(t, second)
			assert.False(t, second.SessionReused())
		})
	}
}

// AwaitSession keeps application data that arrives before the ticket.
func TestAwaitSessionLosesNoData(t *testing.T) {
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
			srv := sesstest.Serve(t, sctx)
			c := sesstest.Dial(t, srv.Addr, cctx, nil)
			msg := strings.Repeat("data before the ticket is read;", 100)
			_, err := c.Write([]byte(msg))
			require.NoError(t, err)
			time.Sleep(50 * time.Millisecond) // let the echo arrive first
			sess, err := c.AwaitSession(5 * time.Second)
			require.NoError(t, err)
			defer sess.Close()
			got := make([]byte, 0, len(msg))
			buf := make([]byte, 512)
			for len(got) < len(msg) {
				n, err := c.Read(buf)
				require.NoError(t, err)
				got = append(got, buf[:n]...)
			}
			assert.Equal(t, msg, string(got))
		})
	}
}

// spacemonkeygo's own DialSession, at the pinned version, panics on current
// Go: with a real session (its setSession passes C a Go pointer to a Go
// pointer, which cgo's pointer checks refuse) and with an empty one (it
// takes &session[0]). The library's Dial resumes the same session.
func TestSpacemonkeyDialSessionPanicsWhereDialWorks(t *testing.T) {
	sctx, cctx := sesstest.CtxPair(t, sslsession.TLS12, loopback.Config{})
	srv := sesstest.Serve(t, sctx)
	first := sesstest.Dial(t, srv.Addr, cctx, nil)
	s, err := first.Session1()
	require.NoError(t, err)
	defer s.Close()
	der, err := s.MarshalBinary()
	require.NoError(t, err)
	first.Close()

	// DialSession panics before its handshake, and leaks the connection it
	// dialled: give it a bare TCP listener, not the TLS server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for name, session := range map[string][]byte{"real session": der, "empty session": {}} {
		t.Run(name, func(t *testing.T) {
			var conn *openssl.Conn
			panicked := func() (p any) {
				defer func() { p = recover() }()
				conn, _ = openssl.DialSession("tcp", ln.Addr().String(), cctx, openssl.InsecureSkipHostVerification, session)
				return nil
			}()
			if conn != nil {
				conn.Close()
			}
			require.NotNil(t, panicked, "spacemonkeygo's DialSession no longer panics: revisit the README")
			t.Logf("DialSession panicked: %v", panicked)
		})
	}
	// The library resumes from the same DER (a session bound to no context
	// yet), under the same cgo pointer checks; no session is a full
	// handshake.
	d, err := sslsession.ParseDER(der)
	require.NoError(t, err)
	defer d.Close()
	c := sesstest.Dial(t, srv.Addr, cctx, d)
	echo(t, c)
	assert.True(t, c.SessionReused())
	full := sesstest.Dial(t, srv.Addr, cctx, nil)
	assert.False(t, full.SessionReused())
}

// Resumption against `openssl s_server` of the same OpenSSL, by session ID
// (-no_ticket) and by ticket.
func TestResumeAgainstOpenSSLServer(t *testing.T) {
	for _, v := range sesstest.Versions(t) {
		for _, mode := range []string{"session-id", "ticket"} {
			t.Run(v.String()+"/"+mode, func(t *testing.T) {
				var args []string
				if mode == "session-id" {
					args = append(args, "-no_ticket")
				}
				addr := sServer(t, args...)
				_, cctx := sesstest.CtxPair(t, v, loopback.Config{})
				first := sesstest.Dial(t, addr, cctx, nil)
				// s_server sends tickets but no data: AwaitSession must
				// notice the ticket, not wait for data until its timeout.
				start := time.Now()
				sess, err := first.AwaitSession(20 * time.Second)
				require.NoError(t, err)
				assert.Less(t, time.Since(start), 10*time.Second, "AwaitSession waited for application data")
				defer sess.Close()
				first.Close()
				second := sesstest.Dial(t, addr, cctx, sess)
				assert.True(t, second.SessionReused())
			})
		}
	}
}

// PEM written by the library is read by `openssl sess_id`, with the same
// session ID and master key; PEM written by `openssl sess_id` is read by the
// library; and a session saved by `openssl s_client -sess_out` resumes
// through the library against the same server.
func TestPEMInteropWithOpenSSLTool(t *testing.T) {
	dir := t.TempDir()
	sctx, cctx := sesstest.CtxPair(t, sslsession.TLS12, loopback.Config{})
	srv := sesstest.Serve(t, sctx)
	c := sesstest.Dial(t, srv.Addr, cctx, nil)
	s, err := c.Session1()
	require.NoError(t, err)
	defer s.Close()
	info, err := s.Info()
	require.NoError(t, err)
	key, err := s.MasterKey()
	require.NoError(t, err)

	ours := filepath.Join(dir, "ours.pem")
	pemBytes, err := s.MarshalPEM()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(pemBytes), "-----BEGIN SSL SESSION PARAMETERS-----\n"))
	require.NoError(t, os.WriteFile(ours, pemBytes, 0o600))

	text := runTool(t, "", "sess_id", "-in", ours, "-text", "-noout")
	assert.Contains(t, text, "Session-ID: "+strings.ToUpper(hex.EncodeToString(info.ID)))
	assert.Contains(t, text, "Master-Key: "+strings.ToUpper(hex.EncodeToString(key)))
	assert.Contains(t, text, "TLSv1.2")

	// The tool's own re-encoding, PEM and DER, decodes to the same session.
	theirs := filepath.Join(dir, "theirs.pem")
	runTool(t, "", "sess_id", "-in", ours, "-out", theirs)
	theirsDER := filepath.Join(dir, "theirs.der")
	runTool(t, "", "sess_id", "-in", ours, "-outform", "DER", "-out", theirsDER)
	for _, f := range []string{theirs, theirsDER} {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		d, err := sslsession.Parse(data)
		require.NoError(t, err, f)
		di, err := d.Info()
		require.NoError(t, err)
		assert.Equal(t, info.ID, di.ID)
		assert.Equal(t, info.Cipher, di.Cipher, "cipher of a decoded session")
		dk, err := d.MasterKey()
		require.NoError(t, err)
		assert.Equal(t, key, dk)
		require.NoError(t, d.Close())
	}
}

func TestSessionFromOpenSSLClientResumes(t *testing.T) {
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			addr := sServer(t)
			out := filepath.Join(t.TempDir(), "sess.pem")
			flag := "-tls1_2"
			if v == sslsession.TLS13 {
				flag = "-tls1_3"
			}
			// s_client takes in TLS 1.3 tickets only while the connection
			// is open: its "Q" command comes after a pause.
			runToolDelayedInput(t, "Q\n", 500*time.Millisecond, "s_client", "-connect", addr, flag, "-sess_out", out)
			data, err := os.ReadFile(out)
			require.NoError(t, err)
			s, err := sslsession.ParsePEM(data)
			require.NoError(t, err)
			defer s.Close()
			info, err := s.Info()
			require.NoError(t, err)
			require.Equal(t, v, info.Protocol, fmt.Sprint(info))
			_, cctx := sesstest.CtxPair(t, v, loopback.Config{})
			// s_client did not verify the certificate, and a resumed
			// handshake does not verify it again: the session carries the
			// failed verify result, so a verifying Dial refuses it...
			_, err = sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, Session: s, ServerName: "localhost"})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "not trusted")
			// ...and an insecure one resumes it.
			c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, Session: s, InsecureSkipVerify: true})
			require.NoError(t, err)
			defer c.Close()
			assert.True(t, c.SessionReused(), "a session saved by s_client must resume through the library")
		})
	}
}
