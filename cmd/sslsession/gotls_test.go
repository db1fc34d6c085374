package main

import (
	"crypto/rand"
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Against a Go crypto/tls server: it resumes TLS 1.2 and 1.3 by ticket and
// sends no TLS 1.2 session ID at all. check reports each protocol, says why
// the session ID did not resume, and counts the server as resuming (by
// ticket) under every protocol.
func TestCheckGoServer(t *testing.T) {
	t.Parallel()
	srv := startGoServer(t, tls.VersionTLS12, tls.VersionTLS13, nil)
	r := runBinary(t, "check", srv.addr, "--cafile", srv.certPath, "--servername", "localhost", "-n", "2", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := parseCheck(t, r.stdout)
	requireTopLevel(t, rep)
	var got []string
	for _, p := range rep.Protocols {
		got = append(got, p.Protocol)
		requireMechanism(t, p.TicketResumption, 2, 2)
		if p.Protocol == "TLSv1.2" {
			require.Equal(t, statusNotResumed, p.SessionID.Status)
			assert.Equal(t, "the client offered no session: server sent no session ID", p.SessionID.WhyNot)
		}
	}
	assert.Equal(t, wantProtocols(), got)
	assert.True(t, rep.Resumed, "every protocol resumed by one mechanism")
	r = runBinary(t, "check", srv.addr, "--cafile", srv.certPath, "--servername", "localhost", "-n", "2", "--require-resume")
	require.Equal(t, 0, r.code, r.stderr)
	require.Regexp(t, `(?m)^  why not\s+the client offered no session: server sent no session ID$`, r.stdout)
}

// Two Go servers: with one session-ticket key they resume each other's
// tickets under every protocol (never session IDs); with keys of their own,
// nothing crosses.
func TestCheckCrossHostGoServers(t *testing.T) {
	t.Parallel()
	var shared [32]byte
	_, err := rand.Read(shared[:])
	require.NoError(t, err)
	withKey := func(k [32]byte) func(*tls.Config) {
		return func(c *tls.Config) { c.SetSessionTicketKeys([][32]byte{k}) }
	}
	var other [32]byte
	_, err = rand.Read(other[:])
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		keys  [2][32]byte
		cross bool
	}{{"shared key", [2][32]byte{shared, shared}, true}, {"own keys", [2][32]byte{shared, other}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			a := startGoServer(t, tls.VersionTLS12, tls.VersionTLS13, nil, withKey(tc.keys[0]))
			b := startGoServer(t, tls.VersionTLS12, tls.VersionTLS13, nil, withKey(tc.keys[1]))
			// Two certificates with one subject cannot share a CA file.
			r := runBinary(t, "check", a.addr, b.addr, "--insecure", "--servername", "localhost", "--require-resume", "--json")
			rep := parseCross(t, r.stdout)
			assert.Equal(t, wantProtocols(), rep.Protocols)
			n := 0
			for _, x := range rep.Resumptions {
				n++
				want := x.Mechanism == mechTicket && (x.From == x.To || tc.cross)
				assert.Equal(t, want, x.Resumed, "%s -> %s %s %s: %s", x.From, x.To, x.Protocol, x.Mechanism, x.WhyNot)
				assert.Equal(t, x.Resumed, x.WhyNot == "", "why_not exactly when not resumed")
			}
			mechs := 0
			for _, p := range rep.Protocols {
				mechs += map[string]int{"TLSv1.2": 2, "TLSv1.3": 1}[p]
			}
			assert.Equal(t, 4*mechs, n, "every ordered pair of the two hosts, each mechanism, each protocol")
			if tc.cross {
				require.Equal(t, 0, r.code, r.stderr)
				assert.True(t, rep.Resumed)
			} else {
				require.Equal(t, exitNoResume, r.code, r.stderr)
				assert.False(t, rep.Resumed)
			}
		})
	}
}
