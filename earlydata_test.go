package sslsession_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// A first connection makes a session that allows early data; the next one
// sends its request as early data, accepted; the same ticket again is
// refused by OpenSSL's single-use tickets, and the request still arrives
// once, after the handshake (or is handed back with KeepRejectedEarlyData).
func TestEarlyDataAcceptedOnceThenRejected(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sesstest.EarlyDataOr102(t) {
		return
	}
	oc, sc := sesstest.EarlyServerCtx(t)
	srv := sesstest.StartEarlyServer(t, oc)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	ccx := sesstest.NewCtx(t, cctx)

	c, early, echo := sesstest.EarlyDial(t, srv.Addr, cctx, nil, "GET /1", false)
	require.Equal(t, sslsession.EarlyDataNotSent, c.EarlyDataStatus(), "no session, no early data")
	require.Empty(t, early)
	require.Equal(t, "GET /1", echo, "sent after the handshake instead")
	require.Equal(t, sslsession.EarlyDataNotSent, srv.Event(t).Status)
	sess, err := c.AwaitSession(5 * time.Second)
	require.NoError(t, err)
	defer sess.Close()
	info, err := sess.Info()
	require.NoError(t, err)
	require.Equal(t, uint32(16384), info.MaxEarlyData, "the ticket carries the server's max_early_data")
	require.Contains(t, info.String(), "max_early_data=16384")
	max, err := sess.MaxEarlyData()
	require.NoError(t, err)
	require.Equal(t, uint32(16384), max)

	c, early, echo = sesstest.EarlyDial(t, srv.Addr, cctx, sess, "GET /2", false)
	require.True(t, c.SessionReused())
	require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
	require.Equal(t, "GET /2", early, "the server's application got it as early data")
	require.Empty(t, echo)
	ev := srv.Event(t)
	require.Equal(t, sslsession.EarlyDataAccepted, ev.Status)
	require.Equal(t, "GET /2", string(ev.Early))

	for _, keep := range []bool{false, true} {
		c, early, echo = sesstest.EarlyDial(t, srv.Addr, cctx, sess, "GET /3", keep)
		require.False(t, c.SessionReused(), "a ticket is single use while the server accepts early data")
		require.Equal(t, sslsession.EarlyDataRejected, c.EarlyDataStatus())
		require.Empty(t, early, "rejected early data never reaches the application")
		ev = srv.Event(t)
		require.Equal(t, sslsession.EarlyDataRejected, ev.Status)
		require.Empty(t, ev.Early)
		if keep {
			require.Empty(t, echo, "handed back, not re-sent")
		} else {
			require.Equal(t, "GET /3", echo, "re-sent after the handshake")
		}
	}
	m := sc.Metrics().EarlyData
	require.Equal(t, sslsession.EarlyDataStats{Offered: 3, Accepted: 1, Rejected: 2}, m, "server counters")
	require.Equal(t, sslsession.EarlyDataStats{Offered: 3, Accepted: 1, Rejected: 2}, ccx.Metrics().EarlyData, "client counters")
}

// Early data beyond the session's max goes as early data up to the max,
// the rest after the handshake, in order.
func TestEarlyDataLongerThanMax(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sesstest.EarlyDataOr102(t) {
		return
	}
	oc := sesstest.ServerCtx(t, sslsession.TLS13, loopback.Config{})
	require.NoError(t, sesstest.NewCtx(t, oc).SetMaxEarlyData(10, 0))
	srv := sesstest.StartEarlyServer(t, oc)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	c, _, _ := sesstest.EarlyDial(t, srv.Addr, cctx, nil, "x", false)
	srv.Event(t)
	sess, err := c.AwaitSession(5 * time.Second)
	require.NoError(t, err)
	defer sess.Close()
	c, early, echo := sesstest.EarlyDial(t, srv.Addr, cctx, sess, "0123456789abcdef", false)
	require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
	require.Equal(t, "0123456789", early)
	require.Equal(t, "abcdef", echo)
	srv.Event(t)
}

