package sslsession_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/rawssl"
)

// Every error wraps a package sentinel: Dial's network, handshake and
// verification failures, Client with an empty context, raw I/O, and any
// other failed OpenSSL call.
func TestErrorsWrapSentinels(t *testing.T) {
	// Nothing listens on a just-closed port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, err = sslsession.Dial("tcp", addr, &sslsession.DialConfig{InsecureSkipVerify: true})
	require.ErrorIs(t, err, sslsession.ErrIO)
	_, err = sslsession.Dial("tcp", "no-port", &sslsession.DialConfig{InsecureSkipVerify: true})
	require.ErrorIs(t, err, sslsession.ErrIO)

	// A plain TCP server that closes at once: the handshake fails.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("HTTP/1.0 400 no\r\n\r\n"))
			c.Close()
		}
	}()
	_, err = sslsession.Dial("tcp", plain.Addr().String(), &sslsession.DialConfig{InsecureSkipVerify: true})
	require.ErrorIs(t, err, sslsession.ErrHandshake)

	// An untrusted certificate, and a host name that does not match.
	srv, err := loopback.Start(loopback.Config{Max: sslsession.TLS12})
	require.NoError(t, err)
	defer srv.Close()
	other, err := loopback.SelfSigned()
	require.NoError(t, err)
	untrusting, err := loopback.ClientCtx(other, 0, sslsession.TLS12)
	require.NoError(t, err)
	_, err = sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: untrusting, ServerName: "localhost"})
	require.ErrorIs(t, err, sslsession.ErrVerify)
	var ve *sslsession.VerifyError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, srv.Addr, ve.Addr)
	require.NotZero(t, ve.Result, "the chain failed")
	require.Empty(t, ve.Name)
	require.False(t, ve.Resumed)
	require.Contains(t, err.Error(), sslsession.VerifyErrorString(ve.Result))
	require.NotErrorIs(t, err, sslsession.ErrHostname)
	trusting, err := loopback.ClientCtx(srv.Cert, 0, sslsession.TLS12)
	require.NoError(t, err)
	_, err = sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: trusting, ServerName: "example.org"})
	require.ErrorIs(t, err, sslsession.ErrVerify)
	require.ErrorIs(t, err, sslsession.ErrHostname)
	require.ErrorAs(t, err, &ve)
	require.Zero(t, ve.Result, "the chain was trusted")
	require.Equal(t, "example.org", ve.Name)
	require.Contains(t, err.Error(), `not valid for "example.org"`)

	// Client with an empty spacemonkeygo context.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_, err = sslsession.Client(a, &openssl.Ctx{}, nil)
	require.ErrorIs(t, err, sslsession.ErrNilCtx)

	// Raw SSL objects: I/O without a socket, and a host name OpenSSL
	// refuses.
	raw, err := rawssl.New(trusting)
	require.NoError(t, err)
	defer raw.Free()
	err = raw.Connect()
	require.ErrorIs(t, err, sslsession.ErrHandshake)
	var oe *sslsession.Error
	require.True(t, errors.As(err, &oe))
	require.Equal(t, "SSL_connect", oe.Func)
	_, err = raw.Write([]byte("x"))
	require.True(t, errors.Is(err, sslsession.ErrIO) || errors.Is(err, sslsession.ErrHandshake), "%v", err)
	err = raw.SetServerName(strings.Repeat("a", 300))
	require.ErrorIs(t, err, sslsession.ErrOpenSSL)
}
