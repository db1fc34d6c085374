package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// mailStep is one exchange of a STARTTLS responder's plaintext script: the
// command it waits for (a regular expression the client's whole line
// matches; "" for none, as before the greeting), then the reply it sends,
// in which $tag is the first word of the client's line (an IMAP tag).
type mailStep struct {
	expect string
	reply  string
}

// replyTo is the reply to the client's line l.
func (st mailStep) replyTo(l string) string {
	if f := strings.Fields(l); len(f) > 0 {
		return strings.ReplaceAll(st.reply, "$tag", f[0])
	}
	return st.reply
}

// What a responder does once its script is done.
const (
	thenTLS   = "tls"   // the TLS server side, then echo
	thenClose = "close" // close the connection
	thenHang  = "hang"  // say nothing until the client goes
)

// mailServer is a STARTTLS responder on 127.0.0.1: each connection plays a
// plaintext script of SMTP, IMAP or POP3, then hands the socket to the TLS
// server side of internal/loopback's context (session cache and tickets on),
// so that sessions resume by session ID and by ticket.
type mailServer struct {
	addr     string
	certPath string

	scripts    atomic.Int64 // scripts played to the end
	handshakes atomic.Int64
	reused     atomic.Int64

	mu    sync.Mutex
	lines []string // the client's lines, in order
	errs  []string
}

func (s *mailServer) errorf(format string, a ...any) {
	s.mu.Lock()
	s.errs = append(s.errs, fmt.Sprintf(format, a...))
	s.mu.Unlock()
}

func (s *mailServer) clientLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// startMailServer starts a responder speaking protocol v (0: any) after its
// script; it stops when the test ends, failing the test if a client broke
// the script.
func startMailServer(t *testing.T, v sslsession.Version, script []mailStep, then string) *mailServer {
	t.Helper()
	cert, certPath, _ := certFiles(t)
	ctx, err := loopback.ServerCtx(cert, loopback.Config{Min: v, Max: v})
	require.NoError(t, err)
	return startMailServerCtx(t, ctx, certPath, script, then)
}

// startMailServerCtx is startMailServer with a server context of the
// caller's (responders sharing one share its session cache and ticket key).
func startMailServerCtx(t *testing.T, ctx *openssl.Ctx, certPath string, script []mailStep, then string) *mailServer {
	t.Helper()
	s := &mailServer{certPath: certPath}
	// Registered first, so it runs last: once every handler has returned.
	t.Cleanup(func() {
		for _, e := range s.errs {
			t.Errorf("STARTTLS responder: %s", e)
		}
	})
	s.addr = sesstest.ServeTCP(t, func(raw net.Conn) {
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
		if !s.play(raw, script) {
			return
		}
		s.scripts.Add(1)
		switch then {
		case thenClose:
			return
		case thenHang:
			_, _ = io.Copy(io.Discard, raw)
			return
		}
		c, err := sslsession.Server(raw, ctx)
		if err != nil {
			s.errorf("server: %v", err)
			return
		}
		if err := c.Handshake(); err != nil {
			_ = c.Close()
			return // the client's verdict is the test's
		}
		s.handshakes.Add(1)
		if c.SessionReused() {
			s.reused.Add(1)
		}
		_, _ = io.Copy(c, c)
		_ = c.Close()
	})
	return s
}

// play runs the script on one connection; false when the client went
// away or broke it.
func (s *mailServer) play(raw net.Conn, script []mailStep) bool {
	br := bufio.NewReader(raw)
	for _, step := range script {
		reply := step.reply
		if step.expect != "" {
			l, err := br.ReadString('\n')
			if err != nil {
				return false
			}
			l = strings.TrimSuffix(l, "\r\n")
			s.mu.Lock()
			s.lines = append(s.lines, l)
			s.mu.Unlock()
			if !regexp.MustCompile(`^(?:` + step.expect + `)$`).MatchString(l) {
				s.errorf("client sent %q, expected %q", l, step.expect)
				return false
			}
			reply = step.replyTo(l)
		}
		if _, err := io.WriteString(raw, reply); err != nil {
			return false
		}
	}
	// The client waits for the last reply before its ClientHello: nothing
	// may be buffered here that the TLS server should read.
	if br.Buffered() != 0 {
		s.errorf("client sent %d bytes before the last plaintext reply", br.Buffered())
		return false
	}
	return true
}

