package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spacemonkeygo/openssl"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sslsession/sslsession"
)

type benchFlags struct {
	conn     connFlags
	duration time.Duration
	json     bool
	progress string
}

func newBenchCmd(out io.Writer) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench [host:port]",
		Short: "Measure full vs resumed handshakes per second",
		Long: `bench connects to the server again and again for --duration: the first half
with full handshakes, the second half offering a session from one earlier
handshake (with its ticket if the server sent one, else its session ID).
Connections are made one at a time; each one is a TCP connect, the TLS
handshake and a clean close. It reports full handshakes per second, resumed
handshakes per second (counting only handshakes that really resumed) and
their ratio.

A progress bar is drawn while it runs when standard output is a terminal
(--progress auto), never when it is piped.

Without host:port, bench starts the same embedded server as check.`,
		Example: `  sslsession bench
  sslsession bench --duration 10s --tls1.2
  sslsession bench example.com:443 --json --duration 3s`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBench(out, f, args)
		},
	}
	f.conn.register(cmd)
	cmd.Flags().DurationVar(&f.duration, "duration", 5*time.Second, "how long to run, split evenly between full and resumed handshakes")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the report as JSON (see docs/cli.md)")
	cmd.Flags().StringVar(&f.progress, "progress", "auto", "progress bar: auto (when standard output is a terminal), always or never")
	return cmd
}

// benchReport is bench's result; its JSON form is documented in
// docs/cli.md and stable.
type benchReport struct {
	Target          string     `json:"target"`
	Embedded        bool       `json:"embedded"`
	OpenSSL         string     `json:"openssl"`
	Protocol        string     `json:"protocol"`
	Mechanism       string     `json:"mechanism"` // ticket, session_id or none
	DurationSeconds float64    `json:"duration_seconds"`
	Full            benchPhase `json:"full"`
	Resumed         benchPhase `json:"resumed"`
	Ratio           *float64   `json:"ratio"`
	Interrupted     string     `json:"interrupted"` // "SIGINT" or "SIGTERM" when stopped early, else ""
	// TicketsFlooded: after the first handshake the server was still
	// sending TLS 1.3 tickets when bench stopped counting them.
	TicketsFlooded bool `json:"tls13_tickets_flooded"`
}

// benchPhase is one half of a bench run.
type benchPhase struct {
	Handshakes int     `json:"handshakes"` // connections made
	Resumed    int     `json:"resumed"`    // of which resumed
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"` // full: Handshakes/s; resumed: Resumed/s

	elapsed time.Duration
}

// showProgress decides whether to draw the progress bar on out.
func showProgress(mode string, out io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		f, ok := out.(*os.File)
		return ok && term.IsTerminal(int(f.Fd())), nil
	}
	return false, usageError("--progress must be auto, always or never, not %q", mode)
}

func runBench(out io.Writer, f *benchFlags, args []string) error {
	if f.duration <= 0 || f.duration > time.Hour {
		return usageError("--duration must be between 0 and 1h")
	}
	bar, err := showProgress(f.progress, out)
	if err != nil {
		return err
	}
	// SIGINT or SIGTERM ends the run early: what was measured is reported.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stop := &stopper{sigs: sigs}
	tgt, cl, err := openClient(&f.conn, args)
	if err != nil {
		return err
	}
	defer tgt.close()
	ctx, err := cl.newCtx(false)
	if err != nil {
		return err
	}
	rep := &benchReport{
		Target: tgt.addr, Embedded: tgt.embedded, OpenSSL: sslsession.RuntimeVersion().String(),
		DurationSeconds: f.duration.Seconds(),
	}

	// One handshake for the session the resumed half offers.
	first, err := cl.dial(ctx, nil)
	if err != nil {
		return err
	}
	rep.Protocol = first.SSL().Version().String()
	if first.SSL().Version() == sslsession.TLS13 {
		if _, err := first.collectTickets(tgt.embedded, 2*time.Second, ticketSettle); err != nil {
			first.close()
			return ticketError(cl.addr, err)
		}
		rep.TicketsFlooded = first.ticketsCapped
	}
	sess, err := first.Session1()
	first.close()
	if err != nil {
		return failf("no session after the handshake with %s: %s", cl.addr, stripPrefixes(err.Error()))
	}
	defer sess.Close()
	info, err := sess.Info()
	if err != nil {
		return err
	}
	switch {
	case !info.Resumable:
		rep.Mechanism = "none"
	case info.HasTicket:
		rep.Mechanism = "ticket"
	default:
		rep.Mechanism = "session_id"
	}

	var pb *progressbar.ProgressBar
	if bar {
		pb = progressbar.NewOptions64(f.duration.Milliseconds(),
			progressbar.OptionSetWriter(out),
			progressbar.OptionSetDescription("full handshakes   "),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionShowElapsedTimeOnFinish(),
		)
	}
	start := time.Now()
	half := f.duration / 2
	tick := func() {
		if pb != nil {
			_ = pb.Set64(min(time.Since(start), f.duration).Milliseconds())
		}
	}
	rep.Full, err = benchPhaseRun(cl, ctx, nil, half, tick, stop)
	if err != nil {
		clearBar(pb)
		return err
	}
	if pb != nil {
		pb.Describe("resumed handshakes")
	}
	if !stop.stopped() {
		rep.Resumed, err = benchPhaseRun(cl, ctx, sess, f.duration-half, tick, stop)
	}
	clearBar(pb)
	if err != nil {
		return err
	}
	fullRate := rate(rep.Full.Handshakes, rep.Full.elapsed)
	resumedRate := rate(rep.Resumed.Resumed, rep.Resumed.elapsed)
	rep.Full.PerSecond = round2(fullRate)
	rep.Resumed.PerSecond = round2(resumedRate)
	if fullRate > 0 && rep.Resumed.Resumed > 0 {
		r := round2(resumedRate / fullRate)
		rep.Ratio = &r
	}
	rep.Interrupted = stop.name()
	if f.json {
		err = writeJSON(out, rep)
	} else {
		writeBench(out, rep)
	}
	if err == nil && rep.Interrupted != "" {
		return stop.err(time.Since(start))
	}
	return err
}

