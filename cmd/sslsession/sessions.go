package main

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sslsession/sslsession"
)

// ---- save ----

type saveFlags struct {
	conn       connFlags
	out        string
	force      bool
	ticketWait time.Duration
}

func newSaveCmd(out io.Writer) *cobra.Command {
	f := &saveFlags{}
	cmd := &cobra.Command{
		Use:   "save host:port -o FILE",
		Short: "Connect and save the session as PEM (like openssl s_client -sess_out)",
		Long: `save makes a full TLS handshake with host:port and writes the session to
FILE as PEM ("-----BEGIN SSL SESSION PARAMETERS-----"), the format that
openssl sess_id and openssl s_client -sess_in read. With TLS 1.3 it first
reads the server's session tickets and saves the session of the last one. A
session that cannot be resumed is saved anyway, and shown as such.

The file holds the session's master key: it is created with mode 0600, and an
existing file is not overwritten unless --force is given (it is then replaced
by a new file with mode 0600).`,
		Example: `  sslsession save example.com:443 -o sess.pem
  sslsession save 127.0.0.1:4433 --cafile ca.pem --servername localhost -o sess.pem --force`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSave(out, f, args[0])
		},
	}
	f.conn.register(cmd)
	cmd.Flags().StringVarP(&f.out, "out", "o", "", "file to write the session to (required)")
	cmd.Flags().BoolVar(&f.force, "force", false, "replace FILE if it exists")
	cmd.Flags().DurationVar(&f.ticketWait, "ticket-wait", 2*time.Second, "how long to wait for the first TLS 1.3 ticket")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runSave(out io.Writer, f *saveFlags, addr string) error {
	cl, err := newClient(&f.conn, addr, nil)
	if err != nil {
		return err
	}
	if !f.force {
		if _, err := os.Lstat(f.out); err == nil {
			return failf("%s exists; use --force to replace it", f.out)
		}
	}
	ctx, err := cl.newCtx(false)
	if err != nil {
		return err
	}
	c, err := cl.dial(ctx, nil)
	if err != nil {
		return err
	}
	defer c.close()
	if c.SSL().Version() == sslsession.TLS13 {
		// Not Conn.AwaitSession: it returns only when a read returns, which
		// against a server that sends no data is at the end of the wait.
		if _, err := c.collectTickets(false, f.ticketWait, ticketSettle); err != nil {
			return ticketError(addr, err)
		}
	}
	sess, err := c.Session1()
	if err != nil {
		return failf("no session from %s: %s", addr, stripPrefixes(err.Error()))
	}
	defer sess.Close()
	pemData, err := sess.MarshalPEM()
	if err != nil {
		return err
	}
	if err := writeSecret(f.out, pemData, f.force); err != nil {
		return err
	}
	info, err := sess.Info()
	if err != nil {
		return err
	}
	line(out, "saved", "%s", f.out)
	line(out, "protocol", "%s", info.Protocol)
	line(out, "cipher", "%s", info.Cipher)
	line(out, "resumable", "%s", yesNo(info.Resumable))
	line(out, "ticket", "%s", ticketText(info))
	return nil
}

