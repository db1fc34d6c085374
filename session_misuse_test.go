package sslsession_test

import (
	"bytes"
	"crypto/rand"
	"encoding/gob"
	"encoding/pem"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/rawssl"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// UnmarshalBinary works on a Session that is a struct field, a slice
// element, and in a struct gob decodes; the reference is given back by
// Close or, dropped, by the garbage collector.
func TestUnmarshalBinaryInteriorAndGob(t *testing.T) {
	require.Zero(t, sesstest.SettleLive())
	s := ownedSession(t)
	der, err := s.MarshalBinary()
	require.NoError(t, err)
	wantInfo, err := s.Info()
	want := wantInfo.ID
	require.NoError(t, err)
	check := func(t *testing.T, x *sslsession.Session) {
		t.Helper()
		idInfo, err := x.Info()
		id := idInfo.ID
		require.NoError(t, err)
		require.Equal(t, want, id)
		again, err := x.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, der, again)
		o, err := x.Owned()
		require.NoError(t, err)
		require.NoError(t, o.Close())
	}

	type holder struct {
		Name string
		Sess sslsession.Session
	}
	var h holder
	require.NoError(t, h.Sess.UnmarshalBinary(der))
	check(t, &h.Sess)
	require.ErrorIs(t, h.Sess.UnmarshalBinary(der), sslsession.ErrInvalidArgument, "a second UnmarshalBinary is refused")
	require.NoError(t, h.Sess.Close())
	_, err = h.Sess.Info()
	require.ErrorIs(t, err, sslsession.ErrClosed)

	many := make([]sslsession.Session, 3)
	for i := range many {
		require.NoError(t, many[i].UnmarshalBinary(der))
		check(t, &many[i])
	}
	// Concurrent UnmarshalBinary into one Session: exactly one wins.
	var one sslsession.Session
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if one.UnmarshalBinary(der) == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, wins)
	check(t, &one)

	// gob uses MarshalBinary and UnmarshalBinary for the field.
	var buf bytes.Buffer
	type wire struct {
		Name string
		Sess *sslsession.Session
	}
	require.NoError(t, gob.NewEncoder(&buf).Encode(wire{Name: "x", Sess: s}))
	var got holder
	require.NoError(t, gob.NewDecoder(&buf).Decode(&got))
	require.Equal(t, "x", got.Name)
	check(t, &got.Sess)

	// Dropped without Close: the garbage collector gives every reference
	// back (many, one and got are unreachable from here on).
	require.NoError(t, s.Close())
	require.Zero(t, sesstest.SettleLive())
}

