package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/sslsession/sslsession"
)

// Exit statuses.
const (
	exitOK       = 0 // success
	exitNoResume = 1 // --require-resume and the session was not resumed
	exitError    = 2 // any error: network, TLS, certificate, file, usage
)

// cliError is an error that ends the command with a given status and a
// message that is already one line naming the cause.
type cliError struct {
	code int
	msg  string
}

func (e *cliError) Error() string { return e.msg }

// failf makes an error that exits with status 2 and the formatted message.
func failf(format string, a ...any) error {
	return &cliError{code: exitError, msg: oneLine(fmt.Sprintf(format, a...))}
}

// usageError is a command-line mistake; it also exits with status 2.
func usageError(format string, a ...any) error {
	return &cliError{code: exitError, msg: oneLine(fmt.Sprintf(format, a...))}
}

// errNotResumed ends a command run with --require-resume whose session was
// not resumed: exit status 1.
var errNotResumed = &cliError{code: exitNoResume, msg: "session was not resumed (--require-resume)"}

// exitCode maps an error returned by a command to the process's exit status
// and the one line printed for it.
func exitCode(err error) (int, string) {
	if err == nil {
		return exitOK, ""
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code, ce.msg
	}
	return exitError, oneLine(strings.TrimPrefix(err.Error(), "sslsession: "))
}

// oneLine joins a multi-line message (OpenSSL's error queue is printed one
// entry a line by spacemonkeygo) into one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// netError describes a failure to connect to addr: name resolution,
// refusal, unreachable network or host, timeout.
func netError(addr string, err error) error {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return failf("cannot resolve host %q: %s", dns.Name, dns.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return failf("connection to %s refused", addr)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return failf("host %s unreachable: %s", addr, syscallText(err))
	case isTimeout(err):
		return failf("connection to %s timed out", addr)
	case errors.Is(err, syscall.ECONNRESET):
		return failf("connection to %s reset by peer", addr)
	}
	return failf("cannot connect to %s: %s", addr, stripPrefixes(err.Error()))
}

// handshakeError describes a failed TLS handshake with addr: an alert from
// the server, a protocol failure, a timeout or a closed connection.
func handshakeError(addr string, err error) error {
	switch {
	case isTimeout(err):
		return failf("TLS handshake with %s timed out", addr)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		strings.Contains(err.Error(), "protocol-violating EOF"):
		return failf("TLS handshake with %s failed: connection closed by the server", addr)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return failf("TLS handshake with %s failed: connection reset by the server", addr)
	}
	return failf("TLS handshake with %s failed: %s", addr, opensslReasons(err))
}

// isClosed reports whether err is the peer closing the connection, with or
// without a close_notify.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "protocol-violating EOF")
}

// afterHandshakeError describes an alert or failure that the server sent
// after the client finished its side of the handshake: with TLS 1.3, a
// server that rejects or requires a client certificate says so only then.
func afterHandshakeError(addr string, err error) error {
	reasons := opensslReasons(err)
	if strings.Contains(reasons, "certificate required") {
		return failf("TLS handshake with %s failed: the server requires a client certificate (alert certificate_required); give one with --cert and --key", addr)
	}
	return failf("TLS handshake with %s failed after the client's side of it: %s", addr, reasons)
}

// ticketError describes a failure while reading session tickets; errors
// already described (an alert) pass through.
func ticketError(addr string, err error) error {
	var ce *cliError
	if errors.As(err, &ce) {
		return err
	}
	return failf("reading session tickets from %s: %s", addr, stripPrefixes(err.Error()))
}

// opensslReasons extracts the reason texts from an error of spacemonkeygo
// ("SSL errors: lib:func:reason" one entry a line) or of sslsession
// (*sslsession.Error); the library and function names are noise to a user.
func opensslReasons(err error) string {
	var se *sslsession.Error
	var entries []string
	if errors.As(err, &se) {
		entries = se.Queue
	} else {
		msg := err.Error()
		if i := strings.Index(msg, "SSL errors: "); i >= 0 {
			msg = msg[i+len("SSL errors: "):] // after the "handshake with ...: " of Dial
		}
		entries = strings.Split(msg, "\n")
	}
	var out []string
	seen := map[string]bool{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		// "lib:func:reason", "error:0A000410:SSL routines::sslv3 alert ..."
		parts := strings.Split(e, ":")
		r := strings.TrimSpace(parts[len(parts)-1])
		if r == "" {
			r = e
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return stripPrefixes(err.Error())
	}
	return strings.Join(out, "; ")
}

// dialError describes a failed sslsession.Dial: the connect, the
// handshake, or the certificate checks.
func dialError(addr string, err error) error {
	var ve *sslsession.VerifyError
	switch {
	case errors.As(err, &ve):
		return certError(ve)
	case errors.Is(err, sslsession.ErrHandshake):
		return handshakeError(addr, err)
	case errors.Is(err, sslsession.ErrIO):
		return netError(addr, err)
	}
	return failf("cannot set up the TLS client: %s", stripPrefixes(err.Error()))
}

// certError describes a certificate that failed verification. A resumed
// handshake sends no certificate: OpenSSL then reports the result stored in
// the session, and the certificate checked is the one stored in it, from
// the handshake that made the session.
func certError(ve *sslsession.VerifyError) error {
	switch {
	case ve.Name != "" && ve.Resumed:
		return failf("certificate of %s is not valid for %q (the certificate stored in the resumed session, from the handshake that made it)", ve.Addr, ve.Name)
	case ve.Name != "":
		return failf("certificate of %s is not valid for %q", ve.Addr, ve.Name)
	case ve.Resumed:
		return failf("certificate of %s not trusted: %s (X509 error %d, as stored in the resumed session)", ve.Addr, sslsession.VerifyErrorString(ve.Result), ve.Result)
	}
	return failf("certificate of %s not trusted: %s (X509 error %d)", ve.Addr, sslsession.VerifyErrorString(ve.Result), ve.Result)
}

// fileError describes a file that cannot be read or written.
func fileError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return failf("cannot %s %s: %s", pathOp(pe.Op), pe.Path, syscallText(pe.Err))
	}
	return failf("%s", stripPrefixes(err.Error()))
}

func pathOp(op string) string {
	switch op {
	case "open", "read":
		return "read"
	}
	return op
}

// malformedError describes a file that is not an SSL session.
func malformedError(name string, err error) error {
	var se *sslsession.Error
	if !errors.As(err, &se) {
		return failf("%s is not an SSL session: %s", name, stripPrefixes(err.Error()))
	}
	// "is not an SSL session" already says what ErrMalformed says.
	msg := se.Func + " failed"
	if se.Err != nil {
		detail := strings.TrimPrefix(stripPrefixes(se.Err.Error()), "malformed session data")
		if detail = strings.TrimPrefix(detail, ": "); detail != "" {
			msg += ": " + detail
		}
	}
	if len(se.Queue) > 0 {
		msg += ": " + opensslReasons(&sslsession.Error{Queue: se.Queue})
	}
	return failf("%s is not an SSL session: %s", name, msg)
}

// stripPrefixes removes the package prefixes of nested error texts.
func stripPrefixes(s string) string {
	return oneLine(strings.ReplaceAll(s, "sslsession: ", ""))
}

// syscallText is the text of the innermost errno, or of err.
func syscallText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
