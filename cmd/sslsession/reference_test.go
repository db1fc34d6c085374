package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession/internal/reference"
)

// referenceReportFile is the report `sslsession reference --json` made on
// a version of the matrix, saved by `go test -run TestReference -update`
// on that version: the real binary's output, unedited.
func referenceReportFile(version string) string {
	return filepath.Join("testdata", "reference-"+version+".json")
}

// maskReport drops what varies from run to run or machine to machine:
// the library's version text and the details with their figures.
func maskReport(t *testing.T, data []byte) reference.Report {
	t.Helper()
	var r reference.Report
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&r), "%s", data)
	r.OpenSSL = "(masked)"
	for i := range r.Checks {
		r.Checks[i].Detail = ""
	}
	return r
}

// The report on this OpenSSL: every claim matches the running version's
// known behaviour, and it equals the saved report of the same version with
// the volatile values masked.
func TestReferenceReportJSON(t *testing.T) {
	r := runBinary(t, "reference", "--json")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	require.Empty(t, r.stderr)
	file := referenceReportFile(reference.Family())
	if *update {
		require.NoError(t, os.WriteFile(file, []byte(r.stdout), 0o644))
	}
	got := maskReport(t, []byte(r.stdout))
	require.Len(t, got.Checks, len(reference.Checks()))
	for i, c := range got.Checks {
		require.Equal(t, reference.Checks()[i].ID, c.ID)
		require.NotEqual(t, reference.Mismatch, c.Verdict, "%s: %s", c.ID, c.Observed)
		require.Contains(t, c.Matches, reference.Family(), "%s: %s", c.ID, c.Observed)
		require.Empty(t, c.Error, c.ID)
	}
	// Exactly the documented keys, in a stable order.
	var raw struct {
		OpenSSL string            `json:"openssl"`
		Checks  []json.RawMessage `json:"checks"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &raw))
	require.Contains(t, raw.OpenSSL, "OpenSSL")
	for _, c := range raw.Checks {
		var keys map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(c, &keys))
		for k := range keys {
			require.Contains(t, []string{"id", "claim", "observed", "verdict", "matches", "detail"}, k)
		}
	}

	saved, err := os.ReadFile(file)
	require.NoError(t, err, "no saved report for OpenSSL %s: run go test -run TestReferenceReportJSON -update on it", reference.Family())
	require.Equal(t, maskReport(t, saved), got)
}

// One line per claim, and a summary.
func TestReferenceText(t *testing.T) {
	r := runInProcess("reference")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, 1+len(reference.Checks()))
	require.Regexp(t, `^OpenSSL .*: \d+ claims, \d+ as the 1\.0\.2u reference, \d+ as another version, 0 mismatches$`, lines[0])
	for i, c := range reference.Checks() {
		require.True(t, strings.HasPrefix(lines[i+1], c.ID+": as "), lines[i+1])
		require.Contains(t, lines[i+1], c.Claim)
	}
}

// --against the saved report of the same version: no difference. Against
// each other version's: exactly the checks the README's table says differ
// between the two versions.
func TestReferenceAgainst(t *testing.T) {
	readme := readmeDifferences(t)
	here := reference.Family()
	for _, there := range reference.Versions {
		t.Run(there, func(t *testing.T) {
			r := runBinary(t, "reference", "--against", referenceReportFile(there))
			require.Empty(t, r.stderr)
			want := readme.between(here, there)
			if len(want) == 0 {
				require.Equal(t, 0, r.code, r.stdout)
				require.Regexp(t, `^no difference between OpenSSL .* and `, r.stdout)
				return
			}
			require.Equal(t, 1, r.code, r.stdout)
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			require.Regexp(t, `^\d+ differences? between OpenSSL .* \(here\) and .*\(there: OpenSSL `+regexp.QuoteMeta(there), lines[0])
			require.True(t, strings.HasPrefix(lines[0], fmt.Sprintf("%d difference", len(lines)-1)), lines[0])
			var ids []string
			for _, l := range lines[1:] {
				id, _, ok := strings.Cut(l, ": here ")
				require.True(t, ok, l)
				require.Contains(t, l, "; there ")
				ids = append(ids, id)
			}
			// Every difference is a row of the table, and every row of
			// the table that differs shows up.
			for _, id := range ids {
				require.True(t, want.matches(id), "%s differs between %s and %s, but the README's table says it does not", id, here, there)
			}
			for _, p := range want {
				require.True(t, anyMatch(p, ids), "the README's table says %s differs between %s and %s; --against found %v", p, here, there, ids)
			}
		})
	}
}

// A check made to fail (the flush check's clock three hours fast) is
// reported as a mismatch, with exit status 1, in text and JSON.
func TestReferenceForcedMismatch(t *testing.T) {
	r := runInProcess("reference", "--skew-flush", "3h")
	require.Equal(t, 1, r.code, r.stdout)
	require.Empty(t, r.stderr)
	require.Regexp(t, `(?m)^flush-removes-timed-out/tls1\.2: MISMATCH: flush removed 3 of 3 entries \(flush clock skewed by 3h0m0s\)`, r.stdout)
	require.Regexp(t, `mismatches$`, strings.SplitN(r.stdout, "\n", 2)[0])
	require.NotRegexp(t, `: 0 mismatches`, strings.SplitN(r.stdout, "\n", 2)[0])

	j := runInProcess("reference", "--json", "--skew-flush", "3h")
	require.Equal(t, 1, j.code)
	rep := maskReport(t, []byte(j.stdout))
	for _, c := range rep.Checks {
		if c.ID == "flush-removes-timed-out/tls1.2" {
			require.Equal(t, reference.Mismatch, c.Verdict)
			require.Empty(t, c.Matches)
		}
	}
	// And --against a good report of the same version shows it.
	a := runInProcess("reference", "--skew-flush", "3h", "--against", referenceReportFile(reference.Family()))
	require.Equal(t, 1, a.code)
	require.Contains(t, a.stdout, "flush-removes-timed-out/tls1.2: here ")
	require.Contains(t, a.stdout, "(mismatch)")
}

func TestReferenceErrors(t *testing.T) {
	requireError(t, runBinary(t, "reference", "--against", "no-such-report.json"), 2,
		`^sslsession: cannot read no-such-report.json: no such file or directory$`)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("not json"), 0o600))
	requireError(t, runBinary(t, "reference", "--against", bad), 2, `^sslsession: .*bad.json is not a reference report: `)
	empty := filepath.Join(dir, "empty.json")
	require.NoError(t, os.WriteFile(empty, []byte(`{"openssl":"x","checks":[]}`), 0o600))
	requireError(t, runBinary(t, "reference", "--against", empty), 2, `is not a reference report: no checks$`)
	requireError(t, runBinary(t, "reference", "--json", "--against", empty), 2, `--json and --against cannot be used together`)
	requireError(t, runBinary(t, "reference", "extra"), 2, `unknown command|accepts 0 arg`)
}

// tableDiffs is, for the README's table of version differences, each row's
// check ids (glob patterns) with its cell per version.
type tableDiffs []tableRow

type tableRow struct {
	ids   []string
	cells map[string]string
}

type patterns []string

func (p patterns) matches(id string) bool { return matchesAny(p, id) }

// matchesAny reports whether id matches one of the patterns ps.
func matchesAny(ps []string, id string) bool {
	for _, p := range ps {
		if ok, _ := path.Match(p, id); ok {
			return true
		}
	}
	return false
}

// anyMatch reports whether some id matches the pattern p.
func anyMatch(p string, ids []string) bool {
	for _, id := range ids {
		if ok, _ := path.Match(p, id); ok {
			return true
		}
	}
	return false
}

// between is the id patterns of the rows whose cells differ between two
// versions.
func (d tableDiffs) between(a, b string) patterns {
	var out patterns
	for _, r := range d {
		if r.cells[a] != r.cells[b] {
			out = append(out, r.ids...)
		}
	}
	sort.Strings(out)
	return out
}

// readmeDifferences parses the README's table "What the man page says, and
// what each version does": columns claim, check, then one per version; a
// cell "same" is the cell to its left.
func readmeDifferences(t *testing.T) tableDiffs {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(data), "## What the man page says, and what each version does")
	require.True(t, ok, "README has no version table")
	var header []string
	var rows tableDiffs
	idRe := regexp.MustCompile("`([^`]+)`")
	for _, l := range strings.Split(section, "\n") {
		if !strings.HasPrefix(l, "|") {
			if header != nil {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			require.Equal(t, append([]string{"claim", "check"}, reference.Versions...), header, "README's table columns")
			continue
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		require.Len(t, cells, len(header), l)
		row := tableRow{cells: map[string]string{}}
		for _, m := range idRe.FindAllStringSubmatch(cells[1], -1) {
			row.ids = append(row.ids, m[1])
		}
		require.NotEmpty(t, row.ids, "row without a check id: %s", l)
		prev := ""
		for i, v := range reference.Versions {
			c := cells[2+i]
			if c == "same" {
				c = prev
			}
			row.cells[v] = c
			prev = c
		}
		rows = append(rows, row)
	}
	require.NotEmpty(t, rows)
	// Every check is in the table.
	for _, c := range reference.Checks() {
		found := false
		for _, r := range rows {
			found = found || matchesAny(r.ids, c.ID)
		}
		require.True(t, found, "check %s is in no row of the README's table", c.ID)
	}
	return rows
}