// The scripts of a server that offers and accepts STARTTLS.
var mailOK = map[string][]mailStep{
	"smtp": {
		{"", "220-mail.test ESMTP\r\n220 ready\r\n"},
		{"EHLO .*", "250-mail.test greets you\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"},
		{"STARTTLS", "220 2.0.0 go ahead\r\n"},
	},
	"imap": {
		{"", "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"},
		{`\S+ CAPABILITY`, "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n$tag OK done\r\n"},
		{`\S+ STARTTLS`, "$tag OK begin TLS\r\n"},
	},
	"pop3": {
		{"", "+OK ready\r\n"},
		{"CAPA", "+OK capabilities\r\nUSER\r\nSTLS\r\n.\r\n"},
		{"STLS", "+OK begin TLS\r\n"},
	},
}

// The client's lines for one exchange.
var mailClientLines = map[string][]string{
	"smtp": {"EHLO [127.0.0.1]", "STARTTLS"},
	"imap": {"a001 CAPABILITY", "a002 STARTTLS"},
	"pop3": {"CAPA", "STLS"},
}

// TestStartTLSCheckResumes: check --starttls against the responder, for
// each protocol and each TLS version: every connection made the exchange,
// and the sessions resume by session ID and ticket (TLS 1.2) or by ticket
// (TLS 1.3).
func TestStartTLSCheckResumes(t *testing.T) {
	for _, proto := range []string{"smtp", "imap", "pop3"} {
		for _, p := range protocols() {
			t.Run(proto+"/"+p.name, func(t *testing.T) {
				v := sslsession.TLS12
				if p.name == "TLSv1.3" {
					v = sslsession.TLS13
				}
				srv := startMailServer(t, v, mailOK[proto], thenTLS)
				r := runInProcess("check", srv.addr, "--starttls", proto, p.flag, "-n", "2",
					"--cafile", srv.certPath, "--servername", "localhost", "--require-resume", "--json")
				require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
				var rep map[string]any
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
				assert.Equal(t, true, rep["resumed"])
				assert.Equal(t, p.name, rep["protocol"])
				assert.Equal(t, srv.addr, rep["target"])
				assert.Equal(t, false, rep["embedded"])

				hs := srv.handshakes.Load()
				require.Positive(t, hs)
				assert.Equal(t, hs, srv.scripts.Load(), "every connection made the STARTTLS exchange")
				// TLS 1.2: 2 attempts by session ID and 2 by ticket; TLS
				// 1.3: 2 by ticket.
				wantReused := int64(4)
				if v == sslsession.TLS13 {
					wantReused = 2
				}
				assert.Equal(t, wantReused, srv.reused.Load(), "the server resumed every attempt")
				lines := srv.clientLines()
				require.Equal(t, int(hs)*2, len(lines))
				for i := 0; i < len(lines); i += 2 {
					assert.Equal(t, mailClientLines[proto], lines[i:i+2])
				}
			})
		}
	}
}

// TestStartTLSSaveResume: a session saved through STARTTLS resumes through
// STARTTLS; the save report is the one of a direct TLS server (golden);
// bench resumes through it too.
func TestStartTLSSaveResume(t *testing.T) {
	srv := startMailServer(t, sslsession.TLS12, mailOK["smtp"], thenTLS)
	trust := []string{"--starttls", "smtp", "--cafile", srv.certPath, "--servername", "localhost"}
	file := filepath.Join(t.TempDir(), "golden.pem")
	r := runInProcess(append([]string{"save", srv.addr, "-o", file}, trust...)...)
	require.Equal(t, 0, r.code, r.stderr)
	golden(t, "save.golden", r.stdout)

	r = runBinary(t, append([]string{"resume", srv.addr, "-i", file, "--require-resume"}, trust...)...)
	require.Equal(t, 0, r.code, r.stdout+r.stderr)
	require.Regexp(t, `(?m)^resumed\s+yes$`, r.stdout)
	require.Equal(t, int64(1), srv.reused.Load())

	// Without --starttls the client's ClientHello meets the SMTP greeting.
	greeter := startMailServer(t, 0, mailOK["smtp"][:1], thenHang)
	r = runInProcess("resume", greeter.addr, "-i", file, "--insecure", "--timeout", "2s")
	requireError(t, r, exitError, `^sslsession: TLS handshake with `+regexp.QuoteMeta(greeter.addr)+` failed: `)

	before := srv.reused.Load()
	r = runInProcess(append([]string{"bench", srv.addr, "--duration", "200ms", "--json"}, trust...)...)
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseBench(t, r.stdout)
	requireBench(t, rep, "ticket", true)
	assert.Equal(t, int64(rep.Resumed.Resumed), srv.reused.Load()-before)
	assert.Equal(t, srv.handshakes.Load(), srv.scripts.Load(), "every connection made the STARTTLS exchange")
}

