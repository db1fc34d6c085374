package main

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// startEarlyLibServer serves TLS 1.3 with early data on a context of this
// library: it reads the early data (ReadEarlyData), completes the
// handshake and closes. The hosts made with one key and one cache form a
// fleet: tickets from one resume on the others.
func startEarlyLibServer(t *testing.T, key sslsession.TicketKey, cache sslsession.ReplayCache, noAntiReplay bool) string {
	t.Helper()
	cert, _, _ := certFiles(t)
	oc, err := loopback.ServerCtx(cert, loopback.Config{Min: sslsession.TLS13, Max: sslsession.TLS13, SessionIDContext: []byte("early")})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	require.NoError(t, sc.SetMaxEarlyData(4096, 0))
	require.NoError(t, sc.SetTicketKeys([]sslsession.TicketRingKey{{Key: key, Encrypt: true}}))
	if cache != nil {
		require.NoError(t, sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{ReplayCache: cache}))
	}
	if noAntiReplay {
		sc.Options(sslsession.OptionNoAntiReplay, 0)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := sslsession.Server(raw, oc)
				if err != nil {
					raw.Close()
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.EarlyData(1 << 20); err != nil {
					return
				}
				if c.Handshake() == nil {
					_, _ = io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func earlyJSON(t *testing.T, r result) earlyReport {
	t.Helper()
	var rep earlyReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return rep
}

// Against openssl s_server -early_data: accepted, and the replay refused
// (s_server's tickets are single use: the replayed ticket is not resumed).
// With -no_anti_replay the replay is accepted, and --require-no-replay
// exits 1.
func TestCheckEarlyDataSServer(t *testing.T) {
	if is102() {
		r := runInProcess("check", "127.0.0.1:1", "--early-data")
		requireError(t, r, exitError, "early data needs OpenSSL 1.1.1 or later")
		return
	}
	s := startSServer(t, "-tls1_3", "-early_data")
	r := runInProcess("check", s.addr, "--cafile", s.certPath, "--servername", "localhost", "--early-data", "--require-no-replay", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	rep := earlyJSON(t, r)
	require.Equal(t, uint32(16384), rep.MaxEarlyData)
	require.True(t, rep.Accepted)
	require.Len(t, rep.Replays, 1)
	require.False(t, rep.Replays[0].Accepted)
	require.Contains(t, rep.Replays[0].Result, "ticket not resumed")

	open := startSServer(t, "-tls1_3", "-early_data", "-no_anti_replay")
	r = runInProcess("check", open.addr, "--cafile", open.certPath, "--servername", "localhost", "--early-data", "--require-no-replay")
	require.Equal(t, exitNoResume, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "REPLAY ACCEPTED")
	require.Contains(t, r.stderr, "--require-no-replay")
}

// Against this library's fleet: three hosts sharing a ticket key and a
// replay cache refuse every replay, the ticket still resumed and the early
// data rejected; without the cache and with OpenSSL's anti-replay off, all
// three accept it.
func TestCheckEarlyDataLibraryFleet(t *testing.T) {
	if is102() {
		return // TestCheckEarlyDataSServer covers 1.0.2
	}
	for _, protected := range []bool{true, false} {
		key, err := sslsession.NewTicketKey()
		require.NoError(t, err)
		var cache sslsession.ReplayCache
		if protected {
			cache = sslsession.NewMemoryReplayCache(0)
		}
		var hosts []string
		for i := 0; i < 3; i++ {
			hosts = append(hosts, startEarlyLibServer(t, key, cache, !protected))
		}
		args := append([]string{"check"}, hosts...)
		r := runInProcess(append(args, "--insecure", "--early-data", "--require-no-replay", "--json")...)
		rep := earlyJSON(t, r)
		require.True(t, rep.Accepted, "protected=%t", protected)
		require.Equal(t, uint32(4096), rep.MaxEarlyData)
		require.Len(t, rep.Replays, 3)
		for _, p := range rep.Replays {
			require.Equal(t, !protected, p.Accepted, "%s: %s", p.Host, p.Result)
			if protected {
				require.Contains(t, p.Result, "ticket resumed, early data rejected")
			}
		}
		if protected {
			require.Equal(t, 0, r.code, r.stderr)
		} else {
			require.Equal(t, exitNoResume, r.code)
		}
	}
}

// The flags that go with --early-data only, and a server that allows none.
func TestCheckEarlyDataUsage(t *testing.T) {
	requireError(t, runInProcess("check", "--require-no-replay"), exitError, "need --early-data")
	requireError(t, runInProcess("check", "--early-data"), exitError, "needs host:port")
	requireError(t, runInProcess("check", "127.0.0.1:1", "--early-data", "--rate", "2"), exitError, "cannot be used with --rate")
	requireError(t, runInProcess("check", "127.0.0.1:1", "--early-data", "--tls1.2"), exitError, "TLS 1.3")
	if is102() {
		return
	}
	srv, certPath := startEmbedded(t, loopback.Config{Min: sslsession.TLS13, Max: sslsession.TLS13})
	r := runInProcess("check", srv.Addr, "--cafile", certPath, "--servername", "localhost", "--early-data")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "allow no early data")
	require.True(t, strings.Contains(r.stdout, "max_early_data          0 bytes"), r.stdout)
}

// The parser of a server's first flight never reads past its input.
func TestParseServerFlightHostile(t *testing.T) {
	for _, b := range [][]byte{nil, {22, 3, 3, 0, 50}, {22, 3, 3, 0, 4, 2, 0, 0, 200}, {22, 3, 3, 0, 1, 2},
		append([]byte{22, 3, 3, 0, 40, 2, 0, 0, 36, 3, 3}, make([]byte, 34)...)} {
		_, ok := parseServerFlight(b)
		require.False(t, ok, "%x", b)
	}
}