// writeSecret writes data to name with mode 0600. Without replace it fails
// if name exists; with replace it writes a new file beside it and renames
// it over name, so the result has mode 0600 whatever name had.
func writeSecret(name string, data []byte, replace bool) error {
	if !replace {
		fh, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return failf("%s exists; use --force to replace it", name)
			}
			return fileError(err)
		}
		if _, err := fh.Write(data); err != nil {
			fh.Close()
			return fileError(err)
		}
		if err := fh.Close(); err != nil {
			return fileError(err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".sslsession-*")
	if err != nil {
		return fileError(err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fileError(err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fileError(err)
	}
	if err := tmp.Close(); err != nil {
		return fileError(err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fileError(err)
	}
	return nil
}

// ---- resume ----

type resumeFlags struct {
	conn          connFlags
	in            string
	json          bool
	requireResume bool
}

// resumeReport is resume's result; its JSON form is documented in
// docs/cli.md.
type resumeReport struct {
	Target          string   `json:"target"`
	File            string   `json:"file"`
	Offered         *offered `json:"offered"`          // null when the client could not offer the session
	ClientProtocols string   `json:"client_protocols"` // the protocol range the client allowed
	ProtocolsFrom   string   `json:"protocols_from"`   // "session" or "flags"
	Protocol        string   `json:"protocol"`
	Cipher          string   `json:"cipher"`
	Resumed         bool     `json:"resumed"`
	WhyNot          string   `json:"why_not"` // "" when resumed
	HandshakeMS     float64  `json:"handshake_ms"`

	took time.Duration
}

func newResumeCmd(out io.Writer) *cobra.Command {
	f := &resumeFlags{}
	cmd := &cobra.Command{
		Use:   "resume host:port -i FILE",
		Short: "Resume a saved session (like openssl s_client -sess_in)",
		Long: `resume reads a session from FILE (PEM or DER, as written by sslsession save,
openssl s_client -sess_out or openssl sess_id), offers it to host:port and
reports whether the server resumed it.`,
		Example: `  sslsession resume example.com:443 -i sess.pem
  sslsession resume 127.0.0.1:4433 --insecure -i sess.pem --require-resume`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runResume(out, f, args[0])
		},
	}
	f.conn.register(cmd)
	cmd.Flags().StringVarP(&f.in, "in", "i", "", "session file to resume, PEM or DER (required)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&f.requireResume, "require-resume", false, "exit with status 1 when the session was not resumed")
	_ = cmd.MarkFlagRequired("in")
	return cmd
}

func runResume(out io.Writer, f *resumeFlags, addr string) error {
	cl, err := newClient(&f.conn, addr, nil)
	if err != nil {
		return err
	}
	sess, _, err := readSession(f.in)
	if err != nil {
		return err
	}
	defer sess.Close()
	off, err := offerOf(sess, false)
	if err != nil {
		return malformedError(f.in, err)
	}
	rep := resumeReport{Target: addr, File: f.in, ProtocolsFrom: "default"}
	if cl.min != 0 || cl.max != 0 {
		rep.ProtocolsFrom = "flags"
	}
	// A session resumes only under its own protocol: without a version flag
	// the client offers at most the session's, so that a TLS 1.2 session is
	// not dropped for a TLS 1.3 handshake.
	if cl.min == 0 && cl.max == 0 && off.version >= sslsession.TLS12 && off.version < sslsession.MaxSupportedVersion() {
		cl.max = off.version
		rep.ProtocolsFrom = "session"
	}
	rep.ClientProtocols = rangeText(cl.min, cl.max)
	notOffered := off.outOfRange(cl.min, cl.max)
	if notOffered == "" {
		rep.Offered = off
	}
	ctx, err := cl.newCtx(false)
	if err != nil {
		return err
	}
	c, err := cl.dial(ctx, sess)
	if err != nil {
		return err
	}
	rep.Protocol = c.SSL().Version().String()
	rep.Cipher = c.SSL().Cipher()
	rep.Resumed = c.SessionReused()
	rep.took = c.handshake
	if !rep.Resumed {
		switch {
		case notOffered != "":
			rep.WhyNot = "not offered: " + notOffered
		default:
			tickets := 0
			if c.SSL().Version() == sslsession.TLS13 {
				if tickets, err = c.collectTickets(false, time.Second, ticketSettle); err != nil {
					c.close()
					return ticketError(addr, err)
				}
			}
			next, _ := c.Session1()
			rep.WhyNot = whyNot(off, c, next, tickets)
			if next != nil {
				next.Close()
			}
		}
	}
	c.close()
	rep.HandshakeMS = durationMS(rep.took)
	if f.json {
		if err := writeJSON(out, rep); err != nil {
			return err
		}
	} else {
		line(out, "target", "%s", rep.Target)
		line(out, "session", "%s", rep.File)
		if rep.Offered != nil {
			line(out, "offered", "%s", rep.Offered)
		} else {
			line(out, "offered", "nothing")
		}
		from := map[string]string{"session": "the session's protocol", "flags": "--tls1.2/--tls1.3", "default": "default"}[rep.ProtocolsFrom]
		line(out, "client protocols", "%s (%s)", rep.ClientProtocols, from)
		line(out, "protocol", "%s", rep.Protocol)
		line(out, "cipher", "%s", rep.Cipher)
		line(out, "handshake", "%s", fmtMS(rep.took))
		line(out, "resumed", "%s", yesNo(rep.Resumed))
		if !rep.Resumed {
			line(out, "why not", "%s", rep.WhyNot)
		}
	}
	if f.requireResume && !rep.Resumed {
		return errNotResumed
	}
	return nil
}

// readSession reads and decodes a session file, PEM or DER. It returns the
// format found.
func readSession(name string) (*sslsession.Session, string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, "", fileError(err)
	}
	format := "DER"
	if bytes.Contains(data[:min(len(data), 4096)], []byte("-----BEGIN")) {
		format = "PEM"
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, "", failf("%s is not an SSL session: the file is empty", name)
	}
	sess, err := sslsession.Parse(data)
	if err != nil {
		if newerFormat(data, err) {
			return nil, "", failf("%s was probably written by a newer OpenSSL, whose session format OpenSSL %s cannot read (%s)",
				name, sslsession.RuntimeVersion(), opensslReasons(err))
		}
		return nil, "", malformedError(name, err)
	}
	return sess, format, nil
}

// newerFormat reports whether a session that failed to decode is one that
// a newer OpenSSL wrote: the decoder gave up on a field it does not know
// (1.0.2: "asn1 length mismatch" in the session parser; 1.1.1: "wrong tag"
// in a field of SSL_SESSION_ASN1) after the start of the data parsed as a
// session: a DER SEQUENCE of exactly the data's length opening with the
// format version 1 and a TLS protocol version.
func newerFormat(data []byte, err error) bool {
	reasons := opensslReasons(err)
	if !strings.Contains(reasons, "asn1 length mismatch") && !strings.Contains(reasons, "wrong tag") {
		return false
	}
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "SSL SESSION PARAMETERS" {
			return false
		}
		data = b.Bytes
	}
	var raw asn1.RawValue
	rest, e := asn1.Unmarshal(data, &raw)
	if e != nil || len(rest) != 0 || raw.Tag != asn1.TagSequence {
		return false
	}
	// Only the first two fields: the rest is whatever the newer format has.
	var format, proto int
	r, e := asn1.Unmarshal(raw.Bytes, &format)
	if e != nil || format != 1 {
		return false
	}
	if _, e = asn1.Unmarshal(r, &proto); e != nil {
		return false
	}
	return proto >= 0x0300 && proto <= 0x0304
}

// ---- inspect ----

type inspectFlags struct {
	json       bool
	showSecret bool
}

// inspectReport is what inspect shows; its JSON form is documented in
// docs/cli.md and never holds the master key.
type inspectReport struct {
	File               string    `json:"file"`
	Format             string    `json:"format"`
	Protocol           string    `json:"protocol"`
	Cipher             string    `json:"cipher"`
	CipherID           string    `json:"cipher_id"`
	SessionID          string    `json:"session_id"`
	SessionIDContext   string    `json:"session_id_context"`
	Created            time.Time `json:"created"`
	TimeoutSeconds     int64     `json:"timeout_seconds"`
	Expires            time.Time `json:"expires"`
	ExpiresBy          string    `json:"expires_by"` // "timeout" or "ticket_lifetime_hint": what bounds expires
	Expired            bool      `json:"expired"`
	Resumable          bool      `json:"resumable"`
	Ticket             bool      `json:"ticket"`
	TicketLength       int       `json:"ticket_length"`
	TicketLifetimeHint int64     `json:"ticket_lifetime_hint_seconds"`
	PeerCertificate    *peerCert `json:"peer_certificate"`
	masterKey          []byte    // only with --show-secret, only in human output
	info               sslsession.Info
}

// peerCert is the part of the server certificate stored in a session that
// inspect shows.
type peerCert struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	DNSNames  []string  `json:"dns_names"`
}

