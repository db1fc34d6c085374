package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
)

// STARTTLS: the plaintext exchange a mail server wants before TLS, as
// openssl s_client -starttls and testssl.sh speak it: SMTP (RFC 3207),
// IMAP and POP3 (RFC 2595). It runs on the connected socket through
// sslsession.DialConfig.BeforeHandshake, under --timeout.

// starttlsProtocols are the protocols --starttls accepts, by name.
var starttlsProtocols = map[string]func(*mailConn) error{
	"smtp": smtpStartTLS,
	"imap": imapStartTLS,
	"pop3": pop3StartTLS,
}

// starttlsNames lists the protocols for messages and help.
func starttlsNames() string {
	names := make([]string, 0, len(starttlsProtocols))
	for n := range starttlsProtocols {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Limits of a server's plaintext replies. RFC 5321 allows 512 octets per
// reply line; servers list long capabilities, so allow more, but bound a
// server that never ends a line or a reply.
const (
	mailMaxLine  = 4096
	mailMaxLines = 200
)

// mailConn is the socket during a STARTTLS exchange. It reads one byte at
// a time: nothing past the server's last plaintext reply may be consumed,
// since the TLS handshake reads on from there.
type mailConn struct {
	conn  net.Conn
	proto string
	addr  string
	wait  string // what the client is waiting for, for messages
}

// startTLS runs the STARTTLS exchange of proto on conn; errors are
// *cliError, one line naming the server and the cause.
func startTLS(conn net.Conn, proto, addr string) error {
	run, ok := starttlsProtocols[proto]
	if !ok {
		return usageError("--starttls %q: unknown protocol (one of %s)", proto, starttlsNames())
	}
	return run(&mailConn{conn: conn, proto: proto, addr: addr})
}

// failf makes the error of a failed exchange.
func (m *mailConn) failf(format string, a ...any) error {
	return failf("%s STARTTLS with %s failed: %s", m.proto, m.addr, fmt.Sprintf(format, a...))
}

// ioError describes a read or write that failed while waiting for m.wait.
func (m *mailConn) ioError(err error) error {
	switch {
	case isTimeout(err):
		return m.failf("timed out waiting for %s (does the server speak %s on this port?)", m.wait, m.proto)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return m.failf("connection closed by the server while waiting for %s", m.wait)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return m.failf("connection reset by the server while waiting for %s", m.wait)
	}
	return m.failf("%s while waiting for %s", syscallText(err), m.wait)
}

// send writes one command line and sets what is awaited next.
func (m *mailConn) send(cmd, wait string) error {
	m.wait = wait
	if _, err := io.WriteString(m.conn, cmd+"\r\n"); err != nil {
		return m.ioError(err)
	}
	return nil
}

// readLine reads one line, without its CRLF (or bare LF).
func (m *mailConn) readLine() (string, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := m.conn.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				return strings.TrimSuffix(string(line), "\r"), nil
			}
			if len(line) >= mailMaxLine {
				return "", m.failf("line longer than %d bytes while waiting for %s: %s", mailMaxLine, m.wait, quoteReply(string(line)))
			}
			line = append(line, b[0])
			continue
		}
		if err != nil {
			if len(line) > 0 && errors.Is(err, io.EOF) {
				return "", m.failf("connection closed by the server in the middle of a line while waiting for %s: %s", m.wait, quoteReply(string(line)))
			}
			return "", m.ioError(err)
		}
	}
}

// quoteReply quotes a server's text for a message: at most 160 bytes,
// control and non-ASCII characters escaped.
func quoteReply(s string) string {
	const max = 160
	if len(s) > max {
		return fmt.Sprintf("%+q...", s[:max])
	}
	return fmt.Sprintf("%+q", s)
}

// quoteLines quotes a multi-line reply, its lines joined by " | ".
func quoteLines(lines []string) string { return quoteReply(strings.Join(lines, " | ")) }

