package test

import (
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// `openssl s_client -tls1_2` asks our server to renegotiate (its R
// command): the server refuses, and either the connection goes on or it
// fails with an OpenSSL error; it never hangs, and what came before is
// delivered.
func TestConnRenegotiationRefused(t *testing.T) {
	sctx, _ := sesstest.CtxPair(t, sslsession.TLS12, loopback.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	type result struct {
		got string
		err error
	}
	res := make(chan result, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		s, err := sslsession.Server(raw, sctx)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(s)
		res <- result{string(got), err}
	}()
	out := runClientTool(t, "hello\n", "R\n", "s_client", "-tls1_2", "-connect", ln.Addr().String())
	r := <-res
	assert.Contains(t, r.got, "hello")
	if r.err != nil {
		assert.NotErrorIs(t, r.err, os.ErrDeadlineExceeded, "the server hung")
		var se *sslsession.Error
		require.ErrorAs(t, r.err, &se, "s_client said: %s", out)
	}
	assert.Contains(t, strings.ToUpper(out), "RENEGOTIAT", "s_client did not try to renegotiate: %s", out)
}

// runClientTool runs the openssl command, writes first, pauses, writes
// second and closes its input; its exit status is not checked (a refused
// renegotiation may end it with an error).
func runClientTool(t testing.TB, first, second string, args ...string) string {
	t.Helper()
	cmd := exec.Command(openSSLTool(t), args...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	_, _ = io.WriteString(in, first)
	time.Sleep(500 * time.Millisecond)
	_, _ = io.WriteString(in, second)
	time.Sleep(500 * time.Millisecond)
	in.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return out.String()
}