// SetSession is refused once the handshake has begun, leaving the live
// connection's session and verification result as they were; and on a
// server-side SSL. (CPython test_ssl test_session: "Cannot set session
// after handshake", "Cannot set session for server-side SSLSocket".)
func TestSetSessionRefusedAfterHandshakeAndOnServer(t *testing.T) {
	trusted, err := loopback.Start(loopback.Config{Max: sslsession.TLS12})
	require.NoError(t, err)
	defer trusted.Close()
	untrusted, err := loopback.Start(loopback.Config{Max: sslsession.TLS12})
	require.NoError(t, err)
	defer untrusted.Close()
	cctx, err := loopback.ClientCtx(trusted.Cert, 0, sslsession.TLS12)
	require.NoError(t, err)

	good, err := sslsession.Dial("tcp", trusted.Addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost"})
	require.NoError(t, err)
	goodSess, err := good.Session1()
	require.NoError(t, err)
	defer goodSess.Close()
	good.Close()

	bad, err := sslsession.Dial("tcp", untrusted.Addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost", InsecureSkipVerify: true})
	require.NoError(t, err)
	defer bad.Close()
	vr := bad.VerifyResult()
	require.NotEqual(t, openssl.Ok, vr)
	before, err := bad.Session()
	require.NoError(t, err)
	beforeIDInfo, err := before.Info()
	beforeID := beforeIDInfo.ID
	require.NoError(t, err)

	err = bad.SSL().SetSession(goodSess)
	require.ErrorIs(t, err, sslsession.ErrHandshakeStarted)
	require.Equal(t, vr, bad.VerifyResult(), "the verification result is unchanged")
	after, err := bad.Session()
	require.NoError(t, err)
	afterIDInfo, err := after.Info()
	afterID := afterIDInfo.ID
	require.NoError(t, err)
	require.Equal(t, beforeID, afterID, "the live session is unchanged")
	cert, err := after.PeerCertificate()
	require.NoError(t, err)
	blk, _ := pem.Decode(untrusted.Cert.CertPEM)
	require.Equal(t, blk.Bytes, cert.Raw, "the peer certificate is the untrusted server's")

	// Server side, before its handshake.
	sctx, err := loopback.ServerCtx(trusted.Cert, loopback.Config{Max: sslsession.TLS12})
	require.NoError(t, err)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv, err := sslsession.Server(a, sctx)
	require.NoError(t, err)
	require.ErrorIs(t, srv.SSL().SetSession(goodSess), sslsession.ErrServerSide)
	_, err = srv.Session()
	require.ErrorIs(t, err, sslsession.ErrNoSession)
}

// The one-context rule is decided atomically: when one unbound session is
// set on SSLs of two contexts at once, exactly one wins and the loser's
// SSL is left without a session.
func TestSetSessionOneContextAtomic(t *testing.T) {
	f := getFixture(t)
	s := ownedSession(t)
	der, err := s.MarshalBinary()
	s.Close()
	require.NoError(t, err)
	ctxs := []*openssl.Ctx{f.cctx, f.other}
	for round := 0; round < 1000; round++ {
		d, err := sslsession.ParseDER(der)
		require.NoError(t, err)
		ssls := make([]*rawssl.SSL, 2)
		errs := make([]error, 2)
		for i := range ssls {
			ssls[i], err = rawssl.New(ctxs[i])
			require.NoError(t, err)
		}
		var wg sync.WaitGroup
		for i := range ssls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = ssls[i].SetSession(d)
			}()
		}
		wg.Wait()
		wins := 0
		for i := range ssls {
			_, gerr := ssls[i].Session()
			if errs[i] == nil {
				wins++
				require.NoError(t, gerr)
				continue
			}
			require.ErrorIs(t, errs[i], sslsession.ErrWrongContext)
			require.ErrorIs(t, gerr, sslsession.ErrNoSession, "round %d: a refused SetSession installed the session", round)
		}
		require.Equal(t, 1, wins)
		for _, x := range ssls {
			x.Free()
		}
		d.Close()
	}
}

// LiveSessions counts exactly the owned sessions not given back, before
// and after garbage collections.
func TestLiveSessionsExact(t *testing.T) {
	require.Zero(t, sesstest.SettleLive())
	s := ownedSession(t)
	require.Equal(t, int64(1), sslsession.LiveSessions())
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		require.Equal(t, int64(1), sslsession.LiveSessions(), "after GC %d", i+1)
	}
	more := make([]*sslsession.Session, 100)
	for i := range more {
		more[i] = ownedSession(t)
		if i%30 == 0 {
			runtime.GC()
		}
	}
	require.Equal(t, int64(101), sslsession.LiveSessions())
	for _, m := range more {
		m.Close()
	}
	runtime.GC()
	require.Equal(t, int64(1), sslsession.LiveSessions())
	s.Close()
	require.Zero(t, sslsession.LiveSessions())
}

// AwaitSession against a server that streams data and sends no session
// stops at MaxAwaitBuffer with a typed error, and no byte is lost.
func TestAwaitSessionBounded(t *testing.T) {
	cert, err := loopback.SelfSigned()
	require.NoError(t, err)
	sctx, err := loopback.ServerCtx(cert, loopback.Config{Max: sslsession.TLS12, NoTickets: true, NoCache: true})
	require.NoError(t, err)
	srv, err := loopback.Serve(sctx, cert)
	require.NoError(t, err)
	defer srv.Close()
	cctx, err := loopback.ClientCtx(cert, 0, sslsession.TLS12)
	require.NoError(t, err)
	c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost"})
	require.NoError(t, err)
	defer c.Close()
	sent := make([]byte, 3*sslsession.MaxAwaitBuffer)
	_, _ = rand.Read(sent)
	werr := make(chan error, 1)
	go func() { _, err := c.Write(sent); werr <- err }()
	_, err = c.AwaitSession(30 * time.Second)
	require.ErrorIs(t, err, sslsession.ErrAwaitBufferFull)
	require.ErrorIs(t, err, sslsession.ErrNotResumable)
	got := make([]byte, len(sent))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	require.True(t, bytes.Equal(sent, got), "every byte comes back, in order")
	require.NoError(t, <-werr)
}
