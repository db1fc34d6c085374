package test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
	"github.com/sslsession/sslsession/redisstore"
)

// delayProxy relays TCP to target, each direction late by oneWay: a link
// with a round trip of 2*oneWay.
func delayProxy(tb testing.TB, target string, oneWay time.Duration) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		type chunk struct {
			at time.Time
			b  []byte
		}
		ch := make(chan chunk, 1024)
		go func() {
			defer close(ch)
			for {
				buf := make([]byte, 32<<10)
				n, err := src.Read(buf)
				if n > 0 {
					ch <- chunk{time.Now().Add(oneWay), buf[:n]}
				}
				if err != nil {
					return
				}
			}
		}()
		for c := range ch {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.b); err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			cl, err := ln.Accept()
			if err != nil {
				return
			}
			sv, err := net.Dial("tcp", target)
			if err != nil {
				cl.Close()
				continue
			}
			wg.Add(2)
			go pipe(sv, cl)
			go pipe(cl, sv)
		}
	}()
	return ln.Addr().String()
}

// serveFirstByte answers one request per connection: at once from early
// data (WriteEarlyData, before the client's Finished), else after the
// handshake.
func serveFirstByte(tb testing.TB, oc *openssl.Ctx) string {
	tb.Helper()
	resp := []byte("HTTP/1.1 204 No Content\r\n\r\n")
	return sesstest.ServeTCP(tb, func(raw net.Conn) {
		c, err := sslsession.Server(raw, oc)
		if err != nil {
			raw.Close()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.ReadEarlyData(buf)
		if n > 0 {
			if _, err := c.WriteEarlyData(resp); err != nil {
				return
			}
			for err == nil {
				_, err = c.ReadEarlyData(buf)
			}
		}
		if err != nil && err != io.EOF {
			return
		}
		if err := c.Handshake(); err != nil {
			return
		}
		if n == 0 {
			if _, err := c.Read(buf); err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
		_, _ = io.Copy(io.Discard, c)
	})
}

// BenchmarkEarlyDataFirstByte: time from Dial to the first byte of the
// answer to a resumed request over a link with a 20 ms round trip, without
// and with 0-RTT, and with 0-RTT behind the fleet's replay cache on Redis
// (on this host, so its round trip is the store's cost alone). Run with
// -benchtime 20x; ms/first-byte is the figure.
func BenchmarkEarlyDataFirstByte(b *testing.B) {
	if !sslsession.EarlyDataSupported() {
		b.Skip("no early data before OpenSSL 1.1.1")
	}
	rs := sesstest.StartRedis(b)
	rc, err := redisstore.NewReplayCache(earlyRedisClient(b, rs.Addr), "bench-0rtt:")
	require.NoError(b, err)
	for _, bc := range []struct {
		name  string
		early bool
		cache sslsession.ReplayCache
	}{{"1-RTT", false, nil}, {"0-RTT", true, nil}, {"0-RTT+redis-replay-cache", true, rc}} {
		b.Run(bc.name, func(b *testing.B) {
			oc := sesstest.ServerCtx(b, sslsession.TLS13, loopback.Config{})
			sc := sesstest.NewCtx(b, oc)
			require.NoError(b, sc.SetMaxEarlyData(16384, 0))
			if bc.cache != nil {
				require.NoError(b, sc.SetEarlyDataPolicy(sslsession.EarlyDataPolicy{ReplayCache: bc.cache}))
			} else {
				sc.Options(sslsession.OptionNoAntiReplay, 0)
			}
			addr := delayProxy(b, serveFirstByte(b, oc), 10*time.Millisecond)
			cctx := sesstest.ClientCtx(b, sslsession.TLS13)
			req := []byte("HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n")
			c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost", EarlyData: req})
			require.NoError(b, err)
			sess, err := c.AwaitSession(5 * time.Second)
			require.NoError(b, err)
			c.Close()
			defer sess.Close()
			buf := make([]byte, 64)
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cfg := &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost", Session: sess}
				if bc.early {
					cfg.EarlyData = req
				}
				start := time.Now()
				c, err := sslsession.Dial("tcp", addr, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if !bc.early {
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				if bc.early && c.EarlyDataStatus() != sslsession.EarlyDataAccepted {
					b.Fatalf("early data %s", c.EarlyDataStatus())
				}
				c.Close()
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/first-byte")
		})
	}
}
