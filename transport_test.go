package sslsession_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// Every behaviour of Conn, run over both of its transports: OpenSSL on the
// socket, and spacemonkeygo's memory BIOs over a net.Conn that is not a
// socket. Both ends of each connection use the transport under test.

type transportCase struct {
	name        string
	over        func(net.Conn) net.Conn
	spacemonkey bool // OpenSSL() is non-nil
}

var transportCases = []transportCase{
	{name: "socket", over: func(c net.Conn) net.Conn { return c }},
	{name: "spacemonkeygo", over: func(c net.Conn) net.Conn { return hiddenConn{c} }, spacemonkey: true},
}

// hiddenConn hides a socket behind a plain net.Conn: a Conn over it
// cannot hand the descriptor to OpenSSL.
type hiddenConn struct{ net.Conn }

// tpair is a client and a server Conn over one TCP connection on
// 127.0.0.1, the handshake not yet run, and the sockets under them.
type tpair struct {
	client, server *sslsession.Conn
	craw, sraw     net.Conn
}

func newTPair(t testing.TB, tc transportCase, sctx, cctx *openssl.Ctx, sess *sslsession.Session) *tpair {
	t.Helper()
	craw, sraw := sesstest.TCPPair(t)
	p := &tpair{craw: craw, sraw: sraw}
	var err error
	p.client, err = sslsession.Client(tc.over(craw), cctx, sess)
	require.NoError(t, err)
	p.server, err = sslsession.Server(tc.over(sraw), sctx)
	require.NoError(t, err)
	require.Equal(t, tc.spacemonkey, p.client.OpenSSL() != nil, "the client's transport")
	require.Equal(t, tc.spacemonkey, p.server.OpenSSL() != nil, "the server's transport")
	// No test may hang: a stuck read or write fails at this deadline.
	require.NoError(t, craw.SetDeadline(time.Now().Add(30*time.Second)))
	require.NoError(t, sraw.SetDeadline(time.Now().Add(30*time.Second)))
	t.Cleanup(func() {
		p.client.Close()
		p.server.Close()
	})
	return p
}

func (p *tpair) handshake(t testing.TB) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- p.server.Handshake() }()
	require.NoError(t, p.client.Handshake())
	require.NoError(t, <-errc)
}

// echo copies what the server reads back to the client until the client's
// close_notify (its error is nil then), then closes the server.
func (p *tpair) echo() <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := io.Copy(p.server, p.server)
		_ = p.server.Close()
		errc <- err
	}()
	return errc
}

func forTransports(t *testing.T, versions []sslsession.Version, fn func(t *testing.T, tc transportCase, v sslsession.Version)) {
	for _, tc := range transportCases {
		for _, v := range versions {
			t.Run(tc.name+"/"+v.String(), func(t *testing.T) { fn(t, tc, v) })
		}
	}
}

// The handshake, what it negotiated, and 1 MiB each way at once.
func TestTransportHandshakeReadWrite(t *testing.T) {
	forTransports(t, sesstest.Versions(t), func(t *testing.T, tc transportCase, v sslsession.Version) {
		sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
		p := newTPair(t, tc, sctx, cctx, nil)
		require.Zero(t, p.client.HandshakeDuration())
		require.NoError(t, p.client.SetServerName("localhost"))
		p.handshake(t)
		assert.Positive(t, p.client.HandshakeDuration())
		for _, c := range []*sslsession.Conn{p.client, p.server} {
			assert.Equal(t, v, c.SSL().Version())
			assert.NotEmpty(t, c.SSL().Cipher())
			assert.False(t, c.SessionReused())
		}
		assert.Equal(t, p.craw.LocalAddr(), p.client.LocalAddr())
		assert.Equal(t, p.craw.RemoteAddr(), p.client.RemoteAddr())
		assert.Equal(t, p.sraw.LocalAddr(), p.server.LocalAddr())
		assert.Equal(t, openssl.Ok, p.client.VerifyResult())
		require.NoError(t, p.client.VerifyHostname("localhost"))
		require.ErrorIs(t, p.client.VerifyHostname("example.com"), sslsession.ErrHostname)
		require.ErrorIs(t, p.server.VerifyHostname("localhost"), sslsession.ErrHostname, "the client sent no certificate")

		echoed := p.echo()
		want := make([]byte, 1<<20)
		_, err := rand.Read(want)
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() {
			var err error
			for off := 0; off < len(want) && err == nil; off += 10007 {
				_, err = p.client.Write(want[off:min(len(want), off+10007)])
			}
			errc <- err
		}()
		got := make([]byte, len(want))
		_, err = io.ReadFull(p.client, got)
		require.NoError(t, err)
		require.NoError(t, <-errc)
		require.True(t, bytes.Equal(want, got), "echoed bytes differ")
		require.NoError(t, p.client.CloseWrite())
		require.NoError(t, <-echoed)
		n, err := p.client.Read(make([]byte, 1))
		assert.Zero(t, n)
		assert.Equal(t, io.EOF, err, "the server's close_notify")
	})
}

