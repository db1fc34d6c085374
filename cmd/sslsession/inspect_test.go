package main

import (
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
