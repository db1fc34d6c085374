package sslsession_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// The connection on which OpenSSL drives the socket (Client, Server,
// Dial): a write blocked by a peer that does not read, concurrency, closes
// at every stage, key updates under load and leaks. What both transports
// do alike is in transport_test.go. Renegotiation asked by openssl
// s_client is in test/renegotiation_test.go.

// pair is a client and a server Conn over a real TCP connection on
// 127.0.0.1, the handshake not yet run.
func pair(t testing.TB, v sslsession.Version, cfg loopback.Config) (client, server *sslsession.Conn) {
	t.Helper()
	sctx, cctx := sesstest.CtxPair(t, v, cfg)
	craw, sraw := sesstest.TCPPair(t)
	client, err := sslsession.Client(craw, cctx, nil)
	require.NoError(t, err)
	server, err = sslsession.Server(sraw, sctx)
	require.NoError(t, err)
	require.Nil(t, client.OpenSSL(), "a TCP connection must not fall back to spacemonkeygo")
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// handshakePair runs both handshakes at once.
func handshakePair(t testing.TB, client, server *sslsession.Conn) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	require.NoError(t, client.Handshake())
	require.NoError(t, <-errc)
}

func TestConnWriteDeadlinePeerNotReading(t *testing.T) {
	client, server := pair(t, sslsession.TLS12, loopback.Config{})
	handshakePair(t, client, server)
	require.NoError(t, client.SetWriteDeadline(time.Now().Add(200*time.Millisecond)))
	chunk := make([]byte, 64<<10)
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		_, err = client.Write(chunk)
	}
	require.Error(t, err, "the socket buffers never filled")
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	// A write that missed its deadline may have left half a record:
	// writing again fails instead of corrupting the stream.
	require.NoError(t, client.SetWriteDeadline(time.Time{}))
	_, err2 := client.Write([]byte("x"))
	assert.Error(t, err2)
	// Reading still works.
	go func() { _, _ = server.Write([]byte("still here")) }()
	buf := make([]byte, 10)
	_, err = io.ReadFull(client, buf)
	require.NoError(t, err)
	assert.Equal(t, "still here", string(buf))
}

// 1 MiB of random bytes each way through the echo server, written and read
// at the same time on one connection.
func TestConnConcurrentReadWriteMiB(t *testing.T) {
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
			srv := sesstest.Serve(t, sctx)
			c := sesstest.Dial(t, srv.Addr, cctx, nil)
			want := make([]byte, 1<<20)
			_, err := rand.Read(want)
			require.NoError(t, err)
			errc := make(chan error, 1)
			go func() {
				var err error
				for off := 0; off < len(want) && err == nil; off += 10007 {
					_, err = c.Write(want[off:min(len(want), off+10007)])
				}
				errc <- err
			}()
			got := make([]byte, len(want))
			require.NoError(t, c.SetReadDeadline(time.Now().Add(60*time.Second)))
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			require.NoError(t, <-errc)
			require.True(t, bytes.Equal(want, got), "echoed bytes differ")
		})
	}
}

func TestConnPeerClosesMidHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			// Read the start of the ClientHello, then hang up.
			_, _ = c.Read(make([]byte, 10))
			c.Close()
		}
	}()
	_, cctx := sesstest.CtxPair(t, sslsession.TLS12, loopback.Config{})
	raw, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	c, err := sslsession.Client(raw, cctx, nil)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	err = c.Handshake()
	require.Error(t, err)
	assert.NotErrorIs(t, err, os.ErrDeadlineExceeded)
	// An EOF against the protocol, or a reset.
	var ne net.Error
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &ne) {
		t.Fatalf("handshake error is neither an unexpected EOF nor a network error: %v", err)
	}
	// The error is kept.
	assert.Equal(t, err, c.Handshake())
}

