package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/spf13/cobra"

	"github.com/sslsession/sslsession"
)

// checkFlags are the flags of sslsession check.
type checkFlags struct {
	conn          connFlags
	attempts      int
	json          bool
	requireResume bool
	ticketWait    time.Duration
	rate          int           // --rate: attempts per mechanism through one address
	requireRate   float64       // --require-rate
	watch         time.Duration // --watch: how long to audit ticket keys
	every         time.Duration // --every: the probe interval of --watch
	progress      string
	// --early-data: the TLS 1.3 early data and replay check (earlydata.go)
	earlyData       bool
	requireNoReplay bool
	earlyRequest    string
}

// ticketSettle is how long collectTickets waits for another TLS 1.3 ticket
// after one arrived. Servers send theirs back to back (OpenSSL: two by
// default); the margin is for a loaded machine.
const ticketSettle = 250 * time.Millisecond

func newCheckCmd(out io.Writer) *cobra.Command {
	f := &checkFlags{}
	cmd := &cobra.Command{
		Use:   "check [host:port ...]",
		Short: "Check session resumption: a full handshake, then resumptions by session ID and by ticket",
		Long: `check makes a full TLS handshake with the server, then reconnects -n times
offering the session, separately for the two ways TLS 1.2 resumes:

  session ID  the client refuses tickets (SSL_OP_NO_TICKET), so the server
              can resume only from its session-ID cache;
  ticket      the client offers the session with the ticket the server sent.

Each attempt offers the newest resumable session the client has. Whether a
handshake resumed is what OpenSSL says (SSL_session_reused). TLS 1.3 has no
session-ID resumption: it resumes from tickets, which the server sends after
the handshake; check counts the tickets received.

The report gives the protocol, cipher, session ID length, ticket and its
lifetime hint, and for each mechanism whether each attempt resumed, the full
and resumed handshake times (the TLS handshake alone, without the TCP
connect) and the speedup (full / median resumed).

Without --tls1.2 or --tls1.3, check checks the protocol the server
negotiates and, when that is TLS 1.3, TLS 1.2 too; --require-resume then
asks for resumption under each.

Without host:port, check starts an embedded TLS server on 127.0.0.1 with a
self-signed certificate made at start (session cache and tickets on), trusts
that certificate, and checks it: this needs no network.

With several hosts (a fleet sharing sessions), check makes a full handshake
with each host and offers that session to every host, itself included, for
every mechanism of the protocol (TLS 1.2: session ID and ticket; TLS 1.3:
ticket), and shows the matrix. One client context serves every host, and
one server name (--servername, default the hosts' shared host part) is sent
to every host: servers resume a session only under the name it was made
for. --require-resume then asks that every ordered pair of distinct hosts
resumed by at least one mechanism, under every protocol checked. Two hosts
that reach one IP:port are refused.

With --rate N and one host:port (a load balancer's), check makes N attempts
per protocol and mechanism, each a new full handshake and a new connection
offering its session, and reports the resumption rate of each, with the
server certificates and ticket key names seen; --require-rate R exits 1
unless, under every protocol, some mechanism reaches R.

With --watch D, every --every I for D, check makes a full handshake, reads
its ticket's key name (its first 16 bytes) and offers the oldest ticket of
each key name still resuming: it reports how long each key issued, whether
tickets of a key rotated out still resume (the overlap), and the oldest
ticket that resumed.

--rate and --watch draw a progress bar on a terminal; Ctrl-C ends them with
the report so far.

With --early-data, check asks whether the server accepts TLS 1.3 early
data (0-RTT): it takes a ticket, reports its max_early_data, and sends
--early-request as early data with it. When the server accepts, check sends
the same ClientHello and early data again, byte for byte, on a new
connection to the host and, given several hosts (a fleet sharing tickets),
to each of them, and reports whether any accepted the replay; it reads that
from the server's answer (docs/early-data.md). --require-no-replay exits 1
when a replay was accepted. The early request should be one that is safe
to repeat: it is sent up to once per host again.`,
		Example: `  sslsession check
  sslsession check --tls1.2 -n 5 --require-resume
  sslsession check example.com:443 --json
  sslsession check 127.0.0.1:4433 --cafile ca.pem --servername localhost
  sslsession check web1.example.com:443 web2.example.com:443 --servername www.example.com --require-resume
  sslsession check www.example.com:443 --rate 20 --require-rate 0.9
  sslsession check www.example.com:443 --watch 2h --every 1m
  sslsession check www.example.com:443 --early-data --require-no-replay
  sslsession check web1.example.com:443 web2.example.com:443 --servername www.example.com --early-data`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.checkModes(cmd, args); err != nil {
				return err
			}
			switch {
			case f.earlyData:
				return runEarly(out, f, args)
			case f.rate > 0:
				return runRate(out, f, args)
			case f.watch > 0:
				return runWatch(out, f, args)
			}
			if len(args) > 1 {
				if cmd.Flags().Changed("attempts") {
					return usageError("-n does not apply to several hosts: each pair is tried once per mechanism")
				}
				return runCrossHost(out, f, args)
			}
			return runCheck(out, f, args)
		},
	}
	f.conn.register(cmd)
	fl := cmd.Flags()
	fl.IntVarP(&f.attempts, "attempts", "n", 3, "resumption attempts per mechanism")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON (see docs/cli.md)")
	fl.BoolVar(&f.requireResume, "require-resume", false, "exit with status 1 unless every attempt of at least one mechanism resumed")
	fl.DurationVar(&f.ticketWait, "ticket-wait", time.Second, "how long to wait for the first TLS 1.3 ticket after a handshake")
	fl.IntVar(&f.rate, "rate", 0, "resumption rate through one address (a load balancer): N attempts per protocol and mechanism, each a new full handshake and a new connection offering its session")
	fl.Float64Var(&f.requireRate, "require-rate", 0, "with --rate: exit with status 1 unless, under every protocol, some mechanism's rate is at least this (0 to 1)")
	fl.DurationVar(&f.watch, "watch", 0, "ticket-key rotation audit for this long: a ticket every --every, its key name, and which older tickets still resume")
	fl.DurationVar(&f.every, "every", 10*time.Second, "with --watch: the interval between probes")
	fl.BoolVar(&f.earlyData, "early-data", false, "TLS 1.3 early data (0-RTT): max_early_data, whether it is accepted, and whether a replay of the same ClientHello and early data is accepted by each host")
	fl.BoolVar(&f.requireNoReplay, "require-no-replay", false, "with --early-data: exit with status 1 when a host accepted a replayed early data")
	fl.StringVar(&f.earlyRequest, "early-request", "", "with --early-data: the early data to send and replay, \\r and \\n as CR and LF (default an HTTP HEAD / for the server name); use a request that is safe to repeat")
	fl.StringVar(&f.progress, "progress", "auto", "with --rate or --watch: progress bar, auto (when standard output is a terminal), always or never")
	return cmd
}