// The policy's Allow refuses per connection, and a panic in it refuses
// too, without crashing the server.
func TestEarlyDataPolicyAllow(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sesstest.EarlyDataOr102(t) {
		return
	}
	oc, sc := sesstest.EarlyServerCtx(t)
	var mu sync.Mutex
	mode := "yes"
	var seen []sslsession.EarlyDataRequest
	require.NoError(t, sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{Allow: func(r sslsession.EarlyDataRequest) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r)
		switch mode {
		case "panic":
			panic("user callback")
		case "no":
			return false
		}
		return true
	}}))
	srv := sesstest.StartEarlyServer(t, oc)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	fresh := func() *sslsession.Session {
		c, _, _ := sesstest.EarlyDial(t, srv.Addr, cctx, nil, "x", false)
		srv.Event(t)
		s, err := c.AwaitSession(5 * time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	for _, m := range []string{"yes", "no", "panic"} {
		mu.Lock()
		mode = m
		mu.Unlock()
		c, early, echo := sesstest.EarlyDial(t, srv.Addr, cctx, fresh(), "req", false)
		require.True(t, c.SessionReused(), m)
		ev := srv.Event(t)
		if m == "yes" {
			require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
			require.Equal(t, "req", early)
			continue
		}
		require.Equal(t, sslsession.EarlyDataRejected, c.EarlyDataStatus(), m)
		require.Equal(t, sslsession.EarlyDataRejected, ev.Status, m)
		require.Empty(t, early, m)
		require.Equal(t, "req", echo, m)
	}
	mu.Lock()
	require.Len(t, seen, 3)
	require.Equal(t, "localhost", seen[0].ServerName)
	require.NotNil(t, seen[0].RemoteAddr)
	require.WithinDuration(t, time.Now(), seen[0].SessionCreated, time.Minute)
	mu.Unlock()
	m := sc.Metrics().EarlyData
	require.Equal(t, int64(1), m.Refused)
	require.Equal(t, int64(1), m.Panics)
	require.Equal(t, int64(1), m.Accepted)
}

// Misuse: wrong side, wrong time, a fallback connection: typed errors.
func TestEarlyDataMisuse(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sesstest.EarlyDataOr102(t) {
		return
	}
	oc, _ := sesstest.EarlyServerCtx(t)
	srv := sesstest.StartEarlyServer(t, oc)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	c, _, _ := sesstest.EarlyDial(t, srv.Addr, cctx, nil, "x", false)
	srv.Event(t)
	_, err := c.ReadEarlyData(make([]byte, 10))
	require.ErrorIs(t, err, sslsession.ErrEarlyDataPhase, "after the handshake")
	_, err = c.WriteEarlyData([]byte("x"))
	require.ErrorIs(t, err, sslsession.ErrEarlyDataPhase)

	raw, err := net.Dial("tcp", srv.Addr)
	require.NoError(t, err)
	cl, err := sslsession.Client(raw, cctx, nil)
	require.NoError(t, err)
	_, err = cl.ReadEarlyData(make([]byte, 10))
	require.ErrorIs(t, err, sslsession.ErrEarlyDataPhase, "a client reads no early data")
	require.NoError(t, cl.Close())
	srv.Event(t)

	_, err = sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, InsecureSkipVerify: true, EarlyData: []byte("x"),
		WrapConn: func(c net.Conn) net.Conn { return countingConn{Conn: c, read: new(atomic.Int64)} }})
	require.ErrorIs(t, err, sslsession.ErrUnsupported, "spacemonkeygo's path has no early data")

	var zero sslsession.Conn
	_, err = zero.ReadEarlyData(nil)
	require.ErrorIs(t, err, sslsession.ErrNilSSL)
	require.Equal(t, sslsession.EarlyDataNotSent, zero.EarlyDataStatus())

	var nilCtx *sslsession.Ctx
	require.Error(t, nilCtx.SetMaxEarlyData(1, 1))
	require.Error(t, nilCtx.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{}))
	_, sc := sesstest.EarlyServerCtx(t)
	err = sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{ReplayWindow: time.Second})
	require.ErrorIs(t, err, sslsession.ErrInvalidArgument)
}