// A proxy between client and server forwards the handshake and then only
// the first bytes of the server's next record before it hangs up.
func TestConnPeerClosesMidRecord(t *testing.T) {
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{NoTickets: true, NoCache: true})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer ln.Close()
			proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer proxyLn.Close()
			armed, cutting := make(chan struct{}), make(chan struct{})
			serverDone := make(chan error, 1)
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					serverDone <- err
					return
				}
				s, err := sslsession.Server(raw, sctx)
				if err != nil {
					serverDone <- err
					return
				}
				defer s.Close()
				if err = s.Handshake(); err == nil {
					<-cutting
					_, err = s.Write(bytes.Repeat([]byte("r"), 1000))
				}
				serverDone <- err
				_, _ = io.Copy(io.Discard, s)
			}()
			go func() {
				down, err := proxyLn.Accept()
				if err != nil {
					return
				}
				defer down.Close()
				up, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, down) }()
				buf := make([]byte, 64<<10)
				for {
					select {
					case <-armed:
						// Forward 20 bytes of the next record, then close.
						close(cutting)
						_ = up.SetReadDeadline(time.Now().Add(10 * time.Second))
						if n, err := io.ReadAtLeast(up, buf, 20); err == nil && n >= 20 {
							_, _ = down.Write(buf[:20])
						}
						return
					default:
					}
					_ = up.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
					n, err := up.Read(buf)
					if n > 0 {
						_, _ = down.Write(buf[:n])
					}
					var ne net.Error
					if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
						return
					}
				}
			}()
			raw, err := net.Dial("tcp", proxyLn.Addr().String())
			require.NoError(t, err)
			c, err := sslsession.Client(raw, cctx, nil)
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
			require.NoError(t, c.Handshake())
			close(armed)
			buf := make([]byte, 2000)
			n, err := c.Read(buf)
			assert.Equal(t, 0, n)
			assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		})
	}
}

func TestConnKeyUpdateDuringTransfer(t *testing.T) {
	if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
		client, server := pair(t, sslsession.TLS12, loopback.Config{})
		handshakePair(t, client, server)
		assert.ErrorIs(t, client.KeyUpdate(true), sslsession.ErrUnsupported)
		return
	}
	sctx, cctx := sesstest.CtxPair(t, sslsession.TLS13, loopback.Config{})
	srv := sesstest.Serve(t, sctx)
	c := sesstest.Dial(t, srv.Addr, cctx, nil)
	want := make([]byte, 256<<10)
	_, err := rand.Read(want)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		var err error
		for off := 0; off < len(want) && err == nil; off += 16 << 10 {
			if off%(64<<10) == 0 {
				// Ask the server to update its keys too: its read
				// answers with a KeyUpdate of its own.
				if err = c.KeyUpdate(true); err != nil {
					break
				}
			}
			_, err = c.Write(want[off : off+16<<10])
		}
		errc <- err
	}()
	got := make([]byte, len(want))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.NoError(t, <-errc)
	require.True(t, bytes.Equal(want, got))
}

// 10,000 connections opened and closed, half of them resumed: no file
// descriptor, goroutine or owned session is left.
func TestConnTenThousandNoLeak(t *testing.T) {
	sctx, cctx := sesstest.CtxPair(t, sslsession.TLS12, loopback.Config{})
	srv := sesstest.Serve(t, sctx)
	first := sesstest.Dial(t, srv.Addr, cctx, nil)
	sess, err := first.AwaitSession(5 * time.Second)
	require.NoError(t, err)
	require.NoError(t, first.Close())

	// Warm up, then count.
	for i := 0; i < 20; i++ {
		c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost"})
		require.NoError(t, err)
		require.NoError(t, c.Close())
	}
	settle := func() (fds, goroutines int) {
		for i := 0; i < 50; i++ {
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
			f, g := openFDs(t), runtime.NumGoroutine()
			if i > 0 && f == fds && g == goroutines {
				break
			}
			fds, goroutines = f, g
		}
		return fds, goroutines
	}
	fds0, g0 := settle()
	reused := 0
	for i := 0; i < 10000; i++ {
		var s *sslsession.Session
		if i%2 == 0 {
			s = sess
		}
		c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, Session: s, ServerName: "localhost", Timeout: 10 * time.Second})
		require.NoError(t, err)
		if c.SessionReused() {
			reused++
		}
		if i%100 == 0 {
			// Some connections also hold owned sessions for a while.
			o, err := c.Session1()
			require.NoError(t, err)
			o.Close()
		}
		require.NoError(t, c.Close())
	}
	require.Equal(t, 5000, reused)
	require.NoError(t, sess.Close())
	fds1, g1 := settle()
	assert.LessOrEqual(t, fds1, fds0, "file descriptors leaked")
	assert.LessOrEqual(t, g1, g0, "goroutines leaked")
	assert.Zero(t, sesstest.SettleLive(), "owned sessions leaked")
	assert.Equal(t, int64(0), srv.Failed())
}