// checkModes refuses flags that do not go together: --rate and --watch
// are modes of their own, on one address.
func (f *checkFlags) checkModes(cmd *cobra.Command, args []string) error {
	fl := cmd.Flags()
	rate, watch := fl.Changed("rate"), fl.Changed("watch")
	early := f.earlyData
	switch {
	case early && (rate || watch):
		return usageError("--early-data cannot be used with --rate or --watch")
	case early && (f.requireResume || fl.Changed("attempts")):
		return usageError("--require-resume and -n do not apply to --early-data")
	case (f.requireNoReplay || fl.Changed("early-request")) && !early:
		return usageError("--require-no-replay and --early-request need --early-data")
	case early && fl.Changed("early-request") && (f.earlyRequest == "" || len(f.earlyRequest) > 16384):
		return usageError("--early-request must be 1 to 16384 bytes")
	case rate && watch:
		return usageError("--rate and --watch cannot be used together")
	case (rate || watch) && len(args) > 1:
		return usageError("--rate and --watch take one host:port (a load balancer's address): for several hosts, check without them")
	case (rate || watch) && fl.Changed("attempts"):
		return usageError("-n does not apply to --rate or --watch")
	case (rate || watch) && f.requireResume:
		return usageError("--require-resume does not apply to --rate or --watch (--rate has --require-rate)")
	case fl.Changed("require-rate") && !rate:
		return usageError("--require-rate needs --rate")
	case fl.Changed("every") && !watch:
		return usageError("--every needs --watch")
	case fl.Changed("progress") && !rate && !watch:
		return usageError("--progress applies to --rate and --watch only")
	case rate && f.rate < 1:
		return usageError("--rate must be between 1 and 100000")
	case watch && f.watch <= 0:
		return usageError("--watch must be positive")
	}
	if f.ticketWait <= 0 {
		return usageError("--ticket-wait must be positive")
	}
	return nil
}