// Deadlines of the handshake, of Read (which goes on afterwards) and of
// Write (which does not).
func TestTransportDeadlines(t *testing.T) {
	forTransports(t, sesstest.Versions(t), func(t *testing.T, tc transportCase, v sslsession.Version) {
		sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})

		// A server that never answers the ClientHello.
		p := newTPair(t, tc, sctx, cctx, nil)
		require.NoError(t, p.client.SetDeadline(time.Now().Add(100*time.Millisecond)))
		start := time.Now()
		err := p.client.Handshake()
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout())
		assert.Less(t, time.Since(start), 5*time.Second)
		assert.Equal(t, err, p.client.Handshake(), "the handshake's error is kept")

		p = newTPair(t, tc, sctx, cctx, nil)
		p.handshake(t)
		require.NoError(t, p.client.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		_, err = p.client.Read(make([]byte, 10))
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.NoError(t, p.client.SetReadDeadline(time.Time{}))
		_, err = p.server.Write([]byte("after"))
		require.NoError(t, err)
		buf := make([]byte, 5)
		_, err = io.ReadFull(p.client, buf)
		require.NoError(t, err, "a read goes on after its deadline passed")
		assert.Equal(t, "after", string(buf))

		require.NoError(t, p.client.SetWriteDeadline(time.Now().Add(-time.Second)))
		_, err = p.client.Write([]byte("late"))
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.NoError(t, p.client.SetWriteDeadline(time.Time{}))
		_, err2 := p.client.Write([]byte("x"))
		assert.Equal(t, err, err2, "a write that missed its deadline ends writing")
		_, err = p.server.Write([]byte("still"))
		require.NoError(t, err)
		_, err = io.ReadFull(p.client, buf)
		require.NoError(t, err, "reading still works")
		assert.Equal(t, "still", string(buf))
	})
}

// CloseWrite sends close_notify and keeps the connection: the peer reads
// io.EOF and answers, this side reads the answer and cannot write.
func TestTransportCloseWrite(t *testing.T) {
	forTransports(t, sesstest.Versions(t), func(t *testing.T, tc transportCase, v sslsession.Version) {
		sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
		p := newTPair(t, tc, sctx, cctx, nil)
		require.Error(t, p.client.CloseWrite(), "CloseWrite before the handshake")
		p.handshake(t)
		errc := make(chan error, 1)
		go func() {
			got, err := io.ReadAll(p.server)
			if err == nil && string(got) != "request" {
				err = errors.New("server read " + string(got))
			}
			if err == nil {
				// The peer's close_notify ended reading, not writing.
				_, err = p.server.Write([]byte("reply"))
			}
			if err == nil {
				err = p.server.Close()
			}
			errc <- err
		}()
		_, err := p.client.Write([]byte("request"))
		require.NoError(t, err)
		require.NoError(t, p.client.CloseWrite())
		_, err = p.client.Write([]byte("more"))
		assert.ErrorIs(t, err, net.ErrClosed)
		got, err := io.ReadAll(p.client)
		require.NoError(t, err)
		assert.Equal(t, "reply", string(got))
		require.NoError(t, <-errc)
		require.NoError(t, p.client.Close(), "Close after CloseWrite does not wait for the peer")
	})
}