// smtpReply is one SMTP reply: its code and its lines' text.
type smtpReply struct {
	code  string
	lines []string // the whole lines, code included
	texts []string // the text after "250-" / "250 "
}

// readSMTPReply reads a reply, one line or several ("250-..." lines, then
// "250 ..."), all with the same code (RFC 5321 section 4.2.1).
func (m *mailConn) readSMTPReply() (*smtpReply, error) {
	r := &smtpReply{}
	for len(r.lines) < mailMaxLines {
		l, err := m.readLine()
		if err != nil {
			return nil, err
		}
		r.lines = append(r.lines, l)
		if len(l) < 3 || !isDigits(l[:3]) || (len(l) > 3 && l[3] != ' ' && l[3] != '-') ||
			(r.code != "" && l[:3] != r.code) {
			return nil, m.failf("malformed reply while waiting for %s: %s", m.wait, quoteLines(r.lines))
		}
		r.code = l[:3]
		text := ""
		if len(l) > 4 {
			text = l[4:]
		}
		r.texts = append(r.texts, text)
		if len(l) == 3 || l[3] == ' ' {
			return r, nil
		}
	}
	return nil, m.failf("reply of more than %d lines while waiting for %s", mailMaxLines, m.wait)
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// smtpStartTLS: the 220 greeting, EHLO, STARTTLS in the 250 reply's
// keywords, STARTTLS, 220.
func smtpStartTLS(m *mailConn) error {
	m.wait = "the greeting"
	r, err := m.readSMTPReply()
	if err != nil {
		return err
	}
	if r.code != "220" {
		return m.failf("the server refused the connection: %s", quoteLines(r.lines))
	}
	if err := m.send("EHLO "+ehloName(m.conn), "the reply to EHLO"); err != nil {
		return err
	}
	if r, err = m.readSMTPReply(); err != nil {
		return err
	}
	if r.code != "250" {
		return m.failf("the server refused EHLO: %s", quoteLines(r.lines))
	}
	offered := false
	for _, text := range r.texts[1:] { // the first line is the server's name
		if f := strings.Fields(text); len(f) > 0 && strings.EqualFold(f[0], "STARTTLS") {
			offered = true
		}
	}
	if !offered {
		return m.failf("the server does not offer STARTTLS (EHLO reply %s)", quoteLines(r.lines))
	}
	if err := m.send("STARTTLS", "the reply to STARTTLS"); err != nil {
		return err
	}
	if r, err = m.readSMTPReply(); err != nil {
		return err
	}
	if r.code != "220" {
		return m.failf("the server refused STARTTLS: %s", quoteLines(r.lines))
	}
	return nil
}

// ehloName is the client's address literal (RFC 5321 section 4.1.3), the
// name a client without a domain name sends: it reveals nothing the
// server does not see already.
func ehloName(conn net.Conn) string {
	a, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok {
		return "[127.0.0.1]"
	}
	if ip4 := a.IP.To4(); ip4 != nil {
		return "[" + ip4.String() + "]"
	}
	return "[IPv6:" + a.IP.String() + "]"
}

// imapStartTLS: the "* OK" greeting, a001 CAPABILITY listing STARTTLS,
// a002 STARTTLS, a002 OK (RFC 3501 sections 6.1.1 and 6.2.1).
func imapStartTLS(m *mailConn) error {
	m.wait = "the greeting"
	g, err := m.readLine()
	if err != nil {
		return err
	}
	switch word := strings.ToUpper(imapWord(g, 1)); {
	case imapWord(g, 0) != "*" || (word != "OK" && word != "PREAUTH" && word != "BYE"):
		return m.failf("malformed greeting: %s", quoteReply(g))
	case word == "BYE":
		return m.failf("the server refused the connection: %s", quoteReply(g))
	case word == "PREAUTH":
		// STARTTLS is a command of the not-authenticated state only.
		return m.failf("the server greeted with PREAUTH, in which STARTTLS is not allowed: %s", quoteReply(g))
	}
	if err := m.send("a001 CAPABILITY", "the reply to CAPABILITY"); err != nil {
		return err
	}
	var caps []string
	offered := false
	status, err := m.imapTagged("a001", func(l string) {
		if strings.EqualFold(imapWord(l, 1), "CAPABILITY") {
			caps = append(caps, l)
			for _, c := range strings.Fields(l)[2:] {
				if strings.EqualFold(c, "STARTTLS") {
					offered = true
				}
			}
		}
	})
	if err != nil {
		return err
	}
	if !strings.EqualFold(imapWord(status, 1), "OK") {
		return m.failf("the server refused CAPABILITY: %s", quoteReply(status))
	}
	if !offered {
		if len(caps) == 0 {
			caps = []string{status}
		}
		return m.failf("the server does not offer STARTTLS (CAPABILITY reply %s)", quoteLines(caps))
	}
	if err := m.send("a002 STARTTLS", "the reply to STARTTLS"); err != nil {
		return err
	}
	if status, err = m.imapTagged("a002", func(string) {}); err != nil {
		return err
	}
	if !strings.EqualFold(imapWord(status, 1), "OK") {
		return m.failf("the server refused STARTTLS: %s", quoteReply(status))
	}
	return nil
}

// imapWord is the i-th space-separated word of an IMAP line, or "".
func imapWord(l string, i int) string {
	f := strings.Fields(l)
	if i < len(f) {
		return f[i]
	}
	return ""
}

// imapTagged reads untagged lines ("* ...", handed to untagged) until the
// line tagged tag, which it returns.
func (m *mailConn) imapTagged(tag string, untagged func(string)) (string, error) {
	for n := 0; n < mailMaxLines; n++ {
		l, err := m.readLine()
		if err != nil {
			return "", err
		}
		switch imapWord(l, 0) {
		case tag:
			return l, nil
		case "*":
			untagged(l)
		default:
			return "", m.failf("malformed reply while waiting for %s: %s", m.wait, quoteReply(l))
		}
	}
	return "", m.failf("reply of more than %d lines while waiting for %s", mailMaxLines, m.wait)
}

// pop3StartTLS: the "+OK" greeting, CAPA listing STLS, STLS, "+OK"
// (RFC 2449 and RFC 2595 section 4).
func pop3StartTLS(m *mailConn) error {
	m.wait = "the greeting"
	g, err := m.readLine()
	if err != nil {
		return err
	}
	if err := m.pop3Status(g, "the server refused the connection: %s"); err != nil {
		return err
	}
	if err := m.send("CAPA", "the reply to CAPA"); err != nil {
		return err
	}
	l, err := m.readLine()
	if err != nil {
		return err
	}
	if err := m.pop3Status(l, "the server does not offer STLS (it refused CAPA: %s)"); err != nil {
		return err
	}
	caps := []string{l}
	offered := false
	for {
		if len(caps) > mailMaxLines {
			return m.failf("reply of more than %d lines while waiting for %s", mailMaxLines, m.wait)
		}
		c, err := m.readLine()
		if err != nil {
			return err
		}
		if c == "." {
			break
		}
		caps = append(caps, c)
		if strings.EqualFold(imapWord(c, 0), "STLS") {
			offered = true
		}
	}
	if !offered {
		return m.failf("the server does not offer STLS (CAPA reply %s)", quoteLines(caps))
	}
	if err := m.send("STLS", "the reply to STLS"); err != nil {
		return err
	}
	if l, err = m.readLine(); err != nil {
		return err
	}
	return m.pop3Status(l, "the server refused STLS: %s")
}

// pop3Status checks a status line: nil for "+OK", the refusal (format
// with the quoted line) for "-ERR", else a malformed reply.
func (m *mailConn) pop3Status(l, refused string) error {
	switch strings.ToUpper(imapWord(l, 0)) {
	case "+OK":
		return nil
	case "-ERR":
		return m.failf(refused, quoteReply(l))
	}
	return m.failf("malformed reply while waiting for %s: %s", m.wait, quoteReply(l))
}
