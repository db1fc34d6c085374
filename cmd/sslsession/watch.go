package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
)

// check --watch D --every I: a ticket-key rotation audit. Every I for D,
// a probe makes a full handshake, keeps its ticket and reads the ticket's
// key name (its first 16 bytes, in OpenSSL's, nginx's and haproxy's
// format), then offers the oldest ticket kept under each key name still
// resuming. From that: how long each key name was seen issuing (what a
// stolen key opens), whether the tickets of a key still resume once a newer
// key issues (the overlap), and the oldest ticket that still resumed.

// watchReport is check --watch's result; its JSON form is documented in
// docs/cli.md. Times are seconds since the watch started.
type watchReport struct {
	Target         string     `json:"target"`
	Embedded       bool       `json:"embedded"`
	OpenSSL        string     `json:"openssl"`
	ServerName     string     `json:"server_name"`
	Verified       bool       `json:"verified"`
	Protocol       string     `json:"protocol"`
	WatchSeconds   float64    `json:"watch_seconds"`
	EverySeconds   float64    `json:"every_seconds"`
	Probes         int        `json:"probes"`
	NoTicketProbes int        `json:"no_ticket_probes"` // probes whose handshake gave no ticket
	KeyNames       []watchKey `json:"key_names"`        // in the order first seen issuing
	Rotations      int        `json:"rotations"`        // times the issuing key name changed
	// Overlap: after every rotation seen, a ticket of the key rotated out
	// still resumed; null when no rotation was seen.
	Overlap *bool `json:"overlap"`
	// OldestResumedSeconds is the age, when it resumed, of the oldest
	// ticket that resumed; null when none did.
	OldestResumedSeconds *float64 `json:"oldest_resumed_seconds"`
	OldestResumedKey     string   `json:"oldest_resumed_key"`
	TicketsFlooded       bool     `json:"tls13_tickets_flooded"`
	Interrupted          string   `json:"interrupted"`
}

// watchKey is what was seen of one ticket key name.
type watchKey struct {
	Name               string  `json:"name"`
	FirstIssuedSeconds float64 `json:"first_issued_seconds"`
	LastIssuedSeconds  float64 `json:"last_issued_seconds"`
	// IssuingSeconds is last - first: a lower bound of how long the key
	// issued, exact to --every when Whole.
	IssuingSeconds float64 `json:"issuing_seconds"`
	// Whole: another key issued before it and after it, so the watch saw
	// all of its turn.
	Whole bool `json:"whole"`
	// TurnSeconds, for a whole turn, is RotatedOutSeconds -
	// FirstIssuedSeconds: how long it issued, to within --every (the
	// window a stolen key opens to tickets issued); null otherwise.
	TurnSeconds *float64 `json:"turn_seconds"`
	Tickets     int      `json:"tickets"`
	// RotatedOutSeconds is when a newer key was first seen issuing; null
	// while it still issues.
	RotatedOutSeconds *float64 `json:"rotated_out_seconds"`
	// ResumedAfterRotation: one of its tickets resumed after it was
	// rotated out; null while it still issues.
	ResumedAfterRotation *bool `json:"resumed_after_rotation"`
	// LastResumedSeconds is the last probe at which one of its tickets
	// resumed; StoppedResumingSeconds the probe at which its oldest ticket
	// first did not (it is not offered again).
	LastResumedSeconds     *float64 `json:"last_resumed_seconds"`
	StoppedResumingSeconds *float64 `json:"stopped_resuming_seconds"`

	kept []keptTicket // oldest first, while still resuming
	dead bool
}

// keptTicket is a session kept by a probe, with its ticket.
type keptTicket struct {
	sess   *sslsession.Session
	issued time.Duration
}

