package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/reference"
)

// errReferenceDiffers ends a reference run that found a mismatch, or a
// difference from the --against report: exit status 1, after the report.
var errReferenceDiffers = &cliError{code: 1, msg: ""}

func newReferenceCmd(out io.Writer) *cobra.Command {
	var (
		asJSON  bool
		against string
		skew    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "reference",
		Short: "Check SSL_get_session(3)'s claims against the OpenSSL the binary runs with",
		Long: `reference checks, in this process and over 127.0.0.1, every claim of
SSL_get_session(3) (OpenSSL 1.0.2u) and the version differences known for
1.1.1w, 3.0 and 3.5 (default timeout, cache-size bound, statistics under
concurrent handshakes, TLS 1.3 tickets), against the OpenSSL the binary
runs with. It prints one line per claim: what this OpenSSL did, and whether
that is the 1.0.2u reference's behaviour, another version's known behaviour
(named), or neither (MISMATCH).

--json prints one entry per claim (id, observed values, verdict), stable
from run to run, so that two machines' reports compare with diff.
--against FILE compares this OpenSSL's results with a saved --json report
and prints the claims that differ.

Exit status: 0 all checks match a known behaviour (and, with --against, no
difference); 1 a mismatch, or a difference from FILE; 2 an error.`,
		Example: `  sslsession reference
  sslsession reference --json > here.json
  sslsession reference --against reference-1.0.2u.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && against != "" {
				return usageError("--json and --against cannot be used together (see '%s --help')", cmd.CommandPath())
			}
			if err := sslsession.CheckSetup(); err != nil {
				return failf("%s", stripPrefixes(err.Error()))
			}
			var there reference.Report
			if against != "" {
				var err error
				if there, err = readReport(against); err != nil {
					return err
				}
			}
			rep := reference.Run(reference.Options{FlushSkew: skew})
			if against != "" {
				return writeAgainst(out, rep, there, against)
			}
			if asJSON {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else {
				writeReference(out, rep)
			}
			for _, r := range rep.Checks {
				if r.Verdict == reference.Mismatch {
					return errReferenceDiffers
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON (one entry per claim)")
	cmd.Flags().StringVar(&against, "against", "", "compare with a report saved by --json; exit 1 on any difference")
	// A deliberately wrong clock for the flush check, to see a failing
	// check reported as a mismatch.
	cmd.Flags().DurationVar(&skew, "skew-flush", 0, "add this to the time the flush check flushes at")
	_ = cmd.Flags().MarkHidden("skew-flush")
	return cmd
}

// readReport reads a report saved by reference --json.
func readReport(name string) (reference.Report, error) {
	var r reference.Report
	data, err := readInput(name, "reference report (--against)")
	if err != nil {
		return r, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return r, failf("%s is not a reference report: %s", name, err)
	}
	if len(r.Checks) == 0 {
		return r, failf("%s is not a reference report: no checks", name)
	}
	for i, c := range r.Checks {
		if c.ID == "" {
			return r, failf("%s is not a reference report: check %d has no id", name, i+1)
		}
	}
	return r, nil
}

// verdictText says which known behaviour a result matches.
func verdictText(r reference.Result) string {
	switch r.Verdict {
	case reference.Reference:
		return "as " + reference.V102 + " (reference)"
	case reference.Known:
		return "as " + strings.Join(r.Matches, ", ") + ", not " + reference.V102
	}
	return "MISMATCH"
}

func writeReference(w io.Writer, rep reference.Report) {
	counts := map[string]int{}
	for _, r := range rep.Checks {
		counts[r.Verdict]++
	}
	fmt.Fprintf(w, "%s: %d claims, %d as the %s reference, %d as another version, %d mismatches\n",
		rep.OpenSSL, len(rep.Checks), counts[reference.Reference], reference.V102, counts[reference.Known], counts[reference.Mismatch])
	for _, r := range rep.Checks {
		did := r.Detail
		if r.Error != "" {
			did = "error: " + r.Error
		}
		fmt.Fprintf(w, "%s: %s: %s [%s] — %q\n", r.ID, verdictText(r), did, r.Observed, r.Claim)
	}
}

func writeAgainst(w io.Writer, here, there reference.Report, name string) error {
	diffs := reference.Compare(here, there)
	if len(diffs) == 0 {
		fmt.Fprintf(w, "no difference between %s and %s (%s): %d claims\n", here.OpenSSL, esc(name), esc(there.OpenSSL), len(here.Checks))
		return nil
	}
	plural := "s"
	if len(diffs) == 1 {
		plural = ""
	}
	fmt.Fprintf(w, "%d difference%s between %s (here) and %s (there: %s)\n", len(diffs), plural, here.OpenSSL, esc(name), esc(there.OpenSSL))
	for _, d := range diffs {
		// The file's values are quoted as they are: escape what a
		// terminal would act on.
		fmt.Fprintln(w, terminalSafe(d.String()))
	}
	return errReferenceDiffers
}
