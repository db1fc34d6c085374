package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sslsession/sslsession"
)

// sslsession resume: offer a saved session and report whether it resumed.

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
		line(out, "target", "%s", esc(rep.Target))
		line(out, "session", "%s", esc(rep.File))
		if rep.Offered != nil {
			line(out, "offered", "%s", esc(rep.Offered.String()))
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
			line(out, "why not", "%s", esc(rep.WhyNot))
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
	data, err := readInput(name, "session file")
	if err != nil {
		return nil, "", err
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
		if errors.Is(err, sslsession.ErrNewerFormat) {
			var why string
			if se := (*sslsession.Error)(nil); errors.As(err, &se) && len(se.Queue) > 0 {
				why = opensslReasons(err)
			} else { // refused before OpenSSL's decoder ran (1.0.2): the library names the field
				msg := err.Error()
				why = msg[strings.LastIndex(msg, ": ")+2:]
			}
			return nil, "", failf("%s was probably written by a newer OpenSSL, whose session format OpenSSL %s cannot read (%s)",
				name, sslsession.RuntimeVersion(), why)
		}
		return nil, "", malformedError(name, err)
	}
	return sess, format, nil
}
