package sslsession_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// earlyEvent is what an early data server saw on one connection: the early
// data delivered to the application, the status, and how the early phase
// ended.
type earlyEvent struct {
	early  []byte
	status sslsession.EarlyDataStatus
	err    error
}

// earlyServer reads each connection's early data with ReadEarlyData, then
// completes the handshake, answers "early=<hex>\n" and echoes.
type earlyServer struct {
	addr   string
	events chan earlyEvent
}

func startEarlyServer(t testing.TB, oc *openssl.Ctx) *earlyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &earlyServer{addr: ln.Addr().String(), events: make(chan earlyEvent, 64)}
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
				s.handle(raw, oc)
			}()
		}
	}()
	return s
}

func (s *earlyServer) handle(raw net.Conn, oc *openssl.Ctx) {
	c, err := sslsession.Server(raw, oc)
	if err != nil {
		raw.Close()
		s.events <- earlyEvent{err: err}
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var ev earlyEvent
	buf := make([]byte, 4096)
	for {
		n, err := c.ReadEarlyData(buf)
		ev.early = append(ev.early, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			ev.err = err
			break
		}
	}
	ev.status = c.EarlyDataStatus()
	s.events <- ev
	if ev.err != nil || c.Handshake() != nil {
		return
	}
	if _, err := fmt.Fprintf(c, "early=%s\n", hex.EncodeToString(ev.early)); err != nil {
		return
	}
	_, _ = io.Copy(c, c)
}

func (s *earlyServer) event(t testing.TB) earlyEvent {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event from the early data server")
		return earlyEvent{}
	}
}

// earlyDataOr102 reports whether the linked OpenSSL has early data. On
// 1.0.2, the one version without, it asserts that the server's calls say
// so with ErrUnsupported (TestEarlyDataUnsupported has the client's), and
// the test ends there.
func earlyDataOr102(t *testing.T) bool {
	t.Helper()
	if sslsession.EarlyDataSupported() {
		require.False(t, sesstest.Is102())
		return true
	}
	require.True(t, sesstest.Is102())
	sc := sesstest.NewCtx(t, sesstest.ServerCtx(t, sslsession.TLS12, loopback.Config{}))
	require.ErrorIs(t, sc.SetMaxEarlyData(16384, 0), sslsession.ErrUnsupported)
	err := sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{ReplayCache: sslsession.NewMemoryReplayCache(0)})
	require.ErrorIs(t, err, sslsession.ErrUnsupported)
	return false
}

// earlyServerCtx is a TLS 1.3 server context allowing 16 KiB of early data.
func earlyServerCtx(t testing.TB) (*openssl.Ctx, *sslsession.Ctx) {
	t.Helper()
	oc := sesstest.ServerCtx(t, sslsession.TLS13, loopback.Config{})
	sc := sesstest.NewCtx(t, oc)
	require.NoError(t, sc.SetMaxEarlyData(16384, 0))
	return oc, sc
}

// earlyDial dials with data as early data and returns the connection, the
// early data the server reports and the rest of the stream it echoes.
func earlyDial(t testing.TB, addr string, cctx *openssl.Ctx, sess *sslsession.Session, data string, keep bool) (*sslsession.Conn, string, string) {
	t.Helper()
	c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, Session: sess, ServerName: "localhost",
		Timeout: 10 * time.Second, EarlyData: []byte(data), KeepRejectedEarlyData: keep})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	early, err := hex.DecodeString(strings.TrimSuffix(strings.TrimPrefix(line, "early="), "\n"))
	require.NoError(t, err)
	want := len(data) - len(early)
	if c.EarlyDataStatus() == sslsession.EarlyDataRejected && keep {
		want = 0
	}
	echo := make([]byte, want)
	_, err = io.ReadFull(r, echo)
	require.NoError(t, err)
	return c, string(early), string(echo)
}

