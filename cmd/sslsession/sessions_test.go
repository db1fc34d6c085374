package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// protocols are the versions the linked OpenSSL speaks, as the flags and
// s_server name them.
func protocols() []struct{ flag, sserver, name string } {
	ps := []struct{ flag, sserver, name string }{{"--tls1.2", "-tls1_2", "TLSv1.2"}}
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		ps = append(ps, struct{ flag, sserver, name string }{"--tls1.3", "-tls1_3", "TLSv1.3"})
	}
	return ps
}

// sessIDText runs `openssl sess_id -text -noout` on a session file.
func sessIDText(t *testing.T, path string, der bool) string {
	t.Helper()
	args := []string{"sess_id", "-in", path, "-noout", "-text"}
	if der {
		args = append(args, "-inform", "DER")
	}
	out, err := exec.Command(opensslBin(t), args...).CombinedOutput()
	require.NoError(t, err, "openssl sess_id: %s", out)
	return string(out)
}

func field(t *testing.T, text, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(text)
	require.NotNil(t, m, "no %s in:\n%s", re, text)
	return m[1]
}

// TestSaveResumeOpenSSLServer: save then resume against s_server resumes;
// the saved file is PEM with mode 0600 that openssl sess_id reads.
func TestSaveResumeOpenSSLServer(t *testing.T) {
	if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
		require.Equal(t, sslsession.TLS12, sslsession.MaxSupportedVersion())
	}
	for _, p := range protocols() {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			srv := startSServer(t, p.sserver)
			file := filepath.Join(t.TempDir(), "sess.pem")
			trust := []string{"--cafile", srv.certPath, "--servername", "localhost", p.flag}

			r := runBinary(t, append([]string{"save", srv.addr, "-o", file}, trust...)...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Regexp(t, `(?m)^saved\s+`+regexp.QuoteMeta(file)+`$`, r.stdout)
			require.Regexp(t, `(?m)^protocol\s+`+p.name+`$`, r.stdout)
			require.Regexp(t, `(?m)^resumable\s+yes$`, r.stdout)
			st, err := os.Stat(file)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			require.True(t, bytes.HasPrefix(data, []byte("-----BEGIN SSL SESSION PARAMETERS-----\n")), "%s", data)
			text := sessIDText(t, file, false)
			assert.Equal(t, p.name, field(t, text, `Protocol\s*:\s*(\S+)`))

			// resume against the same server resumes.
			r = runBinary(t, append([]string{"resume", srv.addr, "-i", file, "--require-resume"}, trust...)...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Regexp(t, `(?m)^resumed\s+yes$`, r.stdout)
			require.Regexp(t, `(?m)^handshake\s+\d+\.\d{3} ms$`, r.stdout)

			r = runBinary(t, append([]string{"resume", srv.addr, "-i", file, "--json"}, trust...)...)
			require.Equal(t, 0, r.code, r.stderr)
			var rep resumeReport
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&rep))
			assert.True(t, rep.Resumed)
			assert.Equal(t, p.name, rep.Protocol)
			assert.Equal(t, file, rep.File)
			assert.Positive(t, rep.HandshakeMS)

			// Another server (other ticket keys, empty cache) does not.
			other := startSServer(t, p.sserver)
			r = runBinary(t, "resume", other.addr, "-i", file, "--cafile", other.certPath, "--servername", "localhost", p.flag, "--require-resume")
			require.Equal(t, exitNoResume, r.code, r.stderr)
			require.Regexp(t, `(?m)^resumed\s+no$`, r.stdout)
			require.Equal(t, "sslsession: session was not resumed (--require-resume)\n", r.stderr)

			// save does not overwrite without --force.
			r = runBinary(t, append([]string{"save", srv.addr, "-o", file}, trust...)...)
			requireError(t, r, exitError, `^sslsession: .*sess\.pem exists; use --force to replace it$`)
			after, err := os.ReadFile(file)
			require.NoError(t, err)
			require.Equal(t, data, after)

			// With --force it replaces the file, and the new one is 0600 even
			// when the old one was readable by all.
			require.NoError(t, os.Chmod(file, 0o644))
			r = runBinary(t, append([]string{"save", srv.addr, "-o", file, "--force"}, trust...)...)
			require.Equal(t, 0, r.code, r.stderr)
			st, err = os.Stat(file)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
			after, err = os.ReadFile(file)
			require.NoError(t, err)
			require.NotEqual(t, data, after, "a new session was saved")
		})
	}
}