// TestStartTLSErrors: each way a STARTTLS exchange fails, with its exit
// status and its one-line message quoting the server.
func TestStartTLSErrors(t *testing.T) {
	smtpGreeting := mailStep{"", "220 mail.test ESMTP\r\n"}
	cases := []struct {
		name, proto string
		script      []mailStep
		then        string
		want        string // after "sslsession: PROTO STARTTLS with ADDR failed: "
	}{
		{"smtp/not offered", "smtp", []mailStep{smtpGreeting, {"EHLO .*", "250-mail.test\r\n250-STARTTLSX\r\n250 8BITMIME\r\n"}}, thenClose,
			`the server does not offer STARTTLS \(EHLO reply "250-mail\.test \| 250-STARTTLSX \| 250 8BITMIME"\)`},
		{"imap/not offered", "imap", []mailStep{{"", "* OK ready\r\n"}, {"a001 CAPABILITY", "* CAPABILITY IMAP4rev1 LOGINDISABLED\r\na001 OK done\r\n"}}, thenClose,
			`the server does not offer STARTTLS \(CAPABILITY reply "\* CAPABILITY IMAP4rev1 LOGINDISABLED"\)`},
		{"pop3/not offered", "pop3", []mailStep{{"", "+OK ready\r\n"}, {"CAPA", "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"}}, thenClose,
			`the server does not offer STLS \(CAPA reply "\+OK \| USER \| SASL PLAIN"\)`},
		{"pop3/no CAPA", "pop3", []mailStep{{"", "+OK ready\r\n"}, {"CAPA", "-ERR unknown command\r\n"}}, thenClose,
			`the server does not offer STLS \(it refused CAPA: "-ERR unknown command"\)`},
		{"smtp/rejected", "smtp", []mailStep{smtpGreeting, {"EHLO .*", "250-mail.test\r\n250 STARTTLS\r\n"}, {"STARTTLS", "454 4.7.0 TLS not available\r\n"}}, thenClose,
			`the server refused STARTTLS: "454 4\.7\.0 TLS not available"`},
		{"imap/rejected", "imap", []mailStep{{"", "* OK ready\r\n"}, {"a001 CAPABILITY", "* CAPABILITY IMAP4rev1 STARTTLS\r\na001 OK done\r\n"}, {"a002 STARTTLS", "a002 NO not now\r\n"}}, thenClose,
			`the server refused STARTTLS: "a002 NO not now"`},
		{"pop3/rejected", "pop3", []mailStep{{"", "+OK ready\r\n"}, {"CAPA", "+OK\r\nSTLS\r\n.\r\n"}, {"STLS", "-ERR TLS busy\r\n"}}, thenClose,
			`the server refused STLS: "-ERR TLS busy"`},
		{"smtp/refused connection", "smtp", []mailStep{{"", "554 5.3.2 no service\r\n"}}, thenHang,
			`the server refused the connection: "554 5\.3\.2 no service"`},
		{"imap/BYE", "imap", []mailStep{{"", "* BYE too many connections\r\n"}}, thenHang,
			`the server refused the connection: "\* BYE too many connections"`},
		{"imap/PREAUTH", "imap", []mailStep{{"", "* PREAUTH welcome\r\n"}}, thenHang,
			`the server greeted with PREAUTH, in which STARTTLS is not allowed: "\* PREAUTH welcome"`},
		{"smtp/closed after EHLO", "smtp", []mailStep{smtpGreeting, {"EHLO .*", ""}}, thenClose,
			`connection closed by the server while waiting for the reply to EHLO$`},
		{"imap/closed mid-line", "imap", []mailStep{{"", "* OK rea"}}, thenClose,
			`connection closed by the server in the middle of a line while waiting for the greeting: "\* OK rea"$`},
		{"pop3/closed mid-CAPA", "pop3", []mailStep{{"", "+OK ready\r\n"}, {"CAPA", "+OK\r\nUSER\r\n"}}, thenClose,
			`connection closed by the server while waiting for the reply to CAPA$`},
		{"smtp/garbage", "smtp", []mailStep{{"", "\x16\x03\x01\x00\xffHELLO\r\n"}}, thenHang,
			`malformed reply while waiting for the greeting: "\\x16\\x03\\x01\\x00\\xffHELLO"$`},
		{"smtp/mixed codes", "smtp", []mailStep{{"", "220-mail.test\r\n250 ready\r\n"}}, thenHang,
			`malformed reply while waiting for the greeting: "220-mail\.test \| 250 ready"$`},
		{"imap/untagged garbage", "imap", []mailStep{{"", "* OK ready\r\n"}, {"a001 CAPABILITY", "hello there\r\n"}}, thenHang,
			`malformed reply while waiting for the reply to CAPABILITY: "hello there"$`},
		{"pop3/overlong", "pop3", []mailStep{{"", "+OK " + strings.Repeat("A", 5000)}}, thenHang,
			`line longer than 4096 bytes while waiting for the greeting: "\+OK A{156}"\.\.\.$`},
		{"smtp/silent", "smtp", nil, thenHang,
			`timed out waiting for the greeting \(does the server speak smtp on this port\?\)$`},
		{"imap/silent after CAPABILITY", "imap", []mailStep{{"", "* OK ready\r\n"}, {"a001 CAPABILITY", "* CAPABILITY STARTTLS\r\n"}}, thenHang,
			`timed out waiting for the reply to CAPABILITY \(does the server speak imap on this port\?\)$`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := startMailServer(t, 0, c.script, c.then)
			start := time.Now()
			r := runInProcess("save", srv.addr, "-o", filepath.Join(t.TempDir(), "s.pem"), "--starttls", c.proto,
				"--cafile", srv.certPath, "--servername", "localhost", "--timeout", "500ms")
			requireError(t, r, exitError, `^sslsession: `+c.proto+` STARTTLS with `+regexp.QuoteMeta(srv.addr)+` failed: `+c.want)
			require.Empty(t, r.stdout)
			require.Less(t, time.Since(start), 10*time.Second, "--timeout bounds the exchange")
		})
	}

	// Accepted, then no TLS: the handshake's own error.
	t.Run("smtp/accepted then closed", func(t *testing.T) {
		srv := startMailServer(t, 0, mailOK["smtp"], thenClose)
		r := runBinary(t, "check", srv.addr, "--starttls", "smtp", "--cafile", srv.certPath, "--servername", "localhost")
		requireError(t, r, exitError, `^sslsession: TLS handshake with `+regexp.QuoteMeta(srv.addr)+` failed: `)
	})
	// The real binary, for the exit status of a process.
	t.Run("check/not offered", func(t *testing.T) {
		srv := startMailServer(t, 0, []mailStep{smtpGreeting, {"EHLO .*", "250 mail.test\r\n"}}, thenClose)
		r := runBinary(t, "check", srv.addr, "--starttls", "smtp", "--insecure")
		requireError(t, r, exitError, `^sslsession: smtp STARTTLS with `+regexp.QuoteMeta(srv.addr)+` failed: the server does not offer STARTTLS \(EHLO reply "250 mail\.test"\)$`)
	})
}

