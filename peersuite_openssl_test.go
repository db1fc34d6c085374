package sslsession_test

// Session tests of OpenSSL's test/sslapitest.c, written again for this
// API. Each names the test it follows; what it checks is this package's
// behaviour on the running OpenSSL, each side asserted where versions
// differ.

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// ticketCount dials addr through cache, echoes a message and returns how
// many resumable sessions (TLS 1.3: tickets) the cache was given meanwhile,
// and whether the connection resumed. The server writes its tickets right
// after the handshake, before the echo: once the echo is read, every ticket
// has been.
func ticketCount(t *testing.T, addr string, cache *sslsession.ClientCache) (int64, bool) {
	t.Helper()
	before := cache.Stats().Puts
	c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Cache: cache, ServerName: "localhost", Timeout: 10 * time.Second})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))
	return cache.Stats().Puts - before, c.SessionReused()
}

// After OpenSSL test/sslapitest.c, test_stateful_tickets and
// test_stateless_tickets: a server set to send 0, 1 or 3 TLS 1.3 tickets
// (SSL_CTX_set_num_tickets) sends that many after a full handshake, stateless
// or stateful, and the client receives them all; a stateful server keeps
// one session per ticket in its cache. On OpenSSL 1.0.2, which has no TLS
// 1.3, the setting is refused with ErrUnsupported.
func TestPeerOpenSSLNumTickets(t *testing.T) {
	sesstest.LeakCheck(t)
	if sesstest.Is102() {
		sc := sesstest.NewCtx(t, sesstest.ServerCtx(t, sslsession.TLS12, loopback.Config{}))
		require.ErrorIs(t, sc.SetNumTickets(1), sslsession.ErrUnsupported)
		assert.Zero(t, sc.NumTickets())
		require.ErrorIs(t, sc.SetNumTickets(-1), sslsession.ErrInvalidArgument)
		return
	}
	v := sslsession.TLS13
	for _, stateful := range []bool{false, true} {
		name := "stateless"
		if stateful {
			name = "stateful"
		}
		for _, n := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				oc := sesstest.ServerCtx(t, v, loopback.Config{NoTickets: stateful, SessionIDContext: []byte("sslapi-tickets")})
				sc := sesstest.NewCtx(t, oc)
				assert.Equal(t, 2, sc.NumTickets(), "OpenSSL's default")
				require.ErrorIs(t, sc.SetNumTickets(-1), sslsession.ErrInvalidArgument)
				assert.Equal(t, 2, sc.NumTickets(), "a refused setting changes nothing")
				require.NoError(t, sc.SetNumTickets(n))
				assert.Equal(t, n, sc.NumTickets())
				srv := sesstest.Serve(t, oc)
				cache, err := sslsession.NewClientCache(sesstest.ClientCtx(t, v), 4)
				require.NoError(t, err)
				defer cache.Close()

				got, reused := ticketCount(t, srv.Addr, cache)
				assert.False(t, reused)
				assert.Equal(t, int64(n), got, "tickets after a full handshake")
				if stateful {
					assert.Equal(t, int64(n), sc.Metrics().Cache.Number, "one cached session per stateful ticket")
				}
				if n == 0 {
					assert.Zero(t, cache.Len(), "nothing to resume")
					return
				}
				got, reused = ticketCount(t, srv.Addr, cache)
				assert.True(t, reused, "a received ticket resumes")
				assert.Equal(t, int64(1), got, "tickets after a resumption")
				// Set to 0 later, the server sends none after a resumption either.
				require.NoError(t, sc.SetNumTickets(0))
				got, reused = ticketCount(t, srv.Addr, cache)
				assert.True(t, reused)
				assert.Zero(t, got, "no ticket after a resumption with 0")
			})
		}
	}
}
