package main

import (
	"log"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
)

// The test binary is also the servers' and clients' binary: it plays the
// role named in its environment when the benchmark starts it.
func TestMain(m *testing.M) {
	if ok, err := runRole(); ok {
		if err != nil {
			log.Fatal(err)
		}
		return
	}
	os.Exit(m.Run())
}

// Both benchmarks run end to end with tiny rounds: every implementation
// starts, every mode's handshakes resume or not as they must with the
// pinned suite and group (bench fails otherwise), and the tables come out
// with a figure in every cell that applies. Speed is not checked.
func TestBenchRuns(t *testing.T) {
	for _, side := range []string{"server", "client"} {
		t.Run(side, func(t *testing.T) {
			var out strings.Builder
			o := options{side: side, rounds: 1, per: 50 * time.Millisecond, strace: 3}
			if side == "server" {
				o.idle, o.idleFor = 20, 200*time.Millisecond
			}
			err := bench(&out, o)
			require.NoError(t, err)
			text := out.String()
			t.Log("\n" + text)
			impls := []string{"C", "sslsession", "crypto/tls", "nginx", "Go+C", "Go+C blocking"}
			if side == "client" {
				impls = []string{"C", "sslsession", "crypto/tls", "Go+C", "Go+C blocking"}
			} else {
				require.Contains(t, text, "nginx version")
			}
			require.Contains(t, text, "| mode | "+strings.Join(impls, " | ")+" |")
			labels := []string{"TLS 1.2 full", "TLS 1.2 resumed by session ID", "TLS 1.2 resumed by ticket"}
			if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
				labels = append(labels, "TLS 1.3 full", "TLS 1.3 resumed by ticket")
			}
			for _, title := range []string{"CPU µs per handshake", "Handshakes per second", "System calls per connection"} {
				i := strings.Index(text, title)
				require.GreaterOrEqual(t, i, 0, title)
				for _, label := range labels {
					row := rowOf(t, text[i:], label)
					for j, name := range impls {
						if name == "crypto/tls" && strings.Contains(label, "session ID") {
							require.Equal(t, "–", row[j], "%s: %s %s", title, label, name)
							continue
						}
						require.NotEqual(t, "–", row[j], "%s: %s %s has no figure", title, label, name)
					}
				}
			}
			for _, label := range labels {
				require.Contains(t, text, "- "+label+", sslsession (")
				require.Contains(t, text, "- "+label+", Go+C (")
			}
			i := strings.Index(text, "Idle: ")
			if side == "client" {
				require.Equal(t, -1, i, "the idle part is the server side's")
				return
			}
			require.GreaterOrEqual(t, i, 0, "no idle part")
			require.Contains(t, text[i:], "Idle: 20 open TLS")
			for _, name := range []string{"sslsession", "crypto/tls", "nginx", "Go+C"} {
				row := rowOf(t, text[i:], name)
				require.Len(t, row, 8, name)
				for j, cell := range row[:6] {
					v, err := strconv.ParseFloat(strings.TrimSuffix(cell, " %"), 64)
					require.NoError(t, err, "%s, column %d: %q", name, j+2, cell)
					require.GreaterOrEqual(t, v, 0.0, name)
				}
				threads, _ := strconv.Atoi(row[2])
				require.Positive(t, threads, "%s: threads", name)
				sockets, err := strconv.Atoi(row[6])
				require.NoError(t, err)
				require.GreaterOrEqual(t, sockets, 20, "%s: sockets", name)
				require.Equal(t, "10 of 10", row[7], "%s: connections used", name)
			}
			require.NotContains(t, text[i:], "| C |", "the C server serves one connection at a time")
		})
	}
}

// rowOf returns the cells after the label of the first row labelled so.
func rowOf(t *testing.T, text, label string) []string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "| "+label+" |") {
			cells := strings.Split(strings.Trim(l, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			return cells[1:]
		}
	}
	t.Fatalf("no row %q in %s", label, text)
	return nil
}

