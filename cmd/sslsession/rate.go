package main

import (
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
)

// check --rate N: resumption through one address, a load balancer's, where
// each new connection may reach another server. Every attempt is a new
// full handshake, then a new connection offering its session: the rate is
// the share of offers that resumed, per protocol and mechanism. A fleet
// that shares sessions and ticket keys resumes them all; n servers that do
// not resume about 1/n (1/n of the offers land on the server that made the
// session), none with a strict round robin (the offer always lands on the
// next server).

// rateReport is check --rate's result; its JSON form is documented in
// docs/cli.md.
type rateReport struct {
	Target           string            `json:"target"`
	Embedded         bool              `json:"embedded"`
	OpenSSL          string            `json:"openssl"`
	ServerName       string            `json:"server_name"`
	Verified         bool              `json:"verified"`
	Attempts         int               `json:"attempts"` // asked for, per protocol and mechanism
	Protocols        []rateProtocol    `json:"protocols"`
	ProtocolsRefused []refusedProtocol `json:"protocols_refused"`
	// Certificates are the distinct server certificates the full
	// handshakes met, in the order first met.
	Certificates []seenCert `json:"certificates"`
	// TicketKeyNames are the distinct key names (the first 16 bytes of a
	// ticket) of the tickets the full handshakes received.
	TicketKeyNames []seenKeyName `json:"ticket_key_names"`
	TicketsFlooded bool          `json:"tls13_tickets_flooded"`
	// RequiredRate is --require-rate, or null; MeetsRequiredRate: under
	// every protocol, some mechanism's rate is at least RequiredRate (true
	// without --require-rate).
	RequiredRate      *float64 `json:"required_rate"`
	MeetsRequiredRate bool     `json:"meets_required_rate"`
	Interrupted       string   `json:"interrupted"` // "SIGINT" or "SIGTERM" when stopped early, else ""
}

// rateProtocol is one protocol's rates.
type rateProtocol struct {
	Protocol   string          `json:"protocol"`
	Mechanisms []rateMechanism `json:"mechanisms"`
}

// rateMechanism is one mechanism's rate under one protocol.
type rateMechanism struct {
	Mechanism string  `json:"mechanism"` // "session_id" or "ticket"
	Attempted int     `json:"attempted"` // offers made
	Resumed   int     `json:"resumed"`
	Rate      float64 `json:"rate"` // resumed / attempted, 0 when none attempted
	// NotOffered counts the full handshakes that gave no session to offer
	// (no ticket, no session ID): they are not attempts.
	NotOffered int `json:"not_offered"`
}

// seenCert is a server certificate and how many full handshakes met it.
type seenCert struct {
	SHA256  string `json:"sha256"`
	Subject string `json:"subject"`
	Seen    int    `json:"seen"`
}

// seenKeyName is a ticket key name and how many tickets carried it.
type seenKeyName struct {
	Name string `json:"name"`
	Seen int    `json:"seen"`
}

// rateRun is the state of a rate or watch run shared by its steps.
type rateRun struct {
	cl       *client
	embedded bool
	wait     time.Duration // --ticket-wait
	stop     *stopper
	rep      *rateReport
	certs    map[string]int // fingerprint -> index in rep.Certificates
	keys     map[string]int // key name -> index in rep.TicketKeyNames
}

// signals returns a stopper for SIGINT and SIGTERM and the function that
// stops listening.
// repeated is what check --rate and --watch start with: whether to show a
// progress bar, Ctrl-C and SIGTERM caught, the target opened.
type repeated struct {
	bar    bool
	stop   *stopper
	unhook func()
	tgt    *target
	cl     *client
}

func startRepeated(out io.Writer, f *checkFlags, args []string) (*repeated, error) {
	bar, err := showProgress(f.progress, out)
	if err != nil {
		return nil, err
	}
	stop, unhook := signals()
	tgt, cl, err := openClient(&f.conn, args)
	if err != nil {
		unhook()
		return nil, err
	}
	return &repeated{bar: bar, stop: stop, unhook: unhook, tgt: tgt, cl: cl}, nil
}