func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// A Conn on something that is not a socket (here an unbuffered pipe) uses
// spacemonkeygo's memory BIOs; transport_test.go runs every behaviour
// over both transports.
func TestConnOverPipe(t *testing.T) {
	sctx, cctx := sesstest.CtxPair(t, sslsession.TLS12, loopback.Config{})
	a, b := net.Pipe()
	client, err := sslsession.Client(a, cctx, nil)
	require.NoError(t, err)
	server, err := sslsession.Server(b, sctx)
	require.NoError(t, err)
	require.NotNil(t, client.OpenSSL())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(server, buf); err == nil {
			_, _ = server.Write(buf)
		}
	}()
	_, err = client.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(client, buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf))
	wg.Wait()
	// close_notify on an unbuffered pipe that nobody reads: bound it.
	_ = client.SetDeadline(time.Now().Add(100 * time.Millisecond))
	_ = server.SetDeadline(time.Now().Add(100 * time.Millisecond))
	client.Close()
	server.Close()
}

// shortWriter takes half of what it is given, without an error.
type shortWriter struct{}

func (shortWriter) Write(b []byte) (int, error) { return len(b) / 2, nil }

// failWriter fails every write.
type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

// io.Copy from a Conn goes through WriteTo: everything up to the peer's
// close_notify, data AwaitSession buffered first, nil at the end, and the
// writer's error or io.ErrShortWrite when it fails.
func TestConnWriteTo(t *testing.T) {
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			want := make([]byte, 1<<20+123)
			_, err := rand.Read(want)
			require.NoError(t, err)
			client, server := pair(t, v, loopback.Config{})
			handshakePair(t, client, server)
			go func() {
				_, _ = server.Write(want)
				_ = server.CloseWrite()
			}()
			var got bytes.Buffer
			require.NoError(t, client.SetReadDeadline(time.Now().Add(30*time.Second)))
			n, err := io.Copy(&got, client)
			require.NoError(t, err, "the end of the stream is not an error")
			require.Equal(t, int64(len(want)), n)
			require.True(t, bytes.Equal(want, got.Bytes()))

			// The writer's failures.
			client, server = pair(t, v, loopback.Config{})
			handshakePair(t, client, server)
			_, err = server.Write([]byte("abcd"))
			require.NoError(t, err)
			require.NoError(t, client.SetReadDeadline(time.Now().Add(30*time.Second)))
			n, err = client.WriteTo(shortWriter{})
			require.ErrorIs(t, err, io.ErrShortWrite)
			require.Equal(t, int64(2), n)
			boom := errors.New("boom")
			_, err = server.Write([]byte("efgh"))
			require.NoError(t, err)
			n, err = client.WriteTo(failWriter{boom})
			require.ErrorIs(t, err, boom)
			require.Zero(t, n)
			// A read error ends it with that error.
			require.NoError(t, client.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
			_, err = client.WriteTo(io.Discard)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		})
	}
	var zero sslsession.Conn
	_, err := zero.WriteTo(io.Discard)
	require.ErrorIs(t, err, sslsession.ErrNilSSL)
}
