package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// parseCheck decodes check --json output, refusing unknown fields so that
// the documented schema and the output cannot drift apart silently.
func parseCheck(t *testing.T, out string) checkReport {
	t.Helper()
	var rep checkReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep), "check --json output: %s", out)
	return rep
}

// requireTopLevel checks that the top level of a parsed report is its first
// protocol's report. JSON has one "resumed" at the top (every protocol's),
// which shadows the embedded one: that field is compared apart.
func requireTopLevel(t *testing.T, rep checkReport) {
	t.Helper()
	require.NotEmpty(t, rep.Protocols)
	top := rep.protocolReport
	top.Resumed = rep.Protocols[0].Resumed
	require.Equal(t, rep.Protocols[0], top)
	all := true
	for _, p := range rep.Protocols {
		all = all && p.Resumed
	}
	require.Equal(t, all, rep.Resumed, "resumed is every protocol's")
}

// requireMechanism checks one mechanism of a parsed report.
func requireMechanism(t *testing.T, m mechanism, n, resumed int) {
	t.Helper()
	require.Len(t, m.Attempts, n)
	require.Equal(t, resumed, m.ResumedCount)
	got := 0
	for _, a := range m.Attempts {
		if a.Resumed {
			got++
		}
		require.Greater(t, a.HandshakeMS, 0.0)
	}
	require.Equal(t, resumed, got, "attempts disagree with resumed_count")
	if resumed == n {
		require.Empty(t, m.WhyNot, "why_not of a mechanism that resumed")
	} else {
		require.NotEmpty(t, m.WhyNot, "a mechanism that did not resume says why")
	}
	require.NotNil(t, m.FullHandshakeMS)
	require.Greater(t, *m.FullHandshakeMS, 0.0)
	switch {
	case resumed == n:
		require.Equal(t, statusResumed, m.Status)
	case resumed > 0:
		require.Equal(t, statusPartly, m.Status)
	default:
		require.Equal(t, statusNotResumed, m.Status)
	}
	if resumed > 0 {
		require.NotNil(t, m.ResumedMedianMS)
		require.NotNil(t, m.Speedup)
		require.Greater(t, *m.Speedup, 0.0)
	} else {
		require.Nil(t, m.ResumedMedianMS)
		require.Nil(t, m.Speedup)
	}
}

func requireNA(t *testing.T, m mechanism) {
	t.Helper()
	require.Equal(t, statusNA, m.Status)
	require.Empty(t, m.Attempts)
	require.NotNil(t, m.Attempts, "attempts must be [] in JSON, not null")
	require.Nil(t, m.FullHandshakeMS)
}

// TestCheckEmbeddedGolden runs check against the embedded server in process
// and compares the human report, timings masked, with the golden file.
func TestCheckEmbeddedGolden(t *testing.T) {
	t.Run("tls1.2", func(t *testing.T) {
		r := runInProcess("check", "--tls1.2")
		require.Equal(t, 0, r.code, r.stderr)
		require.Empty(t, r.stderr)
		golden(t, "check-tls12.golden", r.stdout)
	})
	t.Run("tls1.3", func(t *testing.T) {
		if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
			// OpenSSL 1.0.2: TLS 1.3 does not exist, and check says so.
			require.Equal(t, sslsession.TLS12, sslsession.MaxSupportedVersion())
			r := runInProcess("check", "--tls1.3")
			require.Equal(t, exitError, r.code)
			require.Empty(t, r.stdout)
			require.Equal(t, "sslsession: TLS 1.3 is not available: OpenSSL "+sslsession.RuntimeVersion().String()+" speaks at most TLSv1.2\n", r.stderr)
			return
		}
		r := runInProcess("check", "--tls1.3")
		require.Equal(t, 0, r.code, r.stderr)
		golden(t, "check-tls13.golden", r.stdout)
	})
	t.Run("no-resumption", func(t *testing.T) {
		srv, certPath := startEmbedded(t, loopback.Config{NoCache: true, NoTickets: true})
		r := runInProcess("check", srv.Addr, "--cafile", certPath, "--tls1.2", "-n", "2")
		require.Equal(t, 0, r.code, r.stderr)
		golden(t, "check-noresume-tls12.golden", r.stdout)
	})
}