func newInspectCmd(out io.Writer) *cobra.Command {
	f := &inspectFlags{}
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a saved session, PEM or DER (like openssl sess_id -text -noout)",
		Long: `inspect decodes a session file, PEM or DER (as written by sslsession save,
openssl s_client -sess_out or openssl sess_id), and shows what it holds:
protocol, cipher, session ID and its context, creation time and timeout,
whether it is resumable, its ticket and the server certificate.

The master key is shown only with --show-secret, and never in --json output:
--json with --show-secret is refused.`,
		Example: `  sslsession inspect sess.pem
  sslsession inspect --json sess.der
  sslsession inspect --show-secret sess.pem`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(out, f, args[0])
		},
	}
	cmd.Flags().BoolVar(&f.json, "json", false, "print the session as JSON (without the master key)")
	cmd.Flags().BoolVar(&f.showSecret, "show-secret", false, "also show the master key (human output only)")
	return cmd
}

func runInspect(out io.Writer, f *inspectFlags, name string) error {
	if f.json && f.showSecret {
		return usageError("--show-secret cannot be used with --json: the master key is never written as JSON")
	}
	sess, format, err := readSession(name)
	if err != nil {
		return err
	}
	defer sess.Close()
	info, err := sess.Info()
	if err != nil {
		return malformedError(name, err)
	}
	rep := inspectReport{
		File:               name,
		Format:             format,
		Protocol:           info.Protocol.String(),
		Cipher:             info.Cipher,
		CipherID:           fmt.Sprintf("0x%04X", info.CipherID&0xffff),
		SessionID:          strings.ToUpper(hex.EncodeToString(info.ID)),
		SessionIDContext:   strings.ToUpper(hex.EncodeToString(info.IDContext)),
		Created:            info.Created.UTC(),
		TimeoutSeconds:     int64(info.Timeout / time.Second),
		Resumable:          info.Resumable,
		Ticket:             info.HasTicket,
		TicketLength:       info.TicketLength,
		TicketLifetimeHint: int64(info.TicketLifetimeHint / time.Second),
		info:               info,
	}
	rep.Expires, rep.ExpiresBy = expiry(info)
	rep.Expired = !time.Now().Before(rep.Expires)
	rep.Resumable = info.Resumable && !rep.Expired
	if cert, err := sess.PeerCertificate(); err == nil && cert != nil {
		rep.PeerCertificate = certInfo(cert)
	}
	if f.showSecret {
		if rep.masterKey, err = sess.MasterKey(); err != nil {
			return err
		}
	}
	if f.json {
		return writeJSON(out, rep)
	}
	writeInspect(out, &rep)
	return nil
}

