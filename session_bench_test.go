package sslsession_test

import (
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/rawssl"
)

// The wrapper benchmarks beside their floors, the same C calls with no Go
// wrapping: compare Get0 with RawGet0 and Get1Close with RawGet1Free in one
// run (make bench). The floors live in internal/rawssl.

func BenchmarkGet0(b *testing.B) {
	ssl := getFixture(b).ssl
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ssl.Session(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawGet0(b *testing.B) {
	ssl := getFixture(b).ssl
	p := ssl.Pointer()
	b.ReportAllocs()
	for b.Loop() {
		if !rawssl.Get0(p) {
			b.Fatal("no session")
		}
	}
	runtime.KeepAlive(ssl)
}

func BenchmarkGet1Close(b *testing.B) {
	ssl := getFixture(b).ssl
	b.ReportAllocs()
	for b.Loop() {
		s, err := ssl.Session1()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

func BenchmarkRawGet1Free(b *testing.B) {
	ssl := getFixture(b).ssl
	p := ssl.Pointer()
	b.ReportAllocs()
	for b.Loop() {
		rawssl.Get1Free(p)
	}
	runtime.KeepAlive(ssl)
}

// BenchmarkFloorGet1Cleanup is the floor of Get1+Close with a cleanup per
// session, without the library: SSL_get1_session(3) and SSL_SESSION_free(3)
// in two cgo calls (a wrapper cannot join them: the session lives between
// them), plus what the Go runtime charges for any object the garbage
// collector may free on its own (the allocation, runtime.SetFinalizer, and
// clearing it on Close).
func BenchmarkFloorGet1Cleanup(b *testing.B) {
	ssl := getFixture(b).ssl
	p := ssl.Pointer()
	b.ReportAllocs()
	for b.Loop() {
		h := &floorHandle{p: rawssl.Get1(p)}
		runtime.SetFinalizer(h, floorDropped)
		runtime.SetFinalizer(h, nil)
		rawssl.FreeSession(h.p)
		runtime.KeepAlive(h)
	}
	runtime.KeepAlive(ssl)
}

// floorHandle is the size of a Session (48 bytes on 64-bit platforms).
type floorHandle struct {
	p unsafe.Pointer
	_ [5]uintptr
}

func floorDropped(*floorHandle) {}

func BenchmarkInfo(b *testing.B) {
	s := ownedSession(b)
	defer s.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Info(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalParseDER(b *testing.B) {
	s := ownedSession(b)
	defer s.Close()
	b.ReportAllocs()
	for b.Loop() {
		der, err := s.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		d, err := sslsession.ParseDER(der)
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// Handshakes: full against resumed from a held session, and resumed from
// DER decoded each time (what a store that keeps only bytes costs).
func BenchmarkHandshake(b *testing.B) {
	for _, v := range []sslsession.Version{sslsession.TLS12, sslsession.TLS13} {
		if v > sslsession.MaxSupportedVersion() {
			continue
		}
		srv, err := loopback.Start(loopback.Config{Max: v})
		if err != nil {
			b.Fatal(err)
		}
		cctx, err := loopback.ClientCtx(srv.Cert, v, v)
		if err != nil {
			b.Fatal(err)
		}
		dial := func(s *sslsession.Session) *sslsession.Conn {
			c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, Session: s, ServerName: "localhost"})
			if err != nil {
				b.Fatal(err)
			}
			return c
		}
		first := dial(nil)
		_, _ = first.Write([]byte("x"))
		held, err := first.AwaitSession(5 * time.Second)
		if err != nil {
			b.Fatal(err)
		}
		first.Close()
		der, _ := held.MarshalBinary()
		b.Run(v.String()+"/full", func(b *testing.B) {
			for b.Loop() {
				dial(nil).Close()
			}
		})
		b.Run(v.String()+"/resumed-held", func(b *testing.B) {
			for b.Loop() {
				c := dial(held)
				if !c.SessionReused() {
					b.Fatal("not resumed")
				}
				c.Close()
			}
		})
		b.Run(v.String()+"/resumed-der", func(b *testing.B) {
			for b.Loop() {
				s, err := sslsession.ParseDER(der)
				if err != nil {
					b.Fatal(err)
				}
				c := dial(s)
				s.Close()
				if !c.SessionReused() {
					b.Fatal("not resumed")
				}
				c.Close()
			}
		})
		held.Close()
		srv.Close()
	}
}
