package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession/internal/loopback"
)

func TestEsc(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text, é ü 日本", "plain text, é ü 日本"},
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"bell\x07", `bell\x07`},
		{"cr\rlf\ntab\t", `cr\rlf\ntab\t`},
		{"del\x7f", `del\x7f`},
		{"c1\u0085\u009b", `c1\u{0085}\u{009B}`},
		{"bad\xff\xfeutf8", `bad\xff\xfeutf8`},
		{"rtl\u202eenil\u2066x\u2069", `rtl\u{202E}enil\u{2066}x\u{2069}`},
		{"zero\u200bwidth", `zero\u{200B}width`},
		{"line\u2028sep", `line\u{2028}sep`},
		{`back\slash`, `back\\slash`},
		{"replacement\ufffd", `replacement\u{FFFD}`},
	} {
		assert.Equal(t, c.want, esc(c.in), "%q", c.in)
		assert.True(t, isPlain(esc(c.in)) || strings.Contains(esc(c.in), `\`), "%q", c.in)
	}
	// The error line's guard leaves backslashes (escaped before) alone.
	assert.Equal(t, `already \x1b and now \x1b`, terminalSafe(`already \x1b and now `+"\x1b"))
	assert.Equal(t, `\xff`, terminalSafe("\xff"))
}

// evilOrg is a certificate organization that, printed raw, retitles the
// terminal, rings its bell, clears the screen and overwrites the line; then
// a right-to-left override.
const evilOrg = "evil\x1b]0;pwned\x07\x1b[2J\rfake line\u202eeman"

// requireNoControl checks that text has no character a terminal acts on
// (newlines and the progress bar aside).
func requireNoControl(t *testing.T, text string) {
	t.Helper()
	require.NotRegexp(t, "[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f\u202a-\u202e\u2066-\u2069]", text)
}

// TestInspectEscapesPeerStrings: a server certificate's organization with
// control characters is shown escaped by inspect, and unchanged in JSON.
func TestInspectEscapesPeerStrings(t *testing.T) {
	t.Parallel()
	cert, err := loopback.SelfSignedNamed(evilOrg)
	require.NoError(t, err)
	ctx, err := loopback.ServerCtx(cert, embeddedTLS12)
	require.NoError(t, err)
	srv, err := loopback.Serve(ctx, cert)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	file := filepath.Join(t.TempDir(), "evil\x1b[2J.pem")

	r := runBinary(t, "save", srv.Addr, "--insecure", "-o", file)
	require.Equal(t, 0, r.code, r.stderr)
	requireNoControl(t, r.stdout)
	require.Contains(t, r.stdout, `evil\x1b[2J.pem`)

	r = runBinary(t, "inspect", file)
	require.Equal(t, 0, r.code, r.stderr)
	requireNoControl(t, r.stdout)
	// pkix.Name.String escapes the semicolon (RFC 2253) and nothing else.
	want := regexp.QuoteMeta(`O=evil\x1b]0\\;pwned\x07\x1b[2J\rfake line\u{202E}eman`)
	require.Regexp(t, `(?m)^peer certificate\s+CN=localhost,`+want+`$`, r.stdout)
	require.Regexp(t, `(?m)^  issuer\s+CN=localhost,`+want+`$`, r.stdout)
	require.Regexp(t, `(?m)^file\s+\S*evil\\x1b\[2J\.pem \(PEM\)$`, r.stdout)

	r = runBinary(t, "inspect", file, "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var rep inspectReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	require.NotNil(t, rep.PeerCertificate)
	assert.Equal(t, "CN=localhost,O="+strings.Replace(evilOrg, ";", `\;`, 1), rep.PeerCertificate.Subject)
	assert.Equal(t, file, rep.File)

	// An error naming the file escapes it too.
	r = runBinary(t, "inspect", file+"\x07missing")
	requireError(t, r, exitError, `^sslsession: cannot read \S*evil\\x1b\[2J\.pem\\x07missing: no such file or directory$`)
}