// checkReport is the result of check; its JSON form is documented in
// docs/cli.md and stable. The embedded protocolReport (flattened in JSON)
// is the first, newest protocol checked, as the report had it before
// several protocols were checked in one run.
type checkReport struct {
	Target     string `json:"target"`
	Embedded   bool   `json:"embedded"`
	OpenSSL    string `json:"openssl"`
	ServerName string `json:"server_name"`
	Verified   bool   `json:"verified"`
	protocolReport
	// Protocols has one report per protocol checked, newest first.
	Protocols []protocolReport `json:"protocols"`
	// ProtocolsRefused lists the protocols the client tried after the
	// first and the server refused.
	ProtocolsRefused []refusedProtocol `json:"protocols_refused"`
	// Resumed: under every protocol checked, every attempt of at least one
	// mechanism resumed (what --require-resume tests).
	Resumed bool `json:"resumed"`
}

// protocolReport is check's result for one protocol.
type protocolReport struct {
	Protocol           string `json:"protocol"`
	Cipher             string `json:"cipher"`
	SessionIDLength    *int   `json:"session_id_length"`
	Ticket             bool   `json:"ticket"`
	TicketLifetimeHint int64  `json:"ticket_lifetime_hint_seconds"`
	TLS13Tickets       *int   `json:"tls13_tickets"`
	// TicketsFlooded: after some handshake the server was still sending
	// TLS 1.3 tickets when check stopped counting, at maxTickets.
	TicketsFlooded   bool      `json:"tls13_tickets_flooded"`
	SessionID        mechanism `json:"session_id_resumption"`
	TicketResumption mechanism `json:"ticket_resumption"`
	Resumed          bool      `json:"resumed"`

	tls13 bool
}

// refusedProtocol is a protocol whose handshake the server refused.
type refusedProtocol struct {
	Protocol string `json:"protocol"`
	Error    string `json:"error"`
}

// mechanism is the outcome of one way of resuming.
type mechanism struct {
	Status          string    `json:"status"` // resumed, partly resumed, not resumed, n/a
	Note            string    `json:"note"`
	FullHandshakeMS *float64  `json:"full_handshake_ms"`
	Attempts        []attempt `json:"attempts"`
	ResumedCount    int       `json:"resumed_count"`
	ResumedMedianMS *float64  `json:"resumed_median_ms"`
	Speedup         *float64  `json:"speedup"`
	// WhyNot says, for the first attempt that did not resume, what the
	// client offered and what the server answered; "" when all resumed.
	WhyNot string `json:"why_not"`

	full   time.Duration
	median time.Duration
}

// attempt is one reconnection offering the session.
type attempt struct {
	Resumed     bool    `json:"resumed"`
	HandshakeMS float64 `json:"handshake_ms"`

	took time.Duration
}

// Mechanism statuses.
const (
	statusResumed    = "resumed"
	statusPartly     = "partly resumed"
	statusNotResumed = "not resumed"
	statusNA         = "n/a"
)

func runCheck(out io.Writer, f *checkFlags, args []string) error {
	if f.attempts < 1 || f.attempts > 1000 {
		return usageError("-n must be between 1 and 1000")
	}
	if f.ticketWait <= 0 {
		return usageError("--ticket-wait must be positive")
	}
	tgt, cl, err := openClient(&f.conn, args)
	if err != nil {
		return err
	}
	defer tgt.close()
	rep, err := check(cl, tgt.embedded, f.attempts, f.ticketWait)
	if err != nil {
		return err
	}
	return f.report(out, rep, func(w io.Writer) { writeCheck(w, rep) }, rep.Resumed, errNotResumed)
}

// report prints rep, as JSON or with human, and applies --require-resume:
// notResumed unless resumed.
func (f *checkFlags) report(out io.Writer, rep any, human func(io.Writer), resumed bool, notResumed error) error {
	if f.json {
		if err := writeJSON(out, rep); err != nil {
			return err
		}
	} else {
		human(out)
	}
	if f.requireResume && !resumed {
		return notResumed
	}
	return nil
}

// runCrossHost is check with several hosts.
func runCrossHost(out io.Writer, f *checkFlags, args []string) error {
	if f.ticketWait <= 0 {
		return usageError("--ticket-wait must be positive")
	}
	cls, err := crossHostClients(&f.conn, args)
	if err != nil {
		return err
	}
	rep, err := crossCheck(cls, f.ticketWait)
	if err != nil {
		return err
	}
	return f.report(out, rep, func(w io.Writer) { writeCross(w, rep) }, rep.Resumed, errCrossNotResumed)
}