func (r *repeated) close() {
	r.tgt.close()
	r.unhook()
}

func signals() (*stopper, func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	return &stopper{sigs: sigs}, func() { signal.Stop(sigs) }
}

func runRate(out io.Writer, f *checkFlags, args []string) error {
	if f.rate < 1 || f.rate > 100000 {
		return usageError("--rate must be between 1 and 100000")
	}
	if f.requireRate < 0 || f.requireRate > 1 {
		return usageError("--require-rate must be between 0 and 1")
	}
	s, err := startRepeated(out, f, args)
	if err != nil {
		return err
	}
	defer s.close()
	bar, stop, tgt, cl := s.bar, s.stop, s.tgt, s.cl
	rep := &rateReport{
		Target: tgt.addr, Embedded: tgt.embedded, OpenSSL: sslsession.RuntimeVersion().String(),
		ServerName: cl.serverName, Verified: cl.verify, Attempts: f.rate,
		Protocols: []rateProtocol{}, ProtocolsRefused: []refusedProtocol{},
		Certificates: []seenCert{}, TicketKeyNames: []seenKeyName{},
	}
	if f.requireRate > 0 {
		r := f.requireRate
		rep.RequiredRate = &r
	}
	run := &rateRun{cl: cl, embedded: tgt.embedded, wait: f.ticketWait, stop: stop, rep: rep,
		certs: map[string]int{}, keys: map[string]int{}}
	protos, err := checkProtocols(cl)
	if err != nil {
		return err
	}
	start := time.Now()
	total := 0
	for _, p := range protos {
		total += len(mechanismsOf(p)) * f.rate
	}
	var pb *progressbar.ProgressBar
	if bar {
		pb = newBar(out, int64(total), "resumption attempts")
	}
	for i, p := range protos {
		if stop.stopped() {
			break
		}
		pc := *cl
		pc.min, pc.max = p, p
		run.cl = &pc
		rp := rateProtocol{Protocol: p.String(), Mechanisms: []rateMechanism{}}
		for _, mech := range mechanismsOf(p) {
			m, err := run.mechanism(p, mech, f.rate, pb)
			var refused *refusedError
			if i > 0 && errors.As(err, &refused) {
				_, msg := exitCode(refused.err)
				rep.ProtocolsRefused = append(rep.ProtocolsRefused, refusedProtocol{Protocol: p.String(), Error: msg})
				rp.Mechanisms = nil
				break
			}
			if err != nil {
				clearBar(pb)
				return err
			}
			rp.Mechanisms = append(rp.Mechanisms, m)
			if stop.stopped() {
				break
			}
		}
		if rp.Mechanisms != nil {
			rep.Protocols = append(rep.Protocols, rp)
		}
	}
	clearBar(pb)
	rep.Interrupted = stop.name()
	rep.MeetsRequiredRate = meetsRate(rep.Protocols, f.requireRate)
	if f.json {
		err = writeJSON(out, rep)
	} else {
		writeRate(out, rep)
	}
	switch {
	case err != nil:
		return err
	case rep.Interrupted != "":
		return stop.err(time.Since(start))
	case !rep.MeetsRequiredRate:
		return errRateLow(f.requireRate)
	}
	return nil
}

// errRateLow ends check --rate --require-rate below the rate: status 1.
func errRateLow(r float64) error {
	return &cliError{code: exitNoResume, msg: fmt.Sprintf("the resumption rate is below %.2f under some protocol (--require-rate)", r)}
}

// meetsRate: under every protocol, some mechanism resumed at least min of
// its attempts.
func meetsRate(ps []rateProtocol, min float64) bool {
	for _, p := range ps {
		ok := false
		for _, m := range p.Mechanisms {
			ok = ok || (m.Attempted > 0 && m.Rate >= min)
		}
		if !ok && min > 0 {
			return false
		}
	}
	return true
}

// mechanismsOf lists the ways a protocol resumes: TLS 1.3 by ticket only.
func mechanismsOf(p sslsession.Version) []string {
	if p == sslsession.TLS13 {
		return []string{mechTicket}
	}
	return []string{mechSessionID, mechTicket}
}

