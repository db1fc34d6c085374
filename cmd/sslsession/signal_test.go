package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckRateWatchProgressAndSignal: --rate and --watch draw a progress
// bar when asked (on a terminal by default, never when piped), and SIGINT
// or SIGTERM ends them with the report of what was seen until then, and
// 128 + the signal.
func TestCheckRateWatchProgressAndSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		args []string
		json bool
	}{
		{"watch SIGINT", syscall.SIGINT, []string{"--watch", "1h", "--every", "200ms"}, false},
		{"watch SIGTERM json", syscall.SIGTERM, []string{"--watch", "1h", "--every", "200ms", "--json"}, true},
		{"rate SIGINT", syscall.SIGINT, []string{"--rate", "100000"}, false},
		{"rate SIGTERM json", syscall.SIGTERM, []string{"--rate", "100000", "--json"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binPath, append([]string{"check", "--tls1.2", "--progress", "always"}, tc.args...)...)
			var out, errb syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			require.NoError(t, cmd.Start())
			// The bar is drawn once the first probe or attempt is done.
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(out.String(), "%") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			require.Contains(t, out.String(), "\r", "no progress bar: %q", out.String())
			require.NoError(t, cmd.Process.Signal(tc.sig))
			err := cmd.Wait()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "stderr: %s", errb.String())
			name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[tc.sig]
			requireError(t, result{out.String(), errb.String(), ee.ExitCode()}, 128+int(tc.sig),
				`^sslsession: interrupted by `+name+` after \d+\.\d{3} s; the report covers what was measured until then$`)
			stdout := out.String()
			switch {
			case tc.json && tc.args[0] == "--watch":
				rep := parseWatch(t, stdout[strings.Index(stdout, "{"):])
				assert.Equal(t, name, rep.Interrupted)
				assert.Positive(t, rep.Probes)
				require.Len(t, rep.KeyNames, 1)
			case tc.json:
				rep := parseRate(t, stdout[strings.Index(stdout, "{"):])
				assert.Equal(t, name, rep.Interrupted)
				require.Len(t, rep.Protocols, 1)
				m := rep.Protocols[0].Mechanisms[0]
				assert.Positive(t, m.Attempted)
				assert.Equal(t, m.Attempted, m.Resumed)
			default:
				require.Regexp(t, `(?m)^interrupted\s+by SIGINT: partial results$`, stdout)
				require.Regexp(t, `(?m)^result\s+`, stdout)
			}
		})
	}
	// Piped, with the default --progress auto: no bar.
	r := runBinary(t, "check", "--tls1.2", "--rate", "2")
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stdout, "\r")
	require.NotContains(t, r.stdout, "%")
}