// check runs the whole check against cl's server: each protocol in turn.
// Without a version flag the first protocol is the one the server
// negotiates; if that is TLS 1.3, TLS 1.2 is checked too, and a server that
// refuses it is reported, not an error.
func check(cl *client, embedded bool, n int, ticketWait time.Duration) (*checkReport, error) {
	rep := &checkReport{
		Target:           cl.addr,
		Embedded:         embedded,
		OpenSSL:          sslsession.RuntimeVersion().String(),
		ServerName:       cl.serverName,
		Verified:         cl.verify,
		Protocols:        []protocolReport{},
		ProtocolsRefused: []refusedProtocol{},
	}
	protos, err := checkProtocols(cl)
	if err != nil {
		return nil, err
	}
	for i, p := range protos {
		pc := *cl
		pc.min, pc.max = p, p
		pr, err := checkProtocol(&pc, embedded, n, ticketWait)
		var refused *refusedError
		if i > 0 && errors.As(err, &refused) {
			_, msg := exitCode(refused.err)
			rep.ProtocolsRefused = append(rep.ProtocolsRefused, refusedProtocol{Protocol: p.String(), Error: msg})
			continue
		}
		if err != nil {
			return nil, err
		}
		rep.Protocols = append(rep.Protocols, *pr)
	}
	rep.protocolReport = rep.Protocols[0]
	rep.Resumed = true
	for _, p := range rep.Protocols {
		rep.Resumed = rep.Resumed && p.Resumed
	}
	return rep, nil
}

// checkProtocols returns the protocols to check, newest first: the one the
// flags pin; else the one the server negotiates, and TLS 1.2 after TLS 1.3.
func checkProtocols(cl *client) ([]sslsession.Version, error) {
	if cl.min != 0 && cl.min == cl.max {
		return []sslsession.Version{cl.min}, nil
	}
	ctx, err := cl.newCtx(false)
	if err != nil {
		return nil, err
	}
	c, err := cl.dial(ctx, nil)
	if err != nil {
		return nil, err
	}
	v := c.SSL().Version()
	c.close()
	protos := []sslsession.Version{v}
	if v == sslsession.TLS13 && (cl.min == 0 || cl.min <= sslsession.TLS12) {
		protos = append(protos, sslsession.TLS12)
	}
	return protos, nil
}

// refusedError is the failure of a protocol's first handshake: the server
// may not speak that protocol.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// checkProtocol checks resumption under the one protocol cl is pinned to.
// A failure of the first handshake is a *refusedError.
func checkProtocol(cl *client, embedded bool, n int, ticketWait time.Duration) (*protocolReport, error) {
	rep := &protocolReport{}
	// Tickets: the client accepts them, and offers the session with its
	// ticket.
	ctxT, err := cl.newCtx(false)
	if err != nil {
		return nil, err
	}
	// A first, unmeasured handshake warms up both ends (OpenSSL's first
	// handshake in a process fetches its algorithms), so that the measured
	// full handshake is comparable with the resumed ones.
	warm, err := cl.dial(ctxT, nil)
	if err != nil {
		return nil, &refusedError{err}
	}
	warm.close()
	full, err := cl.dial(ctxT, nil)
	if err != nil {
		return nil, err
	}
	rep.Protocol = full.SSL().Version().String()
	rep.Cipher = full.SSL().Cipher()
	rep.tls13 = full.SSL().Version() == sslsession.TLS13
	if rep.tls13 {
		count, err := full.collectTickets(embedded, ticketWait, ticketSettle)
		if err != nil {
			full.close()
			return nil, ticketError(cl.addr, err)
		}
		rep.TLS13Tickets = &count
		rep.TicketsFlooded = full.ticketsCapped
	}
	sess, err := full.Session1()
	full.close()
	if err != nil {
		return nil, failf("no session after the handshake with %s: %s", cl.addr, stripPrefixes(err.Error()))
	}
	info, err := sess.Info()
	if err != nil {
		sess.Close()
		return nil, err
	}
	rep.Ticket = info.HasTicket
	if info.HasTicket {
		rep.TicketLifetimeHint = int64(info.TicketLifetimeHint / time.Second)
	}
	offerTicket := info.HasTicket && info.Resumable
	note := ""
	if !offerTicket {
		note = "server sent no ticket"
		if rep.tls13 {
			note = "no ticket received"
		}
	}
	rep.TicketResumption, err = resumeSeries(cl, ctxT, sess, offerTicket, full.handshake, n, rep.tls13, embedded, ticketWait, true, &rep.TicketsFlooded)
	if err != nil {
		return nil, err
	}
	if note != "" {
		rep.TicketResumption.Note = note
		rep.TicketResumption.WhyNot = "the client offered no session: " + note
	}

	// Session IDs: TLS 1.3 has none to resume.
	if rep.tls13 {
		rep.SessionID = mechanism{Status: statusNA, Note: "TLS 1.3 has no session-ID resumption", Attempts: []attempt{}}
	} else {
		ctxI, err := cl.newCtx(true)
		if err != nil {
			return nil, err
		}
		fullI, err := cl.dial(ctxI, nil)
		if err != nil {
			return nil, err
		}
		sessI, err := fullI.Session1()
		fullI.close()
		if err != nil {
			return nil, failf("no session after the handshake with %s: %s", cl.addr, stripPrefixes(err.Error()))
		}
		infoI, err := sessI.Info()
		if err != nil {
			sessI.Close()
			return nil, err
		}
		idLen := len(infoI.ID)
		rep.SessionIDLength = &idLen
		offerID := idLen > 0 && infoI.Resumable
		rep.SessionID, err = resumeSeries(cl, ctxI, sessI, offerID, fullI.handshake, n, false, embedded, ticketWait, false, &rep.TicketsFlooded)
		if err != nil {
			return nil, err
		}
		if !offerID {
			rep.SessionID.Note = "server sent no session ID"
			rep.SessionID.WhyNot = "the client offered no session: server sent no session ID"
		}
	}
	rep.Resumed = complete(rep.TicketResumption, n) || complete(rep.SessionID, n)
	return rep, nil
}

