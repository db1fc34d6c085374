// Package reference checks, in process and over 127.0.0.1, what
// SSL_get_session(3) (OpenSSL 1.0.2u, 2019-12-20) says, and the version
// differences the project has found, against the OpenSSL the program links.
// The integration tests (test/manpage_test.go) and the `sslsession
// reference` command run these same checks, so they cannot disagree.
//
// Each check yields a Result: an ID, the claim (in the man page's words
// where it is one of its claims), the observed values, and a verdict: the
// behaviour of the 1.0.2u reference, the known behaviour of another version
// (named), or neither (a mismatch). Observed values are stable from run to
// run on one OpenSSL (no times, pointers or counts that vary), so that two
// machines' reports compare with diff; Detail may hold figures that vary.
package reference

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// The OpenSSL versions whose behaviour the checks know. 3.0 stands for
// 3.0 to 3.4, 3.5 for 3.5 and later.
const (
	V102 = "1.0.2u" // the reference
	V111 = "1.1.1w"
	V30  = "3.0"
	V35  = "3.5"
)

// Versions are the known versions, the reference first.
var Versions = []string{V102, V111, V30, V35}

// Verdicts.
const (
	Reference = "reference" // what 1.0.2u does
	Known     = "known"     // what another version is known to do (Result.Matches names it)
	Mismatch  = "mismatch"  // neither, or the check could not run (Result.Error)
)

// Observed are a check's observed values: bools, integers and strings.
type Observed map[string]any

// key is the canonical JSON of o (encoding/json sorts map keys), so that
// observed values compare whether they were made here or read from a file.
func (o Observed) key() string {
	b, err := json.Marshal(o)
	if err != nil {
		return fmt.Sprintf("%v", map[string]any(o))
	}
	return string(b)
}

// Equal reports whether o and p hold the same values.
func (o Observed) Equal(p Observed) bool { return o.key() == p.key() }

// String is the observed values as "k=v k=v", keys sorted.
func (o Observed) String() string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, o[k])
	}
	return strings.Join(parts, " ")
}

// Behaviour is what some versions are known to do: the values a check
// observes on them.
type Behaviour struct {
	Versions []string
	Observed Observed
}

// Result is one check's outcome.
type Result struct {
	ID       string   `json:"id"`
	Claim    string   `json:"claim"`
	Observed Observed `json:"observed"`
	Verdict  string   `json:"verdict"`
	// Matches names the versions whose known behaviour was observed;
	// empty on a mismatch.
	Matches []string `json:"matches"`
	// Detail says what this OpenSSL did, with figures that may vary from
	// run to run; not compared.
	Detail string `json:"detail,omitempty"`
	// Error is why the check could not run to its end (then a mismatch).
	Error string `json:"error,omitempty"`
}

// Report is every check's result on one OpenSSL.
type Report struct {
	OpenSSL string   `json:"openssl"` // the running library's version text; not compared
	Checks  []Result `json:"checks"`
}

// Options change how the checks run. The zero value is the real check.
type Options struct {
	// FlushSkew is added to the time the flush check flushes at: a
	// deliberately wrong clock, to see a failing check reported as a
	// mismatch.
	FlushSkew time.Duration
}

// Check is one claim and how to check it.
type Check struct {
	ID    string
	Claim string
	// Known are the known behaviours, the reference's first.
	Known []Behaviour
	// TLS13 checks run with TLS 1.3; on an OpenSSL without it they
	// observe only that it is not available, which is 1.0.2u's behaviour.
	TLS13 bool
	run   func(e *env) (Observed, string)
}

// Checks are every check, in report order.
func Checks() []Check { return checks }