// sClientSession runs `openssl s_client -sess_out` against addr and waits
// for it to write the session file.
func sClientSession(t *testing.T, addr, file string, extra ...string) {
	t.Helper()
	args := append([]string{"s_client", "-connect", addr, "-sess_out", file}, extra...)
	cmd := exec.Command(opensslBin(t), args...)
	stdin, err := cmd.StdinPipe() // kept open: s_client stays connected
	require.NoError(t, err)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	defer func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(file); err == nil && bytes.Contains(data, []byte("-----END SSL SESSION PARAMETERS-----")) {
			// TLS 1.3: s_client rewrites the file for each ticket; let the
			// second one land.
			time.Sleep(200 * time.Millisecond)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("s_client wrote no session:\n%s", logs.String())
}

// TestInspectOpenSSLClientFile: inspect reads what `openssl s_client
// -sess_out` writes, PEM and DER, shows what openssl sess_id shows, and the
// master key only with --show-secret.
func TestInspectOpenSSLClientFile(t *testing.T) {
	for _, p := range protocols() {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			srv := startSServer(t, p.sserver)
			dir := t.TempDir()
			file := filepath.Join(dir, "openssl.pem")
			// -CAfile: the session records a successful verification, which
			// a resumption of it reports again.
			sClientSession(t, srv.addr, file, p.sserver, "-CAfile", srv.certPath)
			text := sessIDText(t, file, false)
			wantID := field(t, text, `Session-ID:\s*([0-9A-F]*)\n`)
			wantKey := field(t, text, `(?:Master-Key|Resumption PSK):\s*([0-9A-F]+)`)
			require.NotEmpty(t, wantKey)

			r := runBinary(t, "inspect", file)
			require.Equal(t, 0, r.code, r.stderr)
			require.Regexp(t, `(?m)^file\s+.*openssl\.pem \(PEM\)$`, r.stdout)
			require.Regexp(t, `(?m)^protocol\s+`+p.name+`$`, r.stdout)
			// sess_id shows the cipher's name, or (1.0.2, whose sess_id does
			// not load the SSL library's cipher table) its number.
			if c := field(t, text, `Cipher\s*:\s*(\S+)`); regexp.MustCompile(`^[0-9A-F]{4}$`).MatchString(c) {
				require.Regexp(t, `(?m)^cipher\s+\S+ \(0x`+c+`\)$`, r.stdout)
			} else {
				require.Regexp(t, `(?m)^cipher\s+`+regexp.QuoteMeta(c)+` \(0x[0-9A-F]{4}\)$`, r.stdout)
			}
			if wantID != "" {
				require.Regexp(t, `(?m)^session ID\s+`+wantID+` \(\d+ bytes\)$`, r.stdout)
			}
			require.Regexp(t, `(?m)^master key\s+hidden \(--show-secret shows it\)$`, r.stdout)
			require.Regexp(t, `(?m)^peer certificate\s+CN=localhost`, r.stdout)
			require.NotContains(t, r.stdout, wantKey)
			if hint := regexp.MustCompile(`lifetime hint: (\d+)`).FindStringSubmatch(text); hint != nil {
				require.Regexp(t, `(?m)^ticket\s+yes, \d+ bytes, lifetime hint `+hint[1]+` s$`, r.stdout)
			}

			r = runBinary(t, "inspect", "--show-secret", file)
			require.Equal(t, 0, r.code, r.stderr)
			require.Regexp(t, `(?m)^master key\s+`+wantKey+`$`, r.stdout)

			r = runBinary(t, "inspect", "--json", file)
			require.Equal(t, 0, r.code, r.stderr)
			var rep inspectReport
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&rep))
			assert.Equal(t, p.name, rep.Protocol)
			assert.Equal(t, "PEM", rep.Format)
			assert.Equal(t, wantID, rep.SessionID)
			assert.True(t, rep.Resumable)
			require.NotNil(t, rep.PeerCertificate)
			assert.Equal(t, "CN=localhost,O=sslsession loopback", rep.PeerCertificate.Subject)
			assert.NotContains(t, r.stdout, wantKey)
			assert.NotContains(t, strings.ToLower(r.stdout), "master")

			r = runBinary(t, "inspect", "--json", "--show-secret", file)
			requireError(t, r, exitError, `^sslsession: --show-secret cannot be used with --json`)
			require.Empty(t, r.stdout)

			// DER, as openssl sess_id -outform DER writes it.
			der := filepath.Join(dir, "openssl.der")
			out, err := exec.Command(opensslBin(t), "sess_id", "-in", file, "-outform", "DER", "-out", der).CombinedOutput()
			require.NoError(t, err, "%s", out)
			r = runBinary(t, "inspect", "--json", der)
			require.Equal(t, 0, r.code, r.stderr)
			var rep2 inspectReport
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep2))
			assert.Equal(t, "DER", rep2.Format)
			rep2.Format, rep2.File = rep.Format, rep.File
			assert.Equal(t, rep, rep2)

			// And the file openssl wrote resumes with our client.
			r = runBinary(t, "resume", srv.addr, "-i", file, "--cafile", srv.certPath, "--servername", "localhost", "--require-resume")
			require.Equal(t, 0, r.code, r.stderr)

			// A session whose handshake did not verify the server keeps that
			// result: resuming it sends no certificate to check again, so a
			// verifying client refuses it; --insecure accepts it.
			unverified := filepath.Join(dir, "unverified.pem")
			sClientSession(t, srv.addr, unverified, p.sserver)
			r = runBinary(t, "resume", srv.addr, "-i", unverified, "--cafile", srv.certPath, "--servername", "localhost")
			requireError(t, r, exitError, `^sslsession: certificate of `+regexp.QuoteMeta(srv.addr)+` not trusted: `+regexp.QuoteMeta(sslsession.VerifyErrorString(18))+` \(X509 error 18, as stored in the resumed session\)$`)
			r = runBinary(t, "resume", srv.addr, "-i", unverified, "--insecure", "--require-resume")
			require.Equal(t, 0, r.code, r.stderr)
		})
	}
}

