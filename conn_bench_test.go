package sslsession_test

import (
	"io"
	"net"
	"testing"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// BenchmarkConnReadWrite writes 1 KiB and reads it back through a server
// echoing with a fixed buffer, both ends on OpenSSL's own socket I/O:
// allocs/op is what Read and Write allocate in steady state (0).
func BenchmarkConnReadWrite(b *testing.B) {
	for _, v := range []sslsession.Version{sslsession.TLS12, sslsession.TLS13} {
		if v > sslsession.MaxSupportedVersion() {
			continue
		}
		b.Run(v.String(), func(b *testing.B) {
			cert, err := loopback.SelfSigned()
			if err != nil {
				b.Fatal(err)
			}
			sctx, err := loopback.ServerCtx(cert, loopback.Config{Min: v, Max: v})
			if err != nil {
				b.Fatal(err)
			}
			cctx, err := loopback.ClientCtx(cert, v, v)
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				raw, err := ln.Accept()
				if err != nil {
					return
				}
				s, err := sslsession.Server(raw, sctx)
				if err != nil {
					raw.Close()
					return
				}
				defer s.Close()
				buf := make([]byte, 16<<10)
				for {
					n, err := s.Read(buf)
					if err != nil {
						return
					}
					if _, err := s.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
			c, err := sslsession.Dial("tcp", ln.Addr().String(), &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost"})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg := make([]byte, 1024)
			got := make([]byte, len(msg))
			// Warm up: TLS 1.3 tickets, first buffers.
			for i := 0; i < 10; i++ {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
