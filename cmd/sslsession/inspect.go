package main

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sslsession/sslsession"
)

// sslsession inspect: what a saved session holds.

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
	line(w, "file", "%s (%s)", esc(r.File), r.Format)
	line(w, "protocol", "%s", r.Protocol)
	line(w, "cipher", "%s (%s)", esc(orNone(r.Cipher)), r.CipherID)
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
		line(w, "peer certificate", "%s", esc(p.Subject))
		line(w, "  issuer", "%s", esc(p.Issuer))
		line(w, "  valid", "%s to %s", p.NotBefore.Format(time.RFC3339), p.NotAfter.Format(time.RFC3339))
		if len(p.DNSNames) > 0 {
			line(w, "  DNS names", "%s", strings.Join(escAll(p.DNSNames), ", "))
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

func ticketText(i sslsession.Info) string {
	if !i.HasTicket {
		return "no"
	}
	return fmt.Sprintf("yes, %d bytes, lifetime hint %d s", i.TicketLength, int64(i.TicketLifetimeHint/time.Second))
}