// TestStartTLSUsage: an unknown protocol, and --starttls without a server
// (the embedded one speaks TLS at once), are usage errors.
func TestStartTLSUsage(t *testing.T) {
	for _, cmd := range []string{"check", "save", "resume", "bench"} {
		args := []string{cmd, "127.0.0.1:1", "--starttls", "ftp"}
		switch cmd {
		case "save":
			args = append(args, "-o", filepath.Join(t.TempDir(), "s.pem"))
		case "resume":
			args = append(args, "-i", filepath.Join("testdata", "session-openssl3-tls12.pem"))
		}
		r := runBinary(t, args...)
		requireError(t, r, exitError, `^sslsession: --starttls "ftp": unknown protocol \(one of imap, pop3, smtp\)$`)
	}
	for _, cmd := range []string{"check", "bench"} {
		r := runInProcess(cmd, "--starttls", "smtp")
		requireError(t, r, exitError, `^sslsession: --starttls needs a host:port: the embedded server speaks TLS at once$`)
	}
}

// TestStartTLSStopsAtReply: the exchange reads nothing past the server's
// last reply; what follows stays on the connection for the TLS handshake.
func TestStartTLSStopsAtReply(t *testing.T) {
	for proto, script := range mailOK {
		t.Run(proto, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				defer server.Close()
				br := bufio.NewReader(server)
				for i, step := range script {
					reply := step.reply
					if step.expect != "" {
						l, err := br.ReadString('\n')
						if err != nil {
							return
						}
						reply = step.replyTo(l)
					}
					if i == len(script)-1 {
						reply += "after" // in the same write as the last reply
					}
					if _, err := io.WriteString(server, reply); err != nil {
						return
					}
				}
			}()
			_ = client.SetDeadline(time.Now().Add(10 * time.Second))
			require.NoError(t, startTLS(client, proto, "pipe"))
			rest, err := io.ReadAll(client)
			require.NoError(t, err)
			require.Equal(t, "after", string(rest))
		})
	}
}