// A peer that closes its socket without close_notify: Read says the data
// may be cut short.
func TestTransportTruncation(t *testing.T) {
	forTransports(t, sesstest.Versions(t), func(t *testing.T, tc transportCase, v sslsession.Version) {
		sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
		p := newTPair(t, tc, sctx, cctx, nil)
		p.handshake(t)
		_, err := p.client.Write([]byte("cut"))
		require.NoError(t, err)
		buf := make([]byte, 3)
		_, err = io.ReadFull(p.server, buf)
		require.NoError(t, err)
		// The client reads what the server sent (its tickets too), so
		// that closing its socket sends a FIN, not a reset.
		_, err = p.server.Write(buf)
		require.NoError(t, err)
		_, err = io.ReadFull(p.client, buf)
		require.NoError(t, err)
		require.NoError(t, p.craw.Close())
		_, err = p.server.Read(buf)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})
}

// Close: close_notify to the peer, the session kept resumable, borrowed
// sessions ended, owned ones alive, and every call afterwards an error.
func TestTransportClose(t *testing.T) {
	forTransports(t, sesstest.Versions(t), func(t *testing.T, tc transportCase, v sslsession.Version) {
		sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
		p := newTPair(t, tc, sctx, cctx, nil)
		p.handshake(t)
		echoed := p.echo()
		_, err := p.client.Write([]byte("ping"))
		require.NoError(t, err)
		owned, err := p.client.AwaitSession(5 * time.Second)
		require.NoError(t, err)
		defer owned.Close()
		borrowed, err := p.client.Session()
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = io.ReadFull(p.client, buf)
		require.NoError(t, err)

		require.NoError(t, p.client.Close())
		require.NoError(t, <-echoed, "the server read the client's close_notify")
		assert.ErrorIs(t, p.client.Close(), net.ErrClosed, "a second Close")
		_, err = p.client.Read(buf)
		assert.ErrorIs(t, err, net.ErrClosed)
		_, err = p.client.Write(buf)
		assert.ErrorIs(t, err, net.ErrClosed)
		assert.ErrorIs(t, p.client.CloseWrite(), net.ErrClosed)
		_, err = borrowed.Info()
		assert.ErrorIs(t, err, sslsession.ErrStale)
		_, err = p.client.Session()
		assert.ErrorIs(t, err, sslsession.ErrFreed)
		_, err = p.client.Session1()
		assert.ErrorIs(t, err, sslsession.ErrFreed)
		assert.ErrorIs(t, p.client.KeyUpdate(false), sslsession.ErrFreed)
		assert.NotEqual(t, openssl.Ok, p.client.VerifyResult())
		info, err := owned.Info()
		require.NoError(t, err)
		require.True(t, info.Resumable)

		// Closed cleanly, the session resumes.
		q := newTPair(t, tc, sctx, cctx, owned)
		q.handshake(t)
		assert.True(t, q.client.SessionReused())
		assert.True(t, q.server.SessionReused())

		// Handshake after Close, on a connection that never ran one.
		r := newTPair(t, tc, sctx, cctx, nil)
		require.NoError(t, r.client.Close())
		assert.ErrorIs(t, r.client.Handshake(), net.ErrClosed)
	})
}

// The sessions of a connection: borrowed (Conn.Session, SSL.Session), owned
// (Session1), and offered to resume (Client's sess).
func TestTransportSessions(t *testing.T) {
	forTransports(t, sesstest.Versions(t), func(t *testing.T, tc transportCase, v sslsession.Version) {
		sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
		p := newTPair(t, tc, sctx, cctx, nil)
		_, err := p.client.Session()
		require.ErrorIs(t, err, sslsession.ErrNoSession, "before the handshake")
		p.handshake(t)
		b, err := p.client.Session()
		require.NoError(t, err)
		b0, err := p.client.SSL().Session()
		require.NoError(t, err)
		bi, err := b.Info()
		require.NoError(t, err)
		b0i, err := b0.Info()
		require.NoError(t, err)
		assert.Equal(t, bi.ID, b0i.ID)
		o, err := p.client.Session1()
		require.NoError(t, err)
		defer o.Close()
		oi, err := o.Info()
		require.NoError(t, err)
		assert.Equal(t, bi.ID, oi.ID)
		assert.Equal(t, v, oi.Protocol)

		echoed := p.echo()
		_, err = p.client.Write([]byte("x"))
		require.NoError(t, err)
		sess, err := p.client.AwaitSession(5 * time.Second)
		require.NoError(t, err)
		defer sess.Close()
		_, err = io.ReadFull(p.client, make([]byte, 1))
		require.NoError(t, err)
		require.NoError(t, p.client.Close())
		require.NoError(t, <-echoed)

		q := newTPair(t, tc, sctx, cctx, sess)
		q.handshake(t)
		assert.True(t, q.client.SessionReused())
	})
}