func runWatch(out io.Writer, f *checkFlags, args []string) error {
	switch {
	case f.watch > 24*time.Hour:
		return usageError("--watch must be at most 24h")
	case f.every < 100*time.Millisecond || f.every > f.watch:
		return usageError("--every must be between 100ms and --watch")
	}
	s, err := startRepeated(out, f, args)
	if err != nil {
		return err
	}
	defer s.close()
	bar, stop, tgt, cl := s.bar, s.stop, s.tgt, s.cl
	protos, err := checkProtocols(cl)
	if err != nil {
		return err
	}
	pc := *cl
	pc.min, pc.max = protos[0], protos[0]
	rep := &watchReport{
		Target: tgt.addr, Embedded: tgt.embedded, OpenSSL: sslsession.RuntimeVersion().String(),
		ServerName: cl.serverName, Verified: cl.verify, Protocol: protos[0].String(),
		WatchSeconds: f.watch.Seconds(), EverySeconds: f.every.Seconds(), KeyNames: []watchKey{},
	}
	w := &watcher{
		rateRun: rateRun{cl: &pc, embedded: tgt.embedded, wait: f.ticketWait, stop: stop,
			rep: &rateReport{}, certs: map[string]int{}, keys: map[string]int{}},
		rep: rep, index: map[string]int{}, tls13: protos[0] == sslsession.TLS13,
	}
	defer w.closeAll()
	ctx, err := pc.newCtx(false)
	if err != nil {
		return err
	}
	var pb *progressbar.ProgressBar
	if bar {
		pb = newBar(out, int64(f.watch/f.every)+1, "ticket-key probes")
	}
	w.start = time.Now()
	for i := 0; ; i++ {
		at := time.Duration(i) * f.every
		if at > f.watch || !stop.sleepUntil(w.start.Add(at)) {
			break
		}
		if err := w.probe(ctx); err != nil {
			clearBar(pb)
			return err
		}
		if pb != nil {
			_ = pb.Add(1)
		}
	}
	clearBar(pb)
	w.finish()
	rep.Interrupted = stop.name()
	if f.json {
		err = writeJSON(out, rep)
	} else {
		writeWatch(out, rep)
	}
	if err == nil && rep.Interrupted != "" {
		return stop.err(time.Since(w.start))
	}
	return err
}

// watcher is the state of a --watch run.
type watcher struct {
	rateRun
	rep     *watchReport
	index   map[string]int // key name -> index in rep.KeyNames
	current string         // the key name the last probe's ticket carried
	start   time.Time
	tls13   bool
}

// since is the time since the watch started, in seconds for the report.
func (w *watcher) since() float64 { return round2(time.Since(w.start).Seconds()) }

// probe makes one full handshake, keeps its ticket, and offers the oldest
// ticket kept under each key name still resuming.
func (w *watcher) probe(ctx *openssl.Ctx) error {
	w.rep.Probes++
	sess, err := w.fullSession(ctx, w.tls13)
	if err != nil {
		return err
	}
	w.rep.TicketsFlooded = w.rep.TicketsFlooded || w.rateRun.rep.TicketsFlooded
	now := w.since()
	name, ok := ticketKeyName(sess)
	if !ok || !usable(sess, true) {
		w.rep.NoTicketProbes++
		sess.Close()
	} else {
		i, seen := w.index[name]
		if !seen {
			i = len(w.rep.KeyNames)
			w.index[name] = i
			w.rep.KeyNames = append(w.rep.KeyNames, watchKey{Name: name, FirstIssuedSeconds: now})
		}
		if w.current != "" && name != w.current {
			w.rep.Rotations++
			prev := &w.rep.KeyNames[w.index[w.current]]
			if prev.RotatedOutSeconds == nil {
				t, f := now, false
				prev.RotatedOutSeconds, prev.ResumedAfterRotation = &t, &f
			}
		}
		w.current = name
		k := &w.rep.KeyNames[i]
		k.LastIssuedSeconds = now
		k.Tickets++
		if k.dead {
			sess.Close()
		} else {
			k.kept = append(k.kept, keptTicket{sess: sess, issued: time.Since(w.start)})
		}
	}
	for i := range w.rep.KeyNames {
		k := &w.rep.KeyNames[i]
		if k.dead || len(k.kept) == 0 {
			continue
		}
		oldest := k.kept[0]
		c, err := w.cl.dial(ctx, oldest.sess)
		if err != nil {
			return err
		}
		resumed := c.SessionReused()
		c.close()
		t := w.since()
		if !resumed {
			k.StoppedResumingSeconds = &t
			k.dead = true
			for _, kt := range k.kept {
				kt.sess.Close()
			}
			k.kept = nil
			continue
		}
		k.LastResumedSeconds = &t
		if k.RotatedOutSeconds != nil {
			yes := true
			k.ResumedAfterRotation = &yes
		}
		age := round2((time.Since(w.start) - oldest.issued).Seconds())
		if w.rep.OldestResumedSeconds == nil || age > *w.rep.OldestResumedSeconds {
			w.rep.OldestResumedSeconds = &age
			w.rep.OldestResumedKey = k.Name
		}
	}
	return nil
}