// newBar is the progress bar of check --rate and --watch: max steps.
func newBar(out io.Writer, max int64, what string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(out),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(false),
		// Redrawn at each step (throttled), not only when the percentage
		// moves: a long run moves it rarely.
		progressbar.OptionShowCount(),
	)
}

// mechanism makes n attempts of one mechanism: each a new full handshake
// and a new connection offering its session. A failure of the first
// handshake is a *refusedError.
func (r *rateRun) mechanism(p sslsession.Version, mech string, n int, pb *progressbar.ProgressBar) (rateMechanism, error) {
	m := rateMechanism{Mechanism: mech}
	noTicket := mech == mechSessionID
	ctx, err := r.cl.newCtx(noTicket)
	if err != nil {
		return m, err
	}
	for i := 0; i < n && !r.stop.stopped(); i++ {
		resumed, offered, err := r.attempt(ctx, p == sslsession.TLS13, noTicket)
		if err != nil {
			if i == 0 {
				return m, &refusedError{err}
			}
			return m, err
		}
		switch {
		case !offered:
			m.NotOffered++
		case resumed:
			m.Attempted++
			m.Resumed++
		default:
			m.Attempted++
		}
		if pb != nil {
			_ = pb.Add(1)
		}
	}
	if m.Attempted > 0 {
		m.Rate = round3(float64(m.Resumed) / float64(m.Attempted))
	}
	return m, nil
}

// attempt makes a full handshake, notes its server certificate and ticket
// key name, and offers its session on a new connection. offered is false
// when the handshake gave nothing to offer.
func (r *rateRun) attempt(ctx *openssl.Ctx, tls13, noTicket bool) (resumed, offered bool, err error) {
	sess, err := r.fullSession(ctx, tls13)
	if err != nil {
		return false, false, err
	}
	defer sess.Close()
	if !usable(sess, !noTicket) {
		return false, false, nil
	}
	c, err := r.cl.dial(ctx, sess)
	if err != nil {
		return false, true, err
	}
	resumed = c.SessionReused()
	c.close()
	return resumed, true, nil
}

// fullSession makes a full handshake and returns its session (with TLS
// 1.3, the last ticket's), after noting its certificate and key name.
func (r *rateRun) fullSession(ctx *openssl.Ctx, tls13 bool) (*sslsession.Session, error) {
	c, err := r.cl.dial(ctx, nil)
	if err != nil {
		return nil, err
	}
	if tls13 {
		if _, err := c.collectTickets(r.embedded, r.wait, ticketSettle); err != nil {
			c.close()
			return nil, ticketError(r.cl.addr, err)
		}
		r.rep.TicketsFlooded = r.rep.TicketsFlooded || c.ticketsCapped
	}
	sess, err := c.Session1()
	c.close()
	if err != nil {
		return nil, failf("no session after the handshake with %s: %s", r.cl.addr, stripPrefixes(err.Error()))
	}
	if cert, err := sess.PeerCertificate(); err == nil && cert != nil {
		sum := sha256.Sum256(cert.Raw)
		fp := strings.ToUpper(hex.EncodeToString(sum[:]))
		if i, ok := r.certs[fp]; ok {
			r.rep.Certificates[i].Seen++
		} else {
			r.certs[fp] = len(r.rep.Certificates)
			r.rep.Certificates = append(r.rep.Certificates, seenCert{SHA256: fp, Subject: cert.Subject.String(), Seen: 1})
		}
	}
	if name, ok := ticketKeyName(sess); ok {
		if i, ok := r.keys[name]; ok {
			r.rep.TicketKeyNames[i].Seen++
		} else {
			r.keys[name] = len(r.rep.TicketKeyNames)
			r.rep.TicketKeyNames = append(r.rep.TicketKeyNames, seenKeyName{Name: name, Seen: 1})
		}
	}
	return sess, nil
}