// TestInspectGolden: the human report of inspect for a session saved from
// the embedded server, with IDs and dates masked.
func TestInspectGolden(t *testing.T) {
	srv, certPath := startEmbedded(t, embeddedTLS12)
	file := filepath.Join(t.TempDir(), "golden.pem")
	r := runInProcess("save", srv.Addr, "--cafile", certPath, "-o", file)
	require.Equal(t, 0, r.code, r.stderr)
	golden(t, "save.golden", r.stdout)
	r = runInProcess("inspect", file)
	require.Equal(t, 0, r.code, r.stderr)
	golden(t, "inspect.golden", r.stdout)
	require.Regexp(t, `(?m)^protocol\s+TLSv1\.2$`, r.stdout)
}

// TestSaveResumeNotResumable: a server with its cache and tickets off gives
// a session that cannot be resumed; save still writes it (as openssl
// s_client -sess_out does) and says so, and resume reports no resumption.
func TestSaveResumeNotResumable(t *testing.T) {
	t.Parallel()
	srv, certPath := startEmbedded(t, loopback.Config{Max: sslsession.TLS12, NoCache: true, NoTickets: true})
	file := filepath.Join(t.TempDir(), "sess.pem")
	r := runBinary(t, "save", srv.Addr, "--cafile", certPath, "-o", file)
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^resumable\s+no$`, r.stdout)
	require.Regexp(t, `(?m)^ticket\s+no$`, r.stdout)
	r = runBinary(t, "inspect", file)
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^session ID\s+none$`, r.stdout)
	require.Regexp(t, `(?m)^resumable\s+no$`, r.stdout)
	r = runBinary(t, "resume", srv.Addr, "--cafile", certPath, "-i", file, "--require-resume")
	require.Equal(t, exitNoResume, r.code, r.stderr)
	require.Regexp(t, `(?m)^resumed\s+no$`, r.stdout)
}

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

func parseResume(t *testing.T, out string) resumeReport {
	t.Helper()
	var rep resumeReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep), "resume --json output: %s", out)
	return rep
}

// TestInspectTicketLifetime: a server whose session timeout is 3 s sends
// tickets with a 3 s lifetime hint, while OpenSSL's client keeps its own
// timeout. inspect bounds the expiry by the hint and names it, and a
// session past it is not shown as resumable.
func TestInspectTicketLifetime(t *testing.T) {
	t.Parallel()
	cert, certPath, _ := certFiles(t)
	for _, p := range protocols() {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ctx, err := loopback.ServerCtx(cert, loopback.Config{})
			require.NoError(t, err)
			sc, err := sslsession.NewCtx(ctx)
			require.NoError(t, err)
			sc.SetTimeout(3 * time.Second)
			srv, err := loopback.Serve(ctx, cert)
			require.NoError(t, err)
			t.Cleanup(func() { _ = srv.Close() })

			file := filepath.Join(t.TempDir(), "sess.pem")
			r := runBinary(t, "save", srv.Addr, "--cafile", certPath, "-o", file, p.flag)
			require.Equal(t, 0, r.code, r.stderr)
			r = runBinary(t, "inspect", file, "--json")
			require.Equal(t, 0, r.code, r.stderr)
			var rep inspectReport
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&rep))
			require.Equal(t, int64(3), rep.TicketLifetimeHint)
			require.Greater(t, rep.TimeoutSeconds, int64(3), "the client's own timeout")
			assert.Equal(t, "ticket_lifetime_hint", rep.ExpiresBy)
			assert.Equal(t, rep.Created.Add(3*time.Second), rep.Expires)

			// The same session, made 10 s ago: past the hint, within the
			// timeout.
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			sess, err := sslsession.Parse(data)
			require.NoError(t, err)
			created := time.Now().Add(-10 * time.Second).Truncate(time.Second)
			require.NoError(t, sess.SetCreated(created))
			old, err := sess.MarshalPEM()
			require.NoError(t, err)
			sess.Close()
			oldFile := filepath.Join(t.TempDir(), "old.pem")
			require.NoError(t, os.WriteFile(oldFile, old, 0o600))
			r = runBinary(t, "inspect", oldFile)
			require.Equal(t, 0, r.code, r.stderr)
			want := created.Add(3 * time.Second).UTC().Format(time.RFC3339)
			require.Regexp(t, `(?m)^expired\s+`+want+` \(the ticket lifetime hint, 3 s, shorter than the timeout\)$`, r.stdout)
			require.Regexp(t, `(?m)^resumable\s+no \(expired\)$`, r.stdout)
			r = runBinary(t, "inspect", oldFile, "--json")
			require.Equal(t, 0, r.code, r.stderr)
			require.Contains(t, r.stdout, `"expired": true`)
			require.Contains(t, r.stdout, `"resumable": false`)
		})
	}
}