// TestStartTLSResponderInterop: openssl s_client -starttls agrees with the
// responder, which so speaks each protocol as OpenSSL expects.
func TestStartTLSResponderInterop(t *testing.T) {
	for _, proto := range []string{"smtp", "imap", "pop3"} {
		t.Run(proto, func(t *testing.T) {
			script := mailOK[proto]
			if proto == "pop3" {
				// s_client asks for STLS without CAPA.
				script = []mailStep{script[0], script[2]}
			}
			srv := startMailServer(t, sslsession.TLS12, script, thenTLS)
			cmd := exec.Command(opensslBin(t), "s_client", "-connect", srv.addr, "-starttls", proto,
				"-CAfile", srv.certPath, "-verify_return_error")
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Regexp(t, `(?m)^\s*Protocol\s*: TLSv1\.2$`, string(out))
			require.Regexp(t, `(?m)^\s*Verify return code: 0 \(ok\)$`, string(out))
			require.Equal(t, int64(1), srv.handshakes.Load())
		})
	}
}

// TestStartTLSCrossHost: check with several hosts through STARTTLS. Two
// responders sharing one server context (one session cache, one ticket
// key) resume each other's sessions; two with their own do not.
func TestStartTLSCrossHost(t *testing.T) {
	cert, certPath, _ := certFiles(t)
	shared, err := loopback.ServerCtx(cert, loopback.Config{})
	require.NoError(t, err)
	a := startMailServerCtx(t, shared, certPath, mailOK["imap"], thenTLS)
	b := startMailServerCtx(t, shared, certPath, mailOK["imap"], thenTLS)
	args := []string{"check", a.addr, b.addr, "--starttls", "imap", "--cafile", certPath, "--servername", "localhost", "--json"}
	r := runInProcess(append(args, "--require-resume")...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	var rep struct {
		Resumed     bool `json:"resumed"`
		Resumptions []struct {
			From    string `json:"from"`
			To      string `json:"to"`
			Resumed bool   `json:"resumed"`
		} `json:"resumptions"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.True(t, rep.Resumed)
	pairs := map[string]bool{}
	for _, x := range rep.Resumptions {
		if x.From != x.To && x.Resumed {
			pairs[x.From+">"+x.To] = true
		}
	}
	assert.Equal(t, map[string]bool{a.addr + ">" + b.addr: true, b.addr + ">" + a.addr: true}, pairs)
	for _, s := range []*mailServer{a, b} {
		assert.Positive(t, s.reused.Load())
		assert.Equal(t, s.handshakes.Load(), s.scripts.Load(), "every connection made the STARTTLS exchange")
	}

	// Unrelated responders (each its own context): no session crosses.
	c := startMailServer(t, 0, mailOK["imap"], thenTLS)
	r = runInProcess("check", a.addr, c.addr, "--starttls", "imap", "--insecure", "--servername", "localhost", "--json", "--require-resume")
	require.Equal(t, exitNoResume, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	rep.Resumptions = nil
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.False(t, rep.Resumed)
	require.NotEmpty(t, rep.Resumptions)
	for _, x := range rep.Resumptions {
		if x.From != x.To {
			assert.False(t, x.Resumed, "%s > %s", x.From, x.To)
		}
	}
}