// Find returns the check with the given ID.
func Find(id string) (Check, bool) {
	for _, c := range checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// Family is the known version whose behaviour the running OpenSSL should
// have: 1.0.x is 1.0.2u, 1.1.x 1.1.1w, 3.0 to 3.4 3.0, 3.5 and later 3.5.
func Family() string {
	v := sslsession.RuntimeVersion()
	switch {
	case v.Major() == 1 && v.Minor() == 0:
		return V102
	case v.Major() == 1:
		return V111
	case v.Major() == 3 && v.Minor() < 5:
		return V30
	}
	return V35
}

// Run runs every check.
func Run(opts Options) Report {
	r := Report{OpenSSL: sslsession.RuntimeVersionText()}
	cert, err := loopback.SelfSigned()
	for _, c := range checks {
		if err != nil {
			r.Checks = append(r.Checks, c.failed(fmt.Errorf("certificate: %w", err)))
			continue
		}
		r.Checks = append(r.Checks, c.runWith(cert, opts))
	}
	return r
}

// Run runs the check alone.
func (c Check) Run(opts Options) Result {
	cert, err := loopback.SelfSigned()
	if err != nil {
		return c.failed(fmt.Errorf("certificate: %w", err))
	}
	return c.runWith(cert, opts)
}

func (c Check) failed(err error) Result {
	return Result{ID: c.ID, Claim: c.Claim, Observed: Observed{}, Verdict: Mismatch, Matches: []string{}, Error: err.Error()}
}

func (c Check) runWith(cert *loopback.Cert, opts Options) (res Result) {
	e := &env{opts: opts, cert: cert}
	defer func() {
		e.release()
		if p := recover(); p != nil {
			f, ok := p.(failure)
			if !ok {
				panic(p)
			}
			res = c.failed(f.err)
		}
	}()
	var obs Observed
	var detail string
	if c.TLS13 && sslsession.MaxSupportedVersion() < sslsession.TLS13 {
		obs, detail = noTLS13(e)
	} else {
		obs, detail = c.run(e)
	}
	return c.judge(obs, detail)
}

// judge gives the verdict on observed values.
func (c Check) judge(obs Observed, detail string) Result {
	r := Result{ID: c.ID, Claim: c.Claim, Observed: obs, Verdict: Mismatch, Matches: []string{}, Detail: detail}
	for i, b := range c.Known {
		if b.Observed.Equal(obs) {
			r.Matches = append([]string(nil), b.Versions...)
			r.Verdict = Known
			if i == 0 {
				r.Verdict = Reference
			}
			break
		}
	}
	return r
}

// noTLS13 is what a TLS 1.3 check observes on an OpenSSL without TLS 1.3:
// that a context refuses it.
func noTLS13(e *env) (Observed, string) {
	_, c := e.ctxPair(sslsession.TLS12, loopback.Config{})
	err := e.sessCtx(c).SetProtocolRange(sslsession.TLS13, sslsession.TLS13)
	if !is(err, sslsession.ErrUnsupported) {
		e.fail("OpenSSL %s speaks at most %s, but a context accepted TLS 1.3 (%v)",
			sslsession.RuntimeVersion(), sslsession.MaxSupportedVersion(), err)
	}
	return unavailable13, "TLS 1.3 is not available"
}

var unavailable13 = Observed{"tls1.3": "not available"}

// Difference is one check whose result differs between two reports.
type Difference struct {
	ID          string
	Here, There *Result // nil when the check is missing from that report
}

// String describes the difference on one line.
func (d Difference) String() string {
	side := func(r *Result) string {
		if r == nil {
			return "no such check"
		}
		s := fmt.Sprintf("%s (%s", r.Observed, r.Verdict)
		if len(r.Matches) > 0 {
			s += ": " + strings.Join(r.Matches, ", ")
		}
		return s + ")"
	}
	return fmt.Sprintf("%s: here %s; there %s", d.ID, side(d.Here), side(d.There))
}

// Compare lists the checks whose observed values or verdict differ between
// here and there, in here's order, then those only there has.
func Compare(here, there Report) []Difference {
	other := map[string]*Result{}
	for i := range there.Checks {
		other[there.Checks[i].ID] = &there.Checks[i]
	}
	var diffs []Difference
	seen := map[string]bool{}
	for i := range here.Checks {
		h := &here.Checks[i]
		seen[h.ID] = true
		t := other[h.ID]
		if t == nil || !h.Observed.Equal(t.Observed) || h.Verdict != t.Verdict {
			diffs = append(diffs, Difference{ID: h.ID, Here: h, There: t})
		}
	}
	for i := range there.Checks {
		t := &there.Checks[i]
		if !seen[t.ID] {
			diffs = append(diffs, Difference{ID: t.ID, There: t})
		}
	}
	return diffs
}
