package main

import (
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
)

// TestResumeWhyNot: resume offers the session's own protocol by default (a
// TLS 1.2 session resumes against a server that speaks TLS 1.3 too), and
// when a session does not resume it says what was offered and what the
// server answered.
func TestResumeWhyNot(t *testing.T) {
	t.Parallel()
	srv := startSServer(t)
	other := startSServer(t)
	file := filepath.Join(t.TempDir(), "sess.pem")
	trust := []string{"--cafile", srv.certPath, "--servername", "localhost"}
	r := runBinary(t, append([]string{"save", srv.addr, "-o", file, "--tls1.2"}, trust...)...)
	require.Equal(t, 0, r.code, r.stderr)

	r = runBinary(t, append([]string{"resume", srv.addr, "-i", file, "--require-resume"}, trust...)...)
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Regexp(t, `(?m)^resumed\s+yes$`, r.stdout)
	require.Regexp(t, `(?m)^protocol\s+TLSv1\.2$`, r.stdout)
	require.Regexp(t, `(?m)^offered\s+a TLSv1\.2 session \(\S+, session ID 32 bytes, ticket \d+ bytes\)$`, r.stdout)
	require.NotContains(t, r.stdout, "why not")
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		require.Regexp(t, `(?m)^client protocols\s+up to TLSv1\.2 \(the session's protocol\)$`, r.stdout)
		// Forcing TLS 1.3: OpenSSL cannot offer a TLS 1.2 session.
		r = runBinary(t, append([]string{"resume", srv.addr, "-i", file, "--tls1.3", "--json"}, trust...)...)
		require.Equal(t, 0, r.code, r.stderr)
		rep := parseResume(t, r.stdout)
		assert.False(t, rep.Resumed)
		assert.Nil(t, rep.Offered)
		assert.Equal(t, "flags", rep.ProtocolsFrom)
		assert.Equal(t, "TLSv1.3 only", rep.ClientProtocols)
		assert.Equal(t, "not offered: the session is TLSv1.2, outside the protocols the client allows (TLSv1.3 only): OpenSSL offers a session only under its own protocol", rep.WhyNot)
	} else {
		require.Regexp(t, `(?m)^client protocols\s+any \(default\)$`, r.stdout)
	}

	// Another server: offered, and answered with a full handshake.
	otherTrust := []string{"--cafile", other.certPath, "--servername", "localhost"}
	r = runBinary(t, append([]string{"resume", other.addr, "-i", file, "--json"}, otherTrust...)...)
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseResume(t, r.stdout)
	assert.False(t, rep.Resumed)
	require.NotNil(t, rep.Offered)
	assert.Equal(t, "TLSv1.2", rep.Offered.Protocol)
	assert.Equal(t, 32, rep.Offered.SessionIDLength)
	assert.Positive(t, rep.Offered.TicketLength)
	assert.Regexp(t, `^offered a TLSv1\.2 session \(\S+, session ID 32 bytes, ticket \d+ bytes\); the server made a full handshake with a new session ID, a new ticket$`, rep.WhyNot)
	r = runBinary(t, append([]string{"resume", other.addr, "-i", file}, otherTrust...)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^why not\s+offered a TLSv1\.2 session .*; the server made a full handshake with a new session ID, a new ticket$`, r.stdout)

	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		file13 := filepath.Join(t.TempDir(), "sess13.pem")
		r = runBinary(t, append([]string{"save", srv.addr, "-o", file13, "--tls1.3"}, trust...)...)
		require.Equal(t, 0, r.code, r.stderr)
		r = runBinary(t, append([]string{"resume", other.addr, "-i", file13, "--json"}, otherTrust...)...)
		require.Equal(t, 0, r.code, r.stderr)
		rep := parseResume(t, r.stdout)
		assert.False(t, rep.Resumed)
		assert.Equal(t, 0, rep.Offered.SessionIDLength)
		assert.Regexp(t, `^offered a TLSv1\.3 session \(\S+, ticket \d+ bytes\); the server made a full handshake with 2 new ticket\(s\)$`, rep.WhyNot)
	}
}

// TestResumeHostnameFromSession: a session made for localhost, resumed under
// another name, fails the name check against the certificate stored in the
// session, and the error says so.
func TestResumeHostnameFromSession(t *testing.T) {
	t.Parallel()
	srv := startSServer(t)
	file := filepath.Join(t.TempDir(), "sess.pem")
	r := runBinary(t, "save", srv.addr, "-o", file, "--tls1.2", "--cafile", srv.certPath, "--servername", "localhost")
	require.Equal(t, 0, r.code, r.stderr)
	r = runBinary(t, "resume", srv.addr, "-i", file, "--tls1.2", "--cafile", srv.certPath, "--servername", "other.example")
	requireError(t, r, exitError, `^sslsession: certificate of `+regexp.QuoteMeta(srv.addr)+` is not valid for "other\.example" \(the certificate stored in the resumed session, from the handshake that made it\)$`)
	// A full handshake under that name says it without the session part.
	r = runBinary(t, "check", srv.addr, "--tls1.2", "--cafile", srv.certPath, "--servername", "other.example")
	requireError(t, r, exitError, `^sslsession: certificate of `+regexp.QuoteMeta(srv.addr)+` is not valid for "other\.example"$`)
}