// AwaitSession: a resumable session as soon as the server's ticket is in,
// application data read meanwhile kept for Read, and ErrNotResumable from
// a server that sends none.
func TestTransportAwaitSession(t *testing.T) {
	forTransports(t, sesstest.Versions(t), func(t *testing.T, tc transportCase, v sslsession.Version) {
		sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
		p := newTPair(t, tc, sctx, cctx, nil)
		p.handshake(t)
		_, err := p.server.Write([]byte("early words"))
		require.NoError(t, err)
		sess, err := p.client.AwaitSession(5 * time.Second)
		require.NoError(t, err)
		defer sess.Close()
		info, err := sess.Info()
		require.NoError(t, err)
		assert.True(t, info.Resumable)
		got := make([]byte, len("early words"))
		_, err = io.ReadFull(p.client, got)
		require.NoError(t, err)
		assert.Equal(t, "early words", string(got))

		// The server is silent after the handshake: a TLS 1.3 ticket
		// alone ends the wait, long before the timeout.
		p = newTPair(t, tc, sctx, cctx, nil)
		p.handshake(t)
		start := time.Now()
		sess2, err := p.client.AwaitSession(20 * time.Second)
		require.NoError(t, err)
		sess2.Close()
		assert.Less(t, time.Since(start), 10*time.Second)

		// No session ID and no ticket (TLS 1.2); no ticket at all (TLS
		// 1.3, where SSL_OP_NO_TICKET still sends stateful ones).
		nctx, _ := sesstest.CtxPair(t, v, loopback.Config{NoTickets: true, NoCache: true})
		if v == sslsession.TLS13 {
			require.NoError(t, sesstest.NewCtx(t, nctx).SetNumTickets(0))
		}
		p = newTPair(t, tc, nctx, cctx, nil)
		p.handshake(t)
		_, err = p.client.AwaitSession(200 * time.Millisecond)
		require.ErrorIs(t, err, sslsession.ErrNotResumable)
	})
}

// KeyUpdate on TLS 1.3: a KeyUpdate record goes out before the next
// write's data, and asked to, the peer answers with its own; both sides
// still read each other. Counted on the wire by a proxy that reads the
// record headers. Refused on TLS 1.2.
func TestTransportKeyUpdate(t *testing.T) {
	forTransports(t, sesstest.Versions(t), func(t *testing.T, tc transportCase, v sslsession.Version) {
		sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
		if v < sslsession.TLS13 {
			p := newTPair(t, tc, sctx, cctx, nil)
			p.handshake(t)
			err := p.client.KeyUpdate(true)
			require.Error(t, err)
			if sesstest.Is102() {
				assert.ErrorIs(t, err, sslsession.ErrUnsupported)
			}
			return
		}
		p, proxy := newProxiedPair(t, tc, sctx, cctx)
		p.handshake(t)
		roundtrip := func(msg string) {
			t.Helper()
			_, err := p.client.Write([]byte(msg))
			require.NoError(t, err)
			got := make([]byte, len(msg))
			_, err = io.ReadFull(p.server, got)
			require.NoError(t, err)
			_, err = p.server.Write(got)
			require.NoError(t, err)
			_, err = io.ReadFull(p.client, got)
			require.NoError(t, err)
			require.Equal(t, msg, string(got))
		}
		roundtrip("settle") // tickets and handshake records are behind
		up, down := proxy.up.Load(), proxy.down.Load()
		roundtrip("plain")
		assert.Equal(t, up+1, proxy.up.Load(), "one record each way")
		assert.Equal(t, down+1, proxy.down.Load())

		up, down = proxy.up.Load(), proxy.down.Load()
		require.NoError(t, p.client.KeyUpdate(false))
		roundtrip("updated")
		assert.Equal(t, up+2, proxy.up.Load(), "KeyUpdate, then the data")
		assert.Equal(t, down+1, proxy.down.Load(), "the server was not asked to update")

		up, down = proxy.up.Load(), proxy.down.Load()
		require.NoError(t, p.client.KeyUpdate(true))
		roundtrip("both")
		assert.Equal(t, up+2, proxy.up.Load(), "KeyUpdate, then the data")
		assert.Equal(t, down+2, proxy.down.Load(), "the server's own KeyUpdate, then the data")
	})
}