// A first connection makes a session that allows early data; the next one
// sends its request as early data, accepted; the same ticket again is
// refused by OpenSSL's single-use tickets, and the request still arrives
// once, after the handshake (or is handed back with KeepRejectedEarlyData).
func TestEarlyDataAcceptedOnceThenRejected(t *testing.T) {
	sesstest.LeakCheck(t)
	if !earlyDataOr102(t) {
		return
	}
	oc, sc := earlyServerCtx(t)
	srv := startEarlyServer(t, oc)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	ccx := sesstest.NewCtx(t, cctx)

	c, early, echo := earlyDial(t, srv.addr, cctx, nil, "GET /1", false)
	require.Equal(t, sslsession.EarlyDataNotSent, c.EarlyDataStatus(), "no session, no early data")
	require.Empty(t, early)
	require.Equal(t, "GET /1", echo, "sent after the handshake instead")
	require.Equal(t, sslsession.EarlyDataNotSent, srv.event(t).status)
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

	c, early, echo = earlyDial(t, srv.addr, cctx, sess, "GET /2", false)
	require.True(t, c.SessionReused())
	require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
	require.Equal(t, "GET /2", early, "the server's application got it as early data")
	require.Empty(t, echo)
	ev := srv.event(t)
	require.Equal(t, sslsession.EarlyDataAccepted, ev.status)
	require.Equal(t, "GET /2", string(ev.early))

	for _, keep := range []bool{false, true} {
		c, early, echo = earlyDial(t, srv.addr, cctx, sess, "GET /3", keep)
		require.False(t, c.SessionReused(), "a ticket is single use while the server accepts early data")
		require.Equal(t, sslsession.EarlyDataRejected, c.EarlyDataStatus())
		require.Empty(t, early, "rejected early data never reaches the application")
		ev = srv.event(t)
		require.Equal(t, sslsession.EarlyDataRejected, ev.status)
		require.Empty(t, ev.early)
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
	if !earlyDataOr102(t) {
		return
	}
	oc := sesstest.ServerCtx(t, sslsession.TLS13, loopback.Config{})
	require.NoError(t, sesstest.NewCtx(t, oc).SetMaxEarlyData(10, 0))
	srv := startEarlyServer(t, oc)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	c, _, _ := earlyDial(t, srv.addr, cctx, nil, "x", false)
	srv.event(t)
	sess, err := c.AwaitSession(5 * time.Second)
	require.NoError(t, err)
	defer sess.Close()
	c, early, echo := earlyDial(t, srv.addr, cctx, sess, "0123456789abcdef", false)
	require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
	require.Equal(t, "0123456789", early)
	require.Equal(t, "abcdef", echo)
	srv.event(t)
}

// The policy's Allow refuses per connection, and a panic in it refuses
// too, without crashing the server.
func TestEarlyDataPolicyAllow(t *testing.T) {
	sesstest.LeakCheck(t)
	if !earlyDataOr102(t) {
		return
	}
	oc, sc := earlyServerCtx(t)
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
	srv := startEarlyServer(t, oc)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	fresh := func() *sslsession.Session {
		c, _, _ := earlyDial(t, srv.addr, cctx, nil, "x", false)
		srv.event(t)
		s, err := c.AwaitSession(5 * time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	for _, m := range []string{"yes", "no", "panic"} {
		mu.Lock()
		mode = m
		mu.Unlock()
		c, early, echo := earlyDial(t, srv.addr, cctx, fresh(), "req", false)
		require.True(t, c.SessionReused(), m)
		ev := srv.event(t)
		if m == "yes" {
			require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
			require.Equal(t, "req", early)
			continue
		}
		require.Equal(t, sslsession.EarlyDataRejected, c.EarlyDataStatus(), m)
		require.Equal(t, sslsession.EarlyDataRejected, ev.status, m)
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
	if !earlyDataOr102(t) {
		return
	}
	oc, _ := earlyServerCtx(t)
	srv := startEarlyServer(t, oc)
	cctx := sesstest.ClientCtx(t, sslsession.TLS13)
	c, _, _ := earlyDial(t, srv.addr, cctx, nil, "x", false)
	srv.event(t)
	_, err := c.ReadEarlyData(make([]byte, 10))
	require.ErrorIs(t, err, sslsession.ErrEarlyDataPhase, "after the handshake")
	_, err = c.WriteEarlyData([]byte("x"))
	require.ErrorIs(t, err, sslsession.ErrEarlyDataPhase)

	raw, err := net.Dial("tcp", srv.addr)
	require.NoError(t, err)
	cl, err := sslsession.Client(raw, cctx, nil)
	require.NoError(t, err)
	_, err = cl.ReadEarlyData(make([]byte, 10))
	require.ErrorIs(t, err, sslsession.ErrEarlyDataPhase, "a client reads no early data")
	require.NoError(t, cl.Close())
	srv.event(t)

	_, err = sslsession.Dial("tcp", srv.addr, &sslsession.DialConfig{Ctx: cctx, InsecureSkipVerify: true, EarlyData: []byte("x"),
		WrapConn: func(c net.Conn) net.Conn { return countingConn{Conn: c, read: new(atomic.Int64)} }})
	require.ErrorIs(t, err, sslsession.ErrUnsupported, "spacemonkeygo's path has no early data")

	var zero sslsession.Conn
	_, err = zero.ReadEarlyData(nil)
	require.ErrorIs(t, err, sslsession.ErrNilSSL)
	require.Equal(t, sslsession.EarlyDataNotSent, zero.EarlyDataStatus())

	var nilCtx *sslsession.Ctx
	require.Error(t, nilCtx.SetMaxEarlyData(1, 1))
	require.Error(t, nilCtx.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{}))
	_, sc := earlyServerCtx(t)
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
	if !earlyDataOr102(t) {
		return
	}
	for name, cache := range map[string]sslsession.ReplayCache{"panic": panicCache{}, "slow": slowCache{time.Second}} {
		t.Run(name, func(t *testing.T) {
			oc, sc := earlyServerCtx(t)
			require.NoError(t, sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{ReplayCache: cache, Timeout: 50 * time.Millisecond}))
			srv := startEarlyServer(t, oc)
			cctx := sesstest.ClientCtx(t, sslsession.TLS13)
			c, _, _ := earlyDial(t, srv.addr, cctx, nil, "x", false)
			srv.event(t)
			sess, err := c.AwaitSession(5 * time.Second)
			require.NoError(t, err)
			defer sess.Close()
			c, early, echo := earlyDial(t, srv.addr, cctx, sess, "GET /f", false)
			srv.event(t)
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
	if !earlyDataOr102(t) {
		return
	}
	oc, _ := earlyServerCtx(t)
	srv := startEarlyServer(t, oc)
	cc, err := sslsession.NewClientCache(sesstest.ClientCtx(t, sslsession.TLS13), 0)
	require.NoError(t, err)
	defer cc.Close()
	dial := func(req string) (*sslsession.Conn, string) {
		c, err := sslsession.Dial("tcp", srv.addr, &sslsession.DialConfig{Cache: cc, ServerName: "localhost",
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
	srv.event(t)
	require.Eventually(t, func() bool { return cc.Len() > 0 }, 5*time.Second, 5*time.Millisecond, "the cache took the tickets")
	c, line = dial("two")
	require.True(t, c.SessionReused())
	require.Equal(t, sslsession.EarlyDataAccepted, c.EarlyDataStatus())
	require.Equal(t, "early="+hex.EncodeToString([]byte("two"))+"\n", line)
	srv.event(t)
}