// complete reports whether every attempt of m resumed.
func complete(m mechanism, n int) bool { return m.ResumedCount == n && n > 0 }

// resumeSeries makes n connections with ctx, each offering the newest
// resumable session (sess first; nothing when offer is false), and records
// whether each resumed. It takes over sess and closes it. needTicket keeps
// only sessions with a ticket as the next offer. flooded is set when a
// server kept sending tickets.
func resumeSeries(cl *client, ctx *openssl.Ctx, sess *sslsession.Session, offer bool,
	full time.Duration, n int, tls13, echo bool, ticketWait time.Duration, needTicket bool, flooded *bool) (mechanism, error) {
	defer func() { sess.Close() }()
	m := mechanism{full: full, Attempts: []attempt{}}
	var resumed []time.Duration
	for i := 0; i < n; i++ {
		var give *sslsession.Session
		var off *offered
		if offer {
			give = sess
			var err error
			if off, err = offerOf(sess, !needTicket); err != nil {
				return m, err
			}
		}
		c, err := cl.dial(ctx, give)
		if err != nil {
			return m, err
		}
		a := attempt{Resumed: c.SessionReused(), took: c.handshake}
		tickets := 0
		if tls13 {
			if tickets, err = c.collectTickets(echo, ticketWait, ticketSettle); err != nil {
				c.close()
				return m, ticketError(cl.addr, err)
			}
			*flooded = *flooded || c.ticketsCapped
		}
		next, err := c.Session1()
		if err != nil {
			next = nil
		}
		if !a.Resumed && m.WhyNot == "" {
			m.WhyNot = whyNot(off, c, next, tickets)
		}
		if next != nil {
			if usable(next, needTicket) {
				sess.Close()
				sess, offer = next, true
			} else {
				next.Close()
			}
		}
		c.close()
		m.Attempts = append(m.Attempts, a)
		if a.Resumed {
			resumed = append(resumed, a.took)
		}
	}
	m.ResumedCount = len(resumed)
	switch {
	case len(resumed) == n:
		m.Status = statusResumed
	case len(resumed) > 0:
		m.Status = statusPartly
	default:
		m.Status = statusNotResumed
		if offer {
			m.Note = "server did not resume the offered session"
		}
	}
	m.finish(resumed)
	return m, nil
}

// usable reports whether s can be offered next: resumable, and carrying a
// ticket when the series is about tickets, or a session ID when not.
func usable(s *sslsession.Session, needTicket bool) bool {
	info, err := s.Info()
	if err != nil || !info.Resumable {
		return false
	}
	if needTicket {
		return info.HasTicket
	}
	return len(info.ID) > 0
}