// recordProxy forwards one TCP connection and counts the TLS records each
// way.
type recordProxy struct {
	up, down atomic.Int64
}

func newProxiedPair(t *testing.T, tc transportCase, sctx, cctx *openssl.Ctx) (*tpair, *recordProxy) {
	t.Helper()
	craw, pin := sesstest.TCPPair(t)
	pout, sraw := sesstest.TCPPair(t)
	proxy := &recordProxy{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); proxy.copy(pout, pin, &proxy.up) }()
	go func() { defer wg.Done(); proxy.copy(pin, pout, &proxy.down) }()
	p := &tpair{craw: craw, sraw: sraw}
	var err error
	p.client, err = sslsession.Client(tc.over(craw), cctx, nil)
	require.NoError(t, err)
	p.server, err = sslsession.Server(tc.over(sraw), sctx)
	require.NoError(t, err)
	require.NoError(t, craw.SetDeadline(time.Now().Add(30*time.Second)))
	require.NoError(t, sraw.SetDeadline(time.Now().Add(30*time.Second)))
	t.Cleanup(func() {
		p.client.Close()
		p.server.Close()
		pin.Close()
		pout.Close()
		wg.Wait()
	})
	return p, proxy
}

// copy forwards src to dst record by record, counting each once it is
// forwarded whole.
func (*recordProxy) copy(dst, src net.Conn, n *atomic.Int64) {
	defer dst.Close()
	var hdr [5]byte
	body := make([]byte, 1<<15)
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return
		}
		size := int(binary.BigEndian.Uint16(hdr[3:]))
		if size > len(body) {
			return
		}
		if _, err := io.ReadFull(src, body[:size]); err != nil {
			return
		}
		// Counted before the peer can see it.
		n.Add(1)
		if _, err := dst.Write(append(hdr[:], body[:size]...)); err != nil {
			return
		}
	}
}

// Both ends write more than the socket buffers hold while they read: a
// side blocked writing must still read, or both wait forever.
func TestTransportFullDuplex(t *testing.T) {
	forTransports(t, sesstest.Versions(t), func(t *testing.T, tc transportCase, v sslsession.Version) {
		sctx, cctx := sesstest.CtxPair(t, v, loopback.Config{})
		p := newTPair(t, tc, sctx, cctx, nil)
		p.handshake(t)
		const size = 16 << 20
		chunk := make([]byte, 64<<10)
		_, err := rand.Read(chunk)
		require.NoError(t, err)
		errc := make(chan error, 4)
		for _, c := range []*sslsession.Conn{p.client, p.server} {
			go func() {
				var err error
				for n := 0; n < size && err == nil; n += len(chunk) {
					_, err = c.Write(chunk)
				}
				errc <- err
			}()
			go func() {
				got := make([]byte, len(chunk))
				var err error
				for n := 0; n < size && err == nil; n += len(got) {
					if _, err = io.ReadFull(c, got); err == nil && !bytes.Equal(got, chunk) {
						err = errors.New("read bytes differ")
					}
				}
				errc <- err
			}()
		}
		for range 4 {
			require.NoError(t, <-errc)
		}
	})
}