// TestCheckEmbeddedJSON checks the JSON report of the embedded default, for
// every protocol the library speaks.
func TestCheckEmbeddedJSON(t *testing.T) {
	r := runInProcess("check", "--tls1.2", "--json", "-n", "2")
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseCheck(t, r.stdout)
	assert.True(t, rep.Embedded)
	assert.True(t, rep.Verified)
	assert.Equal(t, "TLSv1.2", rep.Protocol)
	assert.Equal(t, sslsession.RuntimeVersion().String(), rep.OpenSSL)
	assert.NotEmpty(t, rep.Cipher)
	require.NotNil(t, rep.SessionIDLength)
	assert.Equal(t, 32, *rep.SessionIDLength)
	assert.True(t, rep.Ticket)
	assert.Positive(t, rep.TicketLifetimeHint)
	assert.Nil(t, rep.TLS13Tickets)
	requireMechanism(t, rep.SessionID, 2, 2)
	requireMechanism(t, rep.TicketResumption, 2, 2)
	assert.True(t, rep.Resumed)
	assert.True(t, strings.HasPrefix(rep.Target, "127.0.0.1:"), rep.Target)

	// The raw JSON has exactly the documented keys, and no secret.
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &raw))
	for _, k := range []string{"target", "embedded", "openssl", "server_name", "verified", "protocol", "cipher",
		"session_id_length", "ticket", "ticket_lifetime_hint_seconds", "tls13_tickets", "tls13_tickets_flooded",
		"session_id_resumption", "ticket_resumption", "resumed", "protocols", "protocols_refused"} {
		assert.Contains(t, raw, k)
	}
	assert.Len(t, raw, 17)
	// --tls1.2 restricts the check to TLS 1.2, and the top level repeats it.
	require.Len(t, rep.Protocols, 1)
	requireTopLevel(t, rep)
	assert.Empty(t, rep.ProtocolsRefused)
	assert.NotNil(t, rep.ProtocolsRefused, "protocols_refused must be [] in JSON, not null")
	assert.NotContains(t, r.stdout, "master")

	if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
		require.Equal(t, sslsession.TLS12, sslsession.MaxSupportedVersion())
		r := runInProcess("check", "--tls1.3", "--json")
		require.Equal(t, exitError, r.code)
		require.Contains(t, r.stderr, "TLS 1.3 is not available")
		// Without a version flag the embedded default speaks TLS 1.2.
		r = runInProcess("check", "--json", "-n", "1")
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, "TLSv1.2", parseCheck(t, r.stdout).Protocol)
		return
	}
	r = runInProcess("check", "--tls1.3", "--json", "-n", "2")
	require.Equal(t, 0, r.code, r.stderr)
	rep = parseCheck(t, r.stdout)
	assert.Equal(t, "TLSv1.3", rep.Protocol)
	assert.Nil(t, rep.SessionIDLength)
	require.NotNil(t, rep.TLS13Tickets)
	// OpenSSL servers send two tickets after a TLS 1.3 handshake by default
	// (SSL_CTX_set_num_tickets(3)); both must be counted.
	assert.Equal(t, 2, *rep.TLS13Tickets)
	assert.True(t, rep.Ticket)
	requireNA(t, rep.SessionID)
	requireMechanism(t, rep.TicketResumption, 2, 2)
	assert.True(t, rep.Resumed)
}

// TestCheckEmbeddedBinary is what make demo runs: the binary against its
// embedded server, requiring resumption.
func TestCheckEmbeddedBinary(t *testing.T) {
	t.Parallel()
	r := runBinary(t, "check", "--require-resume")
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	require.Contains(t, r.stdout, "(embedded server)")
	require.Regexp(t, `(?m)^result\s+resumption confirmed \(`, r.stdout)
	require.Regexp(t, `(?m)^ticket resumption\s+resumed 3/3$`, r.stdout)
}