// finish fills the JSON numbers from the measured durations.
func (m *mechanism) finish(resumed []time.Duration) {
	full := durationMS(m.full)
	m.FullHandshakeMS = &full
	for i := range m.Attempts {
		m.Attempts[i].HandshakeMS = durationMS(m.Attempts[i].took)
	}
	if len(resumed) == 0 {
		return
	}
	m.median = median(resumed)
	med := durationMS(m.median)
	m.ResumedMedianMS = &med
	if m.median > 0 {
		sp := round2(float64(m.full) / float64(m.median))
		m.Speedup = &sp
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func writeCheck(w io.Writer, r *checkReport) {
	var names []string
	for _, p := range r.Protocols {
		names = append(names, p.Protocol)
	}
	writeHeader(w, r.Target, r.Embedded, r.OpenSSL, strings.Join(names, ", "))
	for _, p := range r.ProtocolsRefused {
		line(w, "not spoken", "%s (%s)", p.Protocol, p.Error)
	}
	several := len(r.Protocols) > 1
	if !several {
		line(w, "cipher", "%s", r.Cipher)
	}
	switch {
	case !r.Verified:
		line(w, "certificate", "not verified (--insecure)")
	case r.Embedded:
		line(w, "certificate", "verified for %s (embedded self-signed certificate)", r.ServerName)
	default:
		line(w, "certificate", "verified for %s", r.ServerName)
	}
	var results []string
	for _, p := range r.Protocols {
		if several {
			fmt.Fprintf(w, "\n== %s\n", p.Protocol)
		}
		results = append(results, writeProtocol(w, &p, several))
	}
	fmt.Fprintln(w)
	if r.Resumed {
		line(w, "result", "resumption confirmed (%s)", strings.Join(results, "; "))
	} else {
		line(w, "result", "resumption NOT confirmed (%s)", strings.Join(results, "; "))
	}
}

// writeProtocol writes one protocol's part of the report and returns its
// counts for the result line (prefixed with the protocol when several).
func writeProtocol(w io.Writer, r *protocolReport, named bool) string {
	if named {
		line(w, "cipher", "%s", r.Cipher)
	}
	if r.SessionIDLength == nil {
		line(w, "session ID", "n/a (TLS 1.3)")
	} else {
		line(w, "session ID", "%d bytes", *r.SessionIDLength)
	}
	if r.Ticket {
		line(w, "ticket", "yes, lifetime hint %d s", r.TicketLifetimeHint)
	} else {
		line(w, "ticket", "no")
	}
	if r.TLS13Tickets == nil {
		line(w, "TLS 1.3 tickets", "n/a (%s)", r.Protocol)
	} else {
		line(w, "TLS 1.3 tickets", "%d received after the full handshake", *r.TLS13Tickets)
	}
	if r.TicketsFlooded {
		line(w, "ticket flood", "the server kept sending tickets: counting stopped at %d", maxTickets)
	}
	fmt.Fprintln(w)
	writeMechanism(w, "session-ID resumption", r.SessionID)
	fmt.Fprintln(w)
	writeMechanism(w, "ticket resumption", r.TicketResumption)
	var parts []string
	if r.SessionID.Status != statusNA {
		parts = append(parts, fmt.Sprintf("session ID %d/%d", r.SessionID.ResumedCount, len(r.SessionID.Attempts)))
	}
	parts = append(parts, fmt.Sprintf("ticket %d/%d", r.TicketResumption.ResumedCount, len(r.TicketResumption.Attempts)))
	res := strings.Join(parts, ", ")
	if named {
		res = r.Protocol + ": " + res
	}
	return res
}

func writeMechanism(w io.Writer, title string, m mechanism) {
	if m.Status == statusNA {
		line(w, title, "n/a (%s)", m.Note)
		return
	}
	head := fmt.Sprintf("%s %d/%d", m.Status, m.ResumedCount, len(m.Attempts))
	if m.Note != "" {
		head += " (" + m.Note + ")"
	}
	line(w, title, "%s", head)
	line(w, "  full handshake", "%s", fmtMS(m.full))
	for i, a := range m.Attempts {
		word := "not resumed"
		if a.Resumed {
			word = "resumed"
		}
		line(w, fmt.Sprintf("  attempt %d", i+1), "%-12s %s", word, fmtMS(a.took))
	}
	if m.Speedup != nil {
		line(w, "  speedup", "%.1fx (full %s / resumed median %s)", *m.Speedup, fmtMS(m.full), fmtMS(m.median))
	} else {
		line(w, "  speedup", "n/a (nothing resumed)")
	}
	if m.WhyNot != "" {
		line(w, "  why not", "%s", m.WhyNot)
	}
}
