package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

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