// TestCheckResumptionOff: a server with its session cache and tickets off
// must be reported as not resuming, and --require-resume exits 1. The
// embedded loopback server is used because s_server 1.0.2 cannot turn its
// cache off.
func TestCheckResumptionOff(t *testing.T) {
	t.Parallel()
	srv, certPath := startEmbedded(t, loopback.Config{NoCache: true, NoTickets: true, Max: sslsession.TLS12})
	r := runBinary(t, "check", srv.Addr, "--cafile", certPath, "--servername", "localhost", "--json", "-n", "2", "--require-resume")
	require.Equal(t, exitNoResume, r.code, r.stderr)
	require.Equal(t, "sslsession: session was not resumed (--require-resume)\n", r.stderr)
	rep := parseCheck(t, r.stdout)
	assert.False(t, rep.Resumed)
	assert.False(t, rep.Ticket)
	require.NotNil(t, rep.SessionIDLength)
	assert.Equal(t, 0, *rep.SessionIDLength)
	requireMechanism(t, rep.SessionID, 2, 0)
	requireMechanism(t, rep.TicketResumption, 2, 0)
	assert.Equal(t, "server sent no session ID", rep.SessionID.Note)
	assert.Equal(t, "server sent no ticket", rep.TicketResumption.Note)
	assert.Equal(t, "the client offered no session: server sent no session ID", rep.SessionID.WhyNot)
	assert.Equal(t, "the client offered no session: server sent no ticket", rep.TicketResumption.WhyNot)
	assert.Equal(t, "localhost", rep.ServerName)

	// Cache off, tickets on: only tickets resume.
	srv2, certPath2 := startEmbedded(t, loopback.Config{NoCache: true, Max: sslsession.TLS12})
	r = runBinary(t, "check", srv2.Addr, "--cafile", certPath2, "--json", "-n", "2", "--require-resume")
	require.Equal(t, 0, r.code, r.stderr)
	rep = parseCheck(t, r.stdout)
	requireMechanism(t, rep.SessionID, 2, 0)
	requireMechanism(t, rep.TicketResumption, 2, 2)
	assert.True(t, rep.Resumed)

	// The human report says it too.
	r = runBinary(t, "check", srv.Addr, "--cafile", certPath, "-n", "1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^session-ID resumption\s+not resumed 0/1 \(server sent no session ID\)$`, r.stdout)
	require.Regexp(t, `(?m)^ticket resumption\s+not resumed 0/1 \(server sent no ticket\)$`, r.stdout)
	require.Regexp(t, `(?m)^  attempt 1\s+not resumed\s+\d+\.\d{3} ms$`, r.stdout)
	require.Regexp(t, `(?m)^  why not\s+the client offered no session: server sent no ticket$`, r.stdout)
	require.Regexp(t, `(?m)^result\s+resumption NOT confirmed`, r.stdout)
}

// TestCheckOpenSSLServer runs the binary against `openssl s_server` of the
// same OpenSSL, with session IDs and tickets on and off, TLS 1.2 and 1.3,
// and checks that the report says what really happened.
func TestCheckOpenSSLServer(t *testing.T) {
	type want struct {
		id, ticket  int // resumed attempts (-1: n/a)
		hasTicket   bool
		idLen       int
		tickets     int // TLS 1.3 tickets counted after the full handshake
		resumed     bool
		protocol    string
		needTLS13   bool
		skipOn102   bool // flag s_server 1.0.2 lacks; covered by TestCheckResumptionOff there
		ticketNote  string
		sessionNote string
		ticketWhy   string // regexp the ticket mechanism's why_not matches; "" when it resumed
	}
	cases := []struct {
		name   string
		server []string
		client []string
		want   want
	}{
		{"tls1.2 cache and tickets", []string{"-tls1_2"}, []string{"--tls1.2"},
			want{id: 2, ticket: 2, hasTicket: true, idLen: 32, resumed: true, protocol: "TLSv1.2"}},
		{"tls1.2 no tickets", []string{"-tls1_2", "-no_ticket"}, []string{"--tls1.2"},
			want{id: 2, ticket: 0, idLen: 32, resumed: true, protocol: "TLSv1.2", ticketNote: "server sent no ticket",
				ticketWhy: `^the client offered no session: server sent no ticket$`}},
		{"tls1.2 no cache", []string{"-tls1_2", "-no_cache"}, []string{"--tls1.2"},
			want{id: 0, ticket: 2, hasTicket: true, idLen: 0, resumed: true, protocol: "TLSv1.2", skipOn102: true, sessionNote: "server sent no session ID"}},
		{"tls1.2 no cache no tickets", []string{"-tls1_2", "-no_cache", "-no_ticket"}, []string{"--tls1.2"},
			want{id: 0, ticket: 0, idLen: 0, resumed: false, protocol: "TLSv1.2", skipOn102: true,
				ticketNote: "server sent no ticket", sessionNote: "server sent no session ID",
				ticketWhy: `^the client offered no session: server sent no ticket$`}},
		{"tls1.3 tickets", []string{"-tls1_3"}, []string{"--tls1.3"},
			want{id: -1, ticket: 2, hasTicket: true, tickets: 2, resumed: true, protocol: "TLSv1.3", needTLS13: true}},
		{"tls1.3 stateful tickets", []string{"-tls1_3", "-no_ticket"}, []string{"--tls1.3"},
			want{id: -1, ticket: 2, hasTicket: true, tickets: 2, resumed: true, protocol: "TLSv1.3", needTLS13: true}},
		// OpenSSL 3 still sends (stateful) tickets with its cache off, but
		// cannot find them again: nothing resumes.
		{"tls1.3 no cache no tickets", []string{"-tls1_3", "-no_cache", "-no_ticket"}, []string{"--tls1.3"},
			want{id: -1, ticket: 0, hasTicket: true, tickets: 2, resumed: false, protocol: "TLSv1.3", needTLS13: true,
				ticketNote: "server did not resume the offered session",
				ticketWhy:  `^offered a TLSv1\.3 session \(TLS_\w+, ticket \d+ bytes\); the server made a full handshake with 2 new ticket\(s\)$`}},
		// The counts are exact: OpenSSL makes a session per ticket.
		{"tls1.3 five tickets", []string{"-tls1_3", "-num_tickets", "5"}, []string{"--tls1.3"},
			want{id: -1, ticket: 2, hasTicket: true, tickets: 5, resumed: true, protocol: "TLSv1.3", needTLS13: true}},
		// No ticket at all: the attempts still run, offer nothing, and do
		// not resume.
		{"tls1.3 no tickets sent", []string{"-tls1_3", "-num_tickets", "0"}, []string{"--tls1.3"},
			want{id: -1, ticket: 0, hasTicket: false, tickets: 0, resumed: false, protocol: "TLSv1.3", needTLS13: true,
				ticketNote: "no ticket received", ticketWhy: `^the client offered no session: no ticket received$`}},
		{"default version", nil, nil,
			want{ticket: 2, hasTicket: true, resumed: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := tc.want
			if w.needTLS13 && sslsession.MaxSupportedVersion() < sslsession.TLS13 {
				// No TLS 1.3 in this OpenSSL: check refuses it, with status 2.
				require.Equal(t, sslsession.TLS12, sslsession.MaxSupportedVersion())
				srv := startSServer(t)
				r := runBinary(t, append([]string{"check", srv.addr, "--cafile", srv.certPath, "--servername", "localhost"}, tc.client...)...)
				requireError(t, r, exitError, `^sslsession: TLS 1\.3 is not available: OpenSSL 1\.0\.2\w* speaks at most TLSv1\.2$`)
				return
			}
			server := tc.server
			if is102() {
				if tc.want.skipOn102 {
					// s_server 1.0.2 has no -no_cache: its cache is always
					// on, which the case with tickets off shows.
					server = []string{"-no_ticket"}
					w = want{id: 2, ticket: 0, idLen: 32, resumed: true, protocol: "TLSv1.2", ticketNote: "server sent no ticket",
						ticketWhy: `^the client offered no session: server sent no ticket$`}
				}
				// s_server 1.0.2 has -tls1_2 too; nothing else differs.
			}
			srv := startSServer(t, server...)
			// Long enough for tickets on a loaded machine; a server that
			// sends none costs the whole wait on each connection.
			wait := "2s"
			if w.needTLS13 && w.tickets == 0 {
				wait = "500ms"
			}
			args := append([]string{"check", srv.addr, "--cafile", srv.certPath, "--servername", "localhost",
				"--json", "-n", "2", "--require-resume", "--ticket-wait", wait}, tc.client...)
			r := runBinary(t, args...)
			if w.resumed {
				require.Equal(t, 0, r.code, r.stderr)
			} else {
				require.Equal(t, exitNoResume, r.code, r.stderr)
			}
			rep := parseCheck(t, r.stdout)
			assert.Equal(t, w.resumed, rep.Resumed)
			assert.False(t, rep.Embedded)
			assert.True(t, rep.Verified)
			if tc.client == nil {
				// The newest protocol both speak.
				w.protocol = sslsession.MaxSupportedVersion().String()
				if w.protocol == "TLSv1.2" {
					w.id, w.idLen = 2, 32
				} else {
					w.id, w.tickets = -1, 2
				}
			}
			assert.Equal(t, w.protocol, rep.Protocol)
			assert.Equal(t, w.hasTicket, rep.Ticket)
			if w.id < 0 {
				requireNA(t, rep.SessionID)
				assert.Nil(t, rep.SessionIDLength)
				require.NotNil(t, rep.TLS13Tickets)
				assert.Equal(t, w.tickets, *rep.TLS13Tickets)
			} else {
				requireMechanism(t, rep.SessionID, 2, w.id)
				require.NotNil(t, rep.SessionIDLength)
				assert.Equal(t, w.idLen, *rep.SessionIDLength)
				assert.Nil(t, rep.TLS13Tickets)
				assert.Equal(t, w.sessionNote, rep.SessionID.Note)
			}
			requireMechanism(t, rep.TicketResumption, 2, w.ticket)
			assert.Equal(t, w.ticketNote, rep.TicketResumption.Note)
			if w.ticketWhy == "" {
				assert.Empty(t, rep.TicketResumption.WhyNot)
			} else {
				assert.Regexp(t, w.ticketWhy, rep.TicketResumption.WhyNot)
			}
			// One protocol when a flag pins it; without one, the server's
			// newest and, after TLS 1.3, TLS 1.2 (s_server speaks both).
			if tc.client != nil || sslsession.MaxSupportedVersion() < sslsession.TLS13 {
				require.Len(t, rep.Protocols, 1)
			} else {
				require.Len(t, rep.Protocols, 2)
				assert.Equal(t, "TLSv1.2", rep.Protocols[1].Protocol)
				requireMechanism(t, rep.Protocols[1].SessionID, 2, 2)
				requireMechanism(t, rep.Protocols[1].TicketResumption, 2, 2)
			}
			requireTopLevel(t, rep)
			assert.Empty(t, rep.ProtocolsRefused)
			if w.hasTicket {
				assert.Positive(t, rep.TicketLifetimeHint)
			}
		})
	}
}

// TestCheckBothProtocols: without a version flag check reports every
// protocol the server speaks, newest first (TLS 1.3, then TLS 1.2; only
// TLS 1.2 on OpenSSL 1.0.2), and --require-resume asks for resumption under
// each.
func TestCheckBothProtocols(t *testing.T) {
	has13 := sslsession.MaxSupportedVersion() >= sslsession.TLS13
	t.Run("embedded golden", func(t *testing.T) {
		r := runInProcess("check", "--require-resume")
		require.Equal(t, 0, r.code, r.stderr)
		require.Empty(t, r.stderr)
		if !has13 {
			// One protocol: the report is the TLS 1.2 one, line for line.
			require.Equal(t, sslsession.TLS12, sslsession.MaxSupportedVersion())
			golden(t, "check-tls12.golden", r.stdout)
			return
		}
		golden(t, "check-both.golden", r.stdout)
	})
	t.Run("embedded json", func(t *testing.T) {
		r := runInProcess("check", "--json", "-n", "2")
		require.Equal(t, 0, r.code, r.stderr)
		rep := parseCheck(t, r.stdout)
		want := []string{"TLSv1.2"}
		if has13 {
			want = []string{"TLSv1.3", "TLSv1.2"}
		}
		require.Len(t, rep.Protocols, len(want))
		for i, p := range rep.Protocols {
			assert.Equal(t, want[i], p.Protocol)
			assert.True(t, p.Resumed, p.Protocol)
			requireMechanism(t, p.TicketResumption, 2, 2)
			if p.Protocol == "TLSv1.2" {
				requireMechanism(t, p.SessionID, 2, 2)
				require.NotNil(t, p.SessionIDLength)
				assert.Nil(t, p.TLS13Tickets)
			} else {
				requireNA(t, p.SessionID)
				require.NotNil(t, p.TLS13Tickets)
				assert.Equal(t, 2, *p.TLS13Tickets)
			}
		}
		requireTopLevel(t, rep)
		assert.Empty(t, rep.ProtocolsRefused)
		assert.True(t, rep.Resumed)
		if has13 {
			// --tls1.3 restricts it.
			r := runInProcess("check", "--tls1.3", "--json", "-n", "1")
			require.Equal(t, 0, r.code, r.stderr)
			rep := parseCheck(t, r.stdout)
			require.Len(t, rep.Protocols, 1)
			assert.Equal(t, "TLSv1.3", rep.Protocols[0].Protocol)
		}
	})
	t.Run("s_server tls1.2 only", func(t *testing.T) {
		t.Parallel()
		srv := startSServer(t, "-tls1_2")
		r := runBinary(t, "check", srv.addr, "--cafile", srv.certPath, "--servername", "localhost", "--json", "-n", "2", "--require-resume")
		require.Equal(t, 0, r.code, r.stderr)
		rep := parseCheck(t, r.stdout)
		require.Len(t, rep.Protocols, 1, "the server negotiated TLS 1.2: nothing else is tried")
		assert.Equal(t, "TLSv1.2", rep.Protocol)
		requireMechanism(t, rep.SessionID, 2, 2)
		requireMechanism(t, rep.TicketResumption, 2, 2)
		assert.Empty(t, rep.ProtocolsRefused)
	})
	if !has13 {
		return
	}
	t.Run("s_server tls1.3 only", func(t *testing.T) {
		t.Parallel()
		srv := startSServer(t, "-tls1_3")
		args := []string{"check", srv.addr, "--cafile", srv.certPath, "--servername", "localhost", "-n", "2", "--require-resume"}
		r := runBinary(t, append(args, "--json")...)
		require.Equal(t, 0, r.code, r.stderr)
		rep := parseCheck(t, r.stdout)
		require.Len(t, rep.Protocols, 1)
		assert.Equal(t, "TLSv1.3", rep.Protocol)
		require.Len(t, rep.ProtocolsRefused, 1)
		assert.Equal(t, "TLSv1.2", rep.ProtocolsRefused[0].Protocol)
		assert.Regexp(t, `^TLS handshake with 127\.0\.0\.1:\d+ failed: \S.*protocol version`, rep.ProtocolsRefused[0].Error)
		assert.True(t, rep.Resumed)
		r = runBinary(t, args...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `(?m)^protocol\s+TLSv1\.3$`, r.stdout)
		require.Regexp(t, `(?m)^not spoken\s+TLSv1\.2 \(TLS handshake with 127\.0\.0\.1:\d+ failed: .*protocol version\)$`, r.stdout)
		require.Regexp(t, `(?m)^result\s+resumption confirmed \(ticket 2/2\)$`, r.stdout)
	})
	t.Run("s_server no tls1.3 tickets", func(t *testing.T) {
		t.Parallel()
		// TLS 1.3 sends no ticket, TLS 1.2 resumes both ways: resumption is
		// not confirmed, because it must hold under every protocol.
		srv := startSServer(t, "-num_tickets", "0")
		args := []string{"check", srv.addr, "--cafile", srv.certPath, "--servername", "localhost", "-n", "2",
			"--require-resume", "--ticket-wait", "300ms"}
		r := runBinary(t, append(args, "--json")...)
		require.Equal(t, exitNoResume, r.code, r.stderr)
		rep := parseCheck(t, r.stdout)
		require.Len(t, rep.Protocols, 2)
		assert.False(t, rep.Protocols[0].Resumed)
		requireMechanism(t, rep.Protocols[0].TicketResumption, 2, 0)
		assert.Equal(t, "the client offered no session: no ticket received", rep.Protocols[0].TicketResumption.WhyNot)
		assert.True(t, rep.Protocols[1].Resumed)
		assert.False(t, rep.Resumed)
		r = runBinary(t, args...)
		require.Equal(t, exitNoResume, r.code, r.stderr)
		require.Regexp(t, `(?m)^== TLSv1\.3$`, r.stdout)
		require.Regexp(t, `(?m)^== TLSv1\.2$`, r.stdout)
		require.Regexp(t, `(?m)^result\s+resumption NOT confirmed \(TLSv1\.3: ticket 0/2; TLSv1\.2: session ID 2/2, ticket 2/2\)$`, r.stdout)
	})
}