// A round the C peer saw differently from what the mode asks fails it.
func TestCheck(t *testing.T) {
	full12, id12, ticket13 := mode{"12", "full"}, mode{"12", "id"}, mode{"13", "ticket"}
	s12, g := full12.expect()
	ok := result{n: 4, suites: map[string]int{s12: 4}, groups: map[string]int{g: 4}}
	require.NoError(t, check(full12, ok))

	resumed := result{n: 4, resumed: 4, suites: map[string]int{s12: 4}, groups: map[string]int{"none": 4}}
	require.NoError(t, check(id12, resumed))
	require.ErrorContains(t, check(full12, resumed), "resumed")

	partly := resumed
	partly.resumed = 3
	require.ErrorContains(t, check(id12, partly), "3 of 4 handshakes resumed")

	mixed := ok
	mixed.suites = map[string]int{s12: 3, "ECDHE-ECDSA-AES256-GCM-SHA384": 1}
	require.ErrorContains(t, check(full12, mixed), "suites")

	otherGroup := ok
	otherGroup.groups = map[string]int{"P-384": 4}
	require.ErrorContains(t, check(full12, otherGroup), "groups")

	s13, g13 := ticket13.expect()
	require.Equal(t, g, g13, "TLS 1.3 resumption exchanges keys on the same group")
	require.NoError(t, check(ticket13, result{n: 2, resumed: 2, suites: map[string]int{s13: 2}, groups: map[string]int{g13: 2}}))

	require.ErrorContains(t, check(full12, result{}), "no handshake")
	failed := ok
	failed.failed = 1
	require.ErrorContains(t, check(full12, failed), "failed")
}

func TestParseResult(t *testing.T) {
	r, err := parseResult("ok n=12 resumed=11 failed=0 ns=5000 suites=A:11,B:1 groups=X25519:12")
	require.NoError(t, err)
	require.Equal(t, 12, r.n)
	require.Equal(t, 11, r.resumed)
	require.Equal(t, int64(5000), r.ns)
	require.Equal(t, map[string]int{"A": 11, "B": 1}, r.suites)
	require.Equal(t, map[string]int{"X25519": 12}, r.groups)

	r, err = parseResult("ok n=0 resumed=0 failed=0 suites=- groups=-")
	require.NoError(t, err)
	require.Empty(t, r.suites)

	for _, bad := range []string{"", "error handshake", "ok n=x", "ok n", "ok suites=A:x", "ok suites=A"} {
		_, err := parseResult(bad)
		require.Error(t, err, bad)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and a parenthesis, as /proc allows.
	stat := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 6 0 100 0 0"
	d, err := parseStat(stat)
	require.NoError(t, err)
	require.Equal(t, 325*clockTick, d)
	_, err = parseStat("4242 (x) S 1 2")
	require.Error(t, err)
	_, err = parseStat("no name")
	require.Error(t, err)
}

func TestCPUSince(t *testing.T) {
	s0 := cpuSnap{ticks: 10 * clockTick, threads: map[string]time.Duration{"1": 5 * time.Millisecond, "2": time.Millisecond}}
	s1 := cpuSnap{ticks: 12 * clockTick, threads: map[string]time.Duration{"1": 7 * time.Millisecond, "2": 2 * time.Millisecond, "3": time.Millisecond}}
	require.Equal(t, 4*time.Millisecond, cpuSince(s0, s1), "threads' nanoseconds, a new thread's included")
	delete(s1.threads, "2")
	require.Equal(t, 2*clockTick, cpuSince(s0, s1), "a thread ended: the ticks, which count it")

	now, err := snapCPU(os.Getpid())
	require.NoError(t, err)
	require.NotEmpty(t, now.threads)
}

func TestParseStraceSummary(t *testing.T) {
	// strace -c's table, the errors column empty where there were none.
	out := `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600          10        60           read
 40.00    0.000400           5        80        20 futex
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           7       140        20 total
`
	calls, err := parseStraceSummary(out)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"read": 60, "futex": 80}, calls)
	_, err = parseStraceSummary("strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n")
	require.Error(t, err)
}
