package main

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// floodSlack is what a command may take past --timeout against a hostile
// server: process start, the embedded steps that are not network I/O.
const floodSlack = 3 * time.Second

// runTimed runs the binary and returns its result and how long it took.
func runTimed(t *testing.T, args ...string) (result, time.Duration) {
	t.Helper()
	start := time.Now()
	r := runBinary(t, args...)
	return r, time.Since(start)
}

// TestTicketFlood: a TLS 1.3 server that never stops sending tickets
// (openssl s_server -num_tickets 2000000000) holds no command past
// --timeout; the tickets counted are capped and the report says the server
// flooded.
func TestTicketFlood(t *testing.T) {
	t.Parallel()
	if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
		// 1.0.2: there is no TLS 1.3 and no ticket after the handshake; the
		// flag says so (the slow server below checks the deadline here).
		r := runBinary(t, "save", "127.0.0.1:1", "--tls1.3", "-o", filepath.Join(t.TempDir(), "s.pem"))
		requireError(t, r, exitError, `^sslsession: TLS 1\.3 is not available: OpenSSL 1\.0\.2\S* speaks at most TLSv1\.2$`)
		return
	}
	srv := startSServer(t, "-tls1_3", "-num_tickets", "2000000000")
	timeout := 2 * time.Second
	common := []string{"--insecure", "--timeout", timeout.String()}
	file := filepath.Join(t.TempDir(), "sess.pem")

	t.Run("save", func(t *testing.T) {
		r, took := runTimed(t, append([]string{"save", srv.addr, "-o", file, "--ticket-wait", "1s"}, common...)...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Less(t, took, timeout+floodSlack)
		require.Regexp(t, fmt.Sprintf(`(?m)^ticket flood\s+the server kept sending tickets: saved the %dth, stopped reading there$`, maxTickets), r.stdout)
		require.Regexp(t, `(?m)^resumable\s+yes$`, r.stdout)
	})
	t.Run("resume", func(t *testing.T) {
		r, took := runTimed(t, append([]string{"resume", srv.addr, "-i", file, "--json"}, common...)...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Less(t, took, timeout+floodSlack)
		rep := parseResume(t, r.stdout)
		assert.True(t, rep.Resumed, rep.WhyNot)
	})
	t.Run("check", func(t *testing.T) {
		r, took := runTimed(t, append([]string{"check", srv.addr, "--json", "-n", "2"}, common...)...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Less(t, took, timeout+floodSlack)
		rep := parseCheck(t, r.stdout)
		require.NotNil(t, rep.TLS13Tickets)
		assert.Equal(t, maxTickets, *rep.TLS13Tickets)
		assert.True(t, rep.TicketsFlooded)
		assert.Equal(t, 2, rep.TicketResumption.ResumedCount)

		r, _ = runTimed(t, append([]string{"check", srv.addr, "-n", "1"}, common...)...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, fmt.Sprintf(`(?m)^TLS 1\.3 tickets\s+%d received after the full handshake\nticket flood\s+the server kept sending tickets: counting stopped at %d$`, maxTickets, maxTickets), r.stdout)
	})
	t.Run("check cross-host", func(t *testing.T) {
		other := startSServer(t, "-tls1_3")
		r, took := runTimed(t, append([]string{"check", srv.addr, other.addr, "--json", "--servername", "localhost"}, common...)...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Less(t, took, 2*timeout+floodSlack)
		rep := parseCross(t, r.stdout)
		assert.Equal(t, []string{srv.addr}, rep.TicketsFlooded)
		requireMatrix(t, rep, func(from, to string) bool { return from == to })
	})
	t.Run("bench", func(t *testing.T) {
		r, took := runTimed(t, append([]string{"bench", srv.addr, "--duration", "1s", "--json"}, common...)...)
		require.Equal(t, 0, r.code, r.stderr)
		assert.Less(t, took, 1*time.Second+timeout+floodSlack)
		rep := parseBench(t, r.stdout)
		assert.True(t, rep.TicketsFlooded)
		assert.Greater(t, rep.Resumed.Resumed, 0)
	})
}

// TestSlowServer: a server that answers the ClientHello one byte every
// 100 ms forever never ends a handshake; every command gives up at
// --timeout, whatever the protocol.
func TestSlowServer(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	addr := sesstest.ServeTCP(t, func(c net.Conn) {
		defer c.Close()
		// A handshake record of 16 KiB that never completes.
		if _, err := c.Write([]byte{0x16, 0x03, 0x03, 0x40, 0x00}); err != nil {
			return
		}
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				if _, err := c.Write([]byte{0x02}); err != nil {
					return
				}
			}
		}
	})
	t.Cleanup(func() { close(done) })
	timeout := time.Second
	for _, args := range [][]string{
		{"save", addr, "-o", filepath.Join(t.TempDir(), "x.pem")},
		{"check", addr},
		{"bench", addr, "--duration", "1s"},
	} {
		r, took := runTimed(t, append(args, "--insecure", "--timeout", timeout.String())...)
		requireError(t, r, exitError, `^sslsession: TLS handshake with `+regexp.QuoteMeta(addr)+` timed out$`)
		assert.Less(t, took, timeout+floodSlack, "%v", args)
	}
}