// finish derives the report's summary fields.
func (w *watcher) finish() {
	for i := range w.rep.KeyNames {
		k := &w.rep.KeyNames[i]
		k.IssuingSeconds = round2(k.LastIssuedSeconds - k.FirstIssuedSeconds)
		k.Whole = i > 0 && k.RotatedOutSeconds != nil
		if k.Whole {
			turn := round2(*k.RotatedOutSeconds - k.FirstIssuedSeconds)
			k.TurnSeconds = &turn
		}
	}
	if w.rep.Rotations == 0 {
		return
	}
	overlap := true
	for _, k := range w.rep.KeyNames {
		if k.ResumedAfterRotation != nil && !*k.ResumedAfterRotation {
			overlap = false
		}
	}
	w.rep.Overlap = &overlap
}

func (w *watcher) closeAll() {
	for i := range w.rep.KeyNames {
		for _, kt := range w.rep.KeyNames[i].kept {
			kt.sess.Close()
		}
		w.rep.KeyNames[i].kept = nil
	}
}

// sleepUntil waits until t, or until a signal; false when a signal came.
func (s *stopper) sleepUntil(t time.Time) bool {
	if s.stopped() {
		return false
	}
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case s.got = <-s.sigs:
		return false
	case <-tm.C:
		return true
	}
}

func writeWatch(w io.Writer, r *watchReport) {
	writeHeader(w, r.Target, r.Embedded, r.OpenSSL, r.Protocol)
	if r.Verified {
		line(w, "certificate", "verified for %s", esc(r.ServerName))
	} else {
		line(w, "certificate", "not verified (--insecure)")
	}
	line(w, "watch", "%.1f s, a probe every %.1f s: %d probes", r.WatchSeconds, r.EverySeconds, r.Probes)
	if r.Interrupted != "" {
		line(w, "interrupted", "by %s: partial results", r.Interrupted)
	}
	if r.TicketsFlooded {
		line(w, "ticket flood", "the server kept sending tickets: counting stopped at %d", maxTickets)
	}
	if r.NoTicketProbes > 0 {
		line(w, "no ticket", "%d probe(s) received no ticket", r.NoTicketProbes)
	}
	line(w, "ticket key names", "%d seen issuing, %d rotation(s)", len(r.KeyNames), r.Rotations)
	for _, k := range r.KeyNames {
		span := fmt.Sprintf("issuing %.1f-%.1f s (%.1f s, %d ticket(s)", k.FirstIssuedSeconds, k.LastIssuedSeconds, k.IssuingSeconds, k.Tickets)
		if k.Whole {
			span += fmt.Sprintf(", a turn of %.1f s", *k.TurnSeconds)
		} else {
			span += ", cut by the watch"
		}
		span += ")"
		var after string
		switch {
		case k.RotatedOutSeconds == nil:
			after = "still issuing"
		case *k.ResumedAfterRotation:
			after = fmt.Sprintf("rotated out at %.1f s, still resumed at %.1f s", *k.RotatedOutSeconds, *k.LastResumedSeconds)
		default:
			after = fmt.Sprintf("rotated out at %.1f s, its tickets no longer resumed", *k.RotatedOutSeconds)
		}
		if k.StoppedResumingSeconds != nil {
			after += fmt.Sprintf("; stopped resuming at %.1f s", *k.StoppedResumingSeconds)
		}
		fmt.Fprintf(w, "  %s  %s; %s\n", k.Name, span, after)
	}
	switch {
	case r.Overlap == nil:
		line(w, "overlap", "n/a (no rotation seen)")
	case *r.Overlap:
		line(w, "overlap", "yes: after each rotation, tickets of the previous key still resumed")
	default:
		line(w, "overlap", "NO: after a rotation, tickets of the previous key no longer resumed (clients fall back to full handshakes)")
	}
	if r.OldestResumedSeconds != nil {
		line(w, "oldest resumed", "a ticket %.1f s old (key %s)", *r.OldestResumedSeconds, r.OldestResumedKey)
	} else {
		line(w, "oldest resumed", "none")
	}
	fmt.Fprintln(w)
	var whole []string
	for _, k := range r.KeyNames {
		if k.Whole {
			whole = append(whole, fmt.Sprintf("%.1f s", *k.TurnSeconds))
		}
	}
	switch {
	case len(r.KeyNames) == 0:
		line(w, "result", "no ticket received: nothing to audit")
	case r.Rotations == 0:
		line(w, "result", "one ticket key issued for the whole watch (%.1f s): no rotation seen", r.WatchSeconds)
	case len(whole) > 0:
		line(w, "result", "ticket keys rotate; whole turns seen: %s", strings.Join(whole, ", "))
	default:
		line(w, "result", "ticket keys rotate (%d rotation(s) seen); no whole turn inside the watch", r.Rotations)
	}
}