// expiry is the earliest time the session says it stops being usable: its
// timeout, or the server's ticket lifetime hint when that is shorter (a
// server does not honour a ticket after the lifetime it announced, and
// OpenSSL's client keeps its own, longer, timeout). A hint of 0 means none
// was given.
func expiry(info sslsession.Info) (time.Time, string) {
	exp, by := info.Expires().UTC(), "timeout"
	if info.HasTicket && info.TicketLifetimeHint > 0 && info.TicketLifetimeHint < info.Timeout {
		exp, by = info.Created.Add(info.TicketLifetimeHint).UTC(), "ticket_lifetime_hint"
	}
	return exp, by
}

func certInfo(c *x509.Certificate) *peerCert {
	names := c.DNSNames
	if names == nil {
		names = []string{}
	}
	return &peerCert{
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		DNSNames:  names,
	}
}

func writeInspect(w io.Writer, r *inspectReport) {
	line(w, "file", "%s (%s)", r.File, r.Format)
	line(w, "protocol", "%s", r.Protocol)
	line(w, "cipher", "%s (%s)", orNone(r.Cipher), r.CipherID)
	if r.SessionID == "" {
		line(w, "session ID", "none")
	} else {
		line(w, "session ID", "%s (%d bytes)", r.SessionID, len(r.SessionID)/2)
	}
	if r.SessionIDContext == "" {
		line(w, "session ID context", "none")
	} else {
		line(w, "session ID context", "%s (%d bytes)", r.SessionIDContext, len(r.SessionIDContext)/2)
	}
	line(w, "created", "%s", r.Created.Format(time.RFC3339))
	line(w, "timeout", "%d s", r.TimeoutSeconds)
	by := "the session's timeout"
	if r.ExpiresBy == "ticket_lifetime_hint" {
		by = fmt.Sprintf("the ticket lifetime hint, %d s, shorter than the timeout", r.TicketLifetimeHint)
	}
	verb := "expires"
	if r.Expired {
		verb = "expired"
	}
	line(w, verb, "%s (%s)", r.Expires.Format(time.RFC3339), by)
	switch {
	case r.Resumable:
		line(w, "resumable", "yes")
	case r.Expired && r.info.Resumable:
		line(w, "resumable", "no (expired)")
	default:
		line(w, "resumable", "no")
	}
	line(w, "ticket", "%s", ticketText(r.info))
	if p := r.PeerCertificate; p != nil {
		line(w, "peer certificate", "%s", p.Subject)
		line(w, "  issuer", "%s", p.Issuer)
		line(w, "  valid", "%s to %s", p.NotBefore.Format(time.RFC3339), p.NotAfter.Format(time.RFC3339))
		if len(p.DNSNames) > 0 {
			line(w, "  DNS names", "%s", strings.Join(p.DNSNames, ", "))
		}
	} else {
		line(w, "peer certificate", "none")
	}
	if r.masterKey != nil {
		line(w, "master key", "%s", strings.ToUpper(hex.EncodeToString(r.masterKey)))
	} else {
		line(w, "master key", "hidden (--show-secret shows it)")
	}
}

// ---- shared ----

func ticketText(i sslsession.Info) string {
	if !i.HasTicket {
		return "no"
	}
	return fmt.Sprintf("yes, %d bytes, lifetime hint %d s", i.TicketLength, int64(i.TicketLifetimeHint/time.Second))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
