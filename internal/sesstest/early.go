package sesstest

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// EarlyEvent is what an early data server saw on one connection: the early
// data delivered to the application, the status, and how the early phase
// ended.
type EarlyEvent struct {
	Early  []byte
	Status sslsession.EarlyDataStatus
	Err    error
}

// EarlyServer reads each connection's early data with ReadEarlyData, then
// completes the handshake, answers "early=<hex>\n" and echoes.
type EarlyServer struct {
	Addr   string
	events chan EarlyEvent
}

// StartEarlyServer starts an EarlyServer of oc on 127.0.0.1, stopped with
// the test.
func StartEarlyServer(t testing.TB, oc *openssl.Ctx) *EarlyServer {
	t.Helper()
	s := &EarlyServer{events: make(chan EarlyEvent, 64)}
	s.Addr = ServeTCP(t, func(raw net.Conn) {
		s.handle(raw, oc)
	})
	return s
}

func (s *EarlyServer) handle(raw net.Conn, oc *openssl.Ctx) {
	c, err := sslsession.Server(raw, oc)
	if err != nil {
		raw.Close()
		s.events <- EarlyEvent{Err: err}
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var ev EarlyEvent
	buf := make([]byte, 4096)
	for {
		n, err := c.ReadEarlyData(buf)
		ev.Early = append(ev.Early, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			ev.Err = err
			break
		}
	}
	ev.Status = c.EarlyDataStatus()
	s.events <- ev
	if ev.Err != nil || c.Handshake() != nil {
		return
	}
	if _, err := fmt.Fprintf(c, "early=%s\n", hex.EncodeToString(ev.Early)); err != nil {
		return
	}
	_, _ = io.Copy(c, c)
}

// Event is the next connection's EarlyEvent.
func (s *EarlyServer) Event(t testing.TB) EarlyEvent {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event from the early data server")
		return EarlyEvent{}
	}
}

// EarlyDataOr102 reports whether the linked OpenSSL has early data. On
// 1.0.2, the one version without, it asserts that the server's calls say
// so with ErrUnsupported (TestEarlyDataUnsupported has the client's), and
// the test ends there.
func EarlyDataOr102(t *testing.T) bool {
	t.Helper()
	if sslsession.EarlyDataSupported() {
		require.False(t, Is102())
		return true
	}
	require.True(t, Is102())
	sc := NewCtx(t, ServerCtx(t, sslsession.TLS12, loopback.Config{}))
	require.ErrorIs(t, sc.SetMaxEarlyData(16384, 0), sslsession.ErrUnsupported)
	err := sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{ReplayCache: sslsession.NewMemoryReplayCache(0)})
	require.ErrorIs(t, err, sslsession.ErrUnsupported)
	return false
}

// EarlyServerCtx is a TLS 1.3 server context allowing 16 KiB of early data.
func EarlyServerCtx(t testing.TB) (*openssl.Ctx, *sslsession.Ctx) {
	t.Helper()
	oc := ServerCtx(t, sslsession.TLS13, loopback.Config{})
	sc := NewCtx(t, oc)
	require.NoError(t, sc.SetMaxEarlyData(16384, 0))
	return oc, sc
}

// EarlyDial dials with data as early data and returns the connection, the
// early data the server reports and the rest of the stream it echoes.
func EarlyDial(t testing.TB, addr string, cctx *openssl.Ctx, sess *sslsession.Session, data string, keep bool) (*sslsession.Conn, string, string) {
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