// stopper notices SIGINT and SIGTERM between handshakes.
type stopper struct {
	sigs chan os.Signal
	got  os.Signal
}

func (s *stopper) stopped() bool {
	if s.got != nil {
		return true
	}
	select {
	case s.got = <-s.sigs:
		return true
	default:
		return false
	}
}

func (s *stopper) name() string {
	switch s.got {
	case nil:
		return ""
	case os.Interrupt:
		return "SIGINT"
	}
	return "SIGTERM"
}

// err ends an interrupted run with the shell's status for the signal,
// 128 + its number, after the report.
func (s *stopper) err(after time.Duration) error {
	code := 128 + int(syscall.SIGTERM)
	if s.got == os.Interrupt {
		code = 128 + int(syscall.SIGINT)
	}
	return &cliError{code: code, msg: fmt.Sprintf("interrupted by %s after %.3f s; the report covers what was measured until then", s.name(), after.Seconds())}
}

// rate is n per second of d, 0 when nothing was timed.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func clearBar(pb *progressbar.ProgressBar) {
	if pb != nil {
		_ = pb.Finish()
	}
}

// benchPhaseRun makes connections one after the other for d (at least one),
// offering sess when it is not nil.
// A signal ends it early, after the handshake under way.
func benchPhaseRun(cl *client, ctx *openssl.Ctx, sess *sslsession.Session, d time.Duration, tick func(), stop *stopper) (benchPhase, error) {
	var p benchPhase
	start := time.Now()
	for {
		c, err := cl.dial(ctx, sess)
		if err != nil {
			return p, err
		}
		p.Handshakes++
		if c.SessionReused() {
			p.Resumed++
		}
		c.close()
		tick()
		if time.Since(start) >= d || stop.stopped() {
			break
		}
	}
	p.elapsed = time.Since(start)
	p.Seconds = round3(p.elapsed.Seconds())
	return p, nil
}

func writeBench(w io.Writer, r *benchReport) {
	writeHeader(w, r.Target, r.Embedded, r.OpenSSL, r.Protocol)
	if r.Interrupted != "" {
		line(w, "interrupted", "by %s: partial results", r.Interrupted)
	}
	if r.TicketsFlooded {
		line(w, "ticket flood", "the server kept sending tickets: counting stopped at %d", maxTickets)
	}
	mech := map[string]string{"ticket": "ticket", "session_id": "session ID", "none": "none (the server gave no resumable session)"}[r.Mechanism]
	line(w, "resumed with", "%s", mech)
	line(w, "full handshakes", "%.1f/s (%d in %.3f s)", r.Full.PerSecond, r.Full.Handshakes, r.Full.Seconds)
	line(w, "resumed handshakes", "%.1f/s (%d of %d resumed in %.3f s)", r.Resumed.PerSecond, r.Resumed.Resumed, r.Resumed.Handshakes, r.Resumed.Seconds)
	if r.Ratio != nil {
		line(w, "ratio", "%.2fx resumed/full", *r.Ratio)
	} else {
		line(w, "ratio", "n/a (nothing resumed)")
	}
}