// OpenSSL 1.0.2 has no early data: every call says so with ErrUnsupported.
func TestEarlyDataUnsupported(t *testing.T) {
	sesstest.LeakCheck(t)
	if sslsession.EarlyDataSupported() {
		require.False(t, sesstest.Is102())
		return
	}
	require.True(t, sesstest.Is102())
	oc := sesstest.ServerCtx(t, sslsession.TLS12, loopback.Config{})
	sc := sesstest.NewCtx(t, oc)
	require.ErrorIs(t, sc.SetMaxEarlyData(16384, 0), sslsession.ErrUnsupported)
	require.ErrorIs(t, sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{}), sslsession.ErrUnsupported)
	srv := sesstest.Serve(t, oc)
	cctx := sesstest.ClientCtx(t, sslsession.TLS12)
	_, sess := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
	defer sess.Close()
	_, err := sess.MaxEarlyData()
	require.ErrorIs(t, err, sslsession.ErrUnsupported)
	info, err := sess.Info()
	require.NoError(t, err)
	require.Zero(t, info.MaxEarlyData)
	_, err = sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, Session: sess, ServerName: "localhost", EarlyData: []byte("x")})
	require.ErrorIs(t, err, sslsession.ErrUnsupported)
	var e *sslsession.Error
	require.True(t, errors.As(err, &e))
}

// panicCache panics; slowCache answers after its delay whatever the
// context says.
type panicCache struct{}

func (panicCache) Add(context.Context, []byte, time.Duration) (bool, error) { panic("replay cache") }

type slowCache struct{ delay time.Duration }

func (s slowCache) Add(context.Context, []byte, time.Duration) (bool, error) {
	time.Sleep(s.delay)
	return true, nil
}

// A replay cache that panics or does not answer in time refuses the early
// data (a store failure), and the server goes on.
func TestEarlyDataReplayCacheFaults(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sesstest.EarlyDataOr102(t) {
		return
	}
	for name, cache := range map[string]sslsession.ReplayCache{"panic": panicCache{}, "slow": slowCache{time.Second}} {
		t.Run(name, func(t *testing.T) {
			oc, sc := sesstest.EarlyServerCtx(t)
			require.NoError(t, sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{ReplayCache: cache, Timeout: 50 * time.Millisecond}))
			srv := sesstest.StartEarlyServer(t, oc)
			cctx := sesstest.ClientCtx(t, sslsession.TLS13)
			c, _, _ := sesstest.EarlyDial(t, srv.Addr, cctx, nil, "x", false)
			srv.Event(t)
			sess, err := c.AwaitSession(5 * time.Second)
			require.NoError(t, err)
			defer sess.Close()
			c, early, echo := sesstest.EarlyDial(t, srv.Addr, cctx, sess, "GET /f", false)
			srv.Event(t)
			require.True(t, c.SessionReused())
			require.Equal(t, sslsession.EarlyDataRejected, c.EarlyDataStatus())
			require.Empty(t, early)
			require.Equal(t, "GET /f", echo)
			m := sc.Metrics().EarlyData
			require.Equal(t, int64(1), m.StoreFailures)
			require.Equal(t, name == "panic", m.Panics == 1)
		})
	}
}

// A ClientCache's session carries early data: the first Dial through the
// cache makes the session, the next sends its request as early data.
func TestEarlyDataClientCache(t *testing.T) {
	sesstest.LeakCheck(t)
	if !sesstest.EarlyDataOr102(t) {
		return
	}
	oc, _ := sesstest.EarlyServerCtx(t)
	srv := sesstest.StartEarlyServer(t, oc)
	cc, err := sslsession.NewClientCache(sesstest.ClientCtx(t, sslsession.TLS13), 0)
	require.NoError(t, err)
	defer cc.Close()
	dial := func(req string) (*sslsession.Conn, string) {
		c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cc, ServerName: "localhost",
			Timeout: 10 * time.Second, EarlyData: []byte(req)})
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		line, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		return c, line
	}
	c, line := dial("one")
	require.Equal(t, sslsession.EarlyDataNotSent, c.EarlyDataStatus())
	require.Equal(t, "early=\n", line)
	srv.Event(t)
	require.Eventually(t, func() bool { return cc.Len() > 0 }, 5*time.Second, 5*time.Millisecond, "the cache took the tickets")
	c, line = dial("two")
	require.True(t, c.SessionReused())
	require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
	require.Equal(t, "early="+hex.EncodeToString([]byte("two"))+"\n", line)
	srv.Event(t)
}