// ticketKeyName is the key name of the session's ticket: its first 16
// bytes, upper-case hex, in the format OpenSSL, nginx and haproxy issue
// (key name, IV, encrypted state, MAC). The ticket is read from the
// session's DER: SSL_SESSION's [10] EXPLICIT OCTET STRING (tlsext_tick), in
// every OpenSSL version's encoding. ok is false without a ticket of at
// least 16 bytes.
func ticketKeyName(s *sslsession.Session) (string, bool) {
	der, err := s.MarshalBinary()
	if err != nil {
		return "", false
	}
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(der, &seq); err != nil || seq.Tag != asn1.TagSequence {
		return "", false
	}
	for rest := seq.Bytes; len(rest) > 0; {
		var f asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &f); err != nil {
			return "", false
		}
		if f.Class != asn1.ClassContextSpecific || f.Tag != 10 {
			continue
		}
		var tick []byte
		if _, err := asn1.Unmarshal(f.Bytes, &tick); err != nil || len(tick) < 16 {
			return "", false
		}
		return strings.ToUpper(hex.EncodeToString(tick[:16])), true
	}
	return "", false
}

var mechTitle = map[string]string{mechSessionID: "session-ID resumption", mechTicket: "ticket resumption"}

func writeRate(w io.Writer, r *rateReport) {
	var names []string
	for _, p := range r.Protocols {
		names = append(names, p.Protocol)
	}
	writeHeader(w, r.Target, r.Embedded, r.OpenSSL, strings.Join(names, ", "))
	for _, p := range r.ProtocolsRefused {
		line(w, "not spoken", "%s (%s)", p.Protocol, esc(p.Error))
	}
	if r.Verified {
		line(w, "certificate", "verified for %s", esc(r.ServerName))
	} else {
		line(w, "certificate", "not verified (--insecure)")
	}
	line(w, "attempts", "%d per protocol and mechanism, each a new full handshake, then a new connection offering its session", r.Attempts)
	if r.Interrupted != "" {
		line(w, "interrupted", "by %s: partial results", r.Interrupted)
	}
	if r.TicketsFlooded {
		line(w, "ticket flood", "a server kept sending tickets: counting stopped at %d", maxTickets)
	}
	var results []string
	for _, p := range r.Protocols {
		fmt.Fprintf(w, "\n== %s\n", p.Protocol)
		for _, m := range p.Mechanisms {
			text := fmt.Sprintf("rate %.2f (%d of %d resumed)", m.Rate, m.Resumed, m.Attempted)
			if m.NotOffered > 0 {
				text += fmt.Sprintf("; %d handshake(s) gave nothing to offer", m.NotOffered)
			}
			line(w, mechTitle[m.Mechanism], "%s", text)
			results = append(results, fmt.Sprintf("%s %s %.2f", p.Protocol, strings.TrimSuffix(mechTitle[m.Mechanism], " resumption"), m.Rate))
		}
	}
	fmt.Fprintln(w)
	line(w, "server certificates", "%d distinct", len(r.Certificates))
	for _, c := range r.Certificates {
		line(w, "", "%s  %s (%d handshake(s))", c.SHA256, esc(c.Subject), c.Seen)
	}
	line(w, "ticket key names", "%d distinct", len(r.TicketKeyNames))
	for _, k := range r.TicketKeyNames {
		line(w, "", "%s (%d ticket(s))", k.Name, k.Seen)
	}
	fmt.Fprintln(w)
	verdict := "resumption rate"
	if r.RequiredRate != nil {
		if r.MeetsRequiredRate {
			verdict = fmt.Sprintf("resumption rate at least %.2f", *r.RequiredRate)
		} else {
			verdict = fmt.Sprintf("resumption rate BELOW %.2f", *r.RequiredRate)
		}
	}
	line(w, "result", "%s (%s)", verdict, strings.Join(results, ", "))
	if len(r.Certificates) > 1 && slices.ContainsFunc(r.Protocols, func(p rateProtocol) bool {
		return slices.ContainsFunc(p.Mechanisms, func(m rateMechanism) bool { return m.Attempted > 0 && m.Rate < 0.5 })
	}) {
		line(w, "note", "%d servers answered and some rate is low: a fleet that shares no sessions resumes about 1/n of them", len(r.Certificates))
	}
}
