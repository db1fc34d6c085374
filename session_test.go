package sslsession_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/rawssl"
	"github.com/sslsession/sslsession/internal/sesstest"
)

func TestMain(m *testing.M) { sesstest.Main(m) }

var settle = sesstest.SettleLive

// fixture is one TLS 1.2 connection to an echo server on 127.0.0.1.
type fixture struct {
	// made and done bound the handshake, so the session's creation time.
	made, done time.Time
	srv        *loopback.Server
	cctx       *openssl.Ctx
	conn       *sslsession.Conn
	ssl        *sslsession.SSL
	other      *openssl.Ctx // a second client context
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		f := &fixture{}
		if f.srv, fixErr = loopback.Start(loopback.Config{Max: sslsession.TLS12}); fixErr != nil {
			return
		}
		if f.cctx, fixErr = loopback.ClientCtx(f.srv.Cert, 0, sslsession.TLS12); fixErr != nil {
			return
		}
		if f.other, fixErr = loopback.ClientCtx(f.srv.Cert, 0, sslsession.TLS12); fixErr != nil {
			return
		}
		// OpenSSL keeps whole seconds, from time(2), which reads the
		// kernel's coarse clock: up to a tick behind time.Now, so a
		// handshake just after a second begins may be stamped with the one
		// before.
		f.made = time.Now().Add(-50 * time.Millisecond).Truncate(time.Second)
		f.conn, fixErr = sslsession.Dial("tcp", f.srv.Addr, &sslsession.DialConfig{Ctx: f.cctx, ServerName: "localhost"})
		f.done = time.Now()
		if fixErr == nil {
			f.ssl = f.conn.SSL()
		}
		fix = f
	})
	require.NoError(t, fixErr)
	return fix
}

func ownedSession(t testing.TB) *sslsession.Session {
	t.Helper()
	s, err := getFixture(t).ssl.Session1()
	require.NoError(t, err)
	return s
}

// 100,000 owned sessions dropped without Close: the finalizers give every
// reference back.
func TestFinalizersFreeDroppedSessions(t *testing.T) {
	f := getFixture(t)
	require.Zero(t, settle())
	before := sslsession.FinalizedSessions()
	const n = 100_000
	for i := 0; i < n; i++ {
		if _, err := f.ssl.Session1(); err != nil {
			t.Fatal(err)
		}
	}
	assert.Equal(t, int64(0), settle(), "live sessions after GC")
	assert.GreaterOrEqual(t, sslsession.FinalizedSessions()-before, int64(n))
}

// A few sessions dropped without Close: the garbage collector gives them
// back, and OpenSSL really frees them.
func TestDroppedSessionsAreFreedByOpenSSL(t *testing.T) {
	require.Zero(t, settle())
	var watches []*rawssl.Watch
	for i := 0; i < 5; i++ {
		s := ownedSession(t)
		// A copy, so that the fixture connection's session is not the one
		// watched: each decoded session is its own SSL_SESSION.
		der, err := s.MarshalBinary()
		require.NoError(t, err)
		require.NoError(t, s.Close())
		d, err := sslsession.ParseDER(der)
		require.NoError(t, err)
		w, err := rawssl.WatchSession(d)
		require.NoError(t, err)
		watches = append(watches, w)
	}
	assert.Equal(t, int64(0), settle())
	for i, w := range watches {
		assert.True(t, w.Freed(), "dropped session %d not freed by OpenSSL", i)
		w.Release()
	}
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	s := ownedSession(t)
	live := sslsession.LiveSessions()
	require.NoError(t, s.Close())
	assert.Equal(t, live-1, sslsession.LiveSessions())
	require.NoError(t, s.Close())
	assert.Equal(t, live-1, sslsession.LiveSessions(), "a second Close must not free again")
	_, err := s.Info()
	assert.ErrorIs(t, err, sslsession.ErrClosed)
	_, err = s.MarshalBinary()
	assert.ErrorIs(t, err, sslsession.ErrClosed)
	_, err = s.Owned()
	assert.ErrorIs(t, err, sslsession.ErrClosed)
	assert.ErrorIs(t, getFixture(t).ssl.SetSession(s), sslsession.ErrClosed)
	assert.Contains(t, s.String(), "closed")
}

// Close racing with readers from many goroutines: each read either works
// or reports ErrClosed; the reference is given back once.
func TestConcurrentCloseAndUse(t *testing.T) {
	for round := 0; round < 50; round++ {
		s := ownedSession(t)
		live := sslsession.LiveSessions()
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					if g%4 == 0 && i == 10 {
						_ = s.Close()
					}
					if _, err := s.Info(); err != nil && !errors.Is(err, sslsession.ErrClosed) {
						t.Errorf("unexpected error %v", err)
					}
					if o, err := s.Owned(); err == nil {
						_ = o.Close()
					}
				}
			}(g)
		}
		wg.Wait()
		require.Equal(t, live-1, sslsession.LiveSessions())
	}
}

// Borrowed sessions read while the connection does I/O from other
// goroutines: the connection's own lock keeps them consistent.
func TestBorrowedDuringConcurrentIO(t *testing.T) {
	f := getFixture(t)
	c, err := sslsession.Dial("tcp", f.srv.Addr, &sslsession.DialConfig{Ctx: f.cctx, ServerName: "localhost"})
	require.NoError(t, err)
	defer c.Close()
	b, err := c.Session()
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64)
		for i := 0; i < 200; i++ {
			if _, err := c.Write([]byte("x")); err != nil {
				t.Error(err)
				return
			}
			if _, err := c.Read(buf); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			if _, err := b.Info(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
}

func TestBorrowedToOwned(t *testing.T) {
	f := getFixture(t)
	b, err := f.ssl.Session()
	require.NoError(t, err)
	require.True(t, b.Borrowed())
	require.NoError(t, b.Close(), "Close of a borrowed session does nothing")
	o, err := b.Owned()
	require.NoError(t, err)
	defer o.Close()
	assert.False(t, o.Borrowed())
	bi, err := b.Info()
	require.NoError(t, err)
	oi, err := o.Info()
	require.NoError(t, err)
	assert.Equal(t, bi, oi)
	// Get0 hands out one borrowed handle per session: no allocation.
	again, err := f.ssl.Session()
	require.NoError(t, err)
	assert.Same(t, b, again)
}

func TestInfoAndAccessors(t *testing.T) {
	s := ownedSession(t)
	defer s.Close()
	info, err := s.Info()
	require.NoError(t, err)
	assert.Equal(t, sslsession.TLS12, info.Protocol)
	assert.NotEmpty(t, info.Cipher)
	assert.NotZero(t, info.CipherID)
	assert.True(t, info.Resumable)
	assert.True(t, info.HasTicket, "the loopback server issues tickets")
	assert.Positive(t, info.TicketLength)
	assert.Positive(t, info.TicketLifetimeHint)
	assert.Empty(t, info.IDContext, "a client session has no session ID context; servers set it")
	f := getFixture(t)
	assert.False(t, info.Created.Before(f.made) || info.Created.After(f.done),
		"created %v, handshake between %v and %v", info.Created, f.made, f.done)
	assert.True(t, info.HasPeer)
	assert.Equal(t, info.Created.Add(info.Timeout), info.Expires())

	// Setters on a copy: s is the fixture connection's own session.
	der, err := s.MarshalBinary()
	require.NoError(t, err)
	s, err = sslsession.ParseDER(der)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.SetTimeout(90*time.Second))
	info, err = s.Info()
	require.NoError(t, err)
	assert.Equal(t, 90*time.Second, info.Timeout)
	assert.ErrorIs(t, s.SetTimeout(time.Millisecond), sslsession.ErrInvalidArgument)
	when := time.Unix(1_700_000_000, 0)
	require.NoError(t, s.SetCreated(when))
	info, err = s.Info()
	require.NoError(t, err)
	assert.True(t, info.Created.Equal(when))

	cert, err := s.PeerCertificate()
	require.NoError(t, err)
	require.NotNil(t, cert)
	assert.Equal(t, "localhost", cert.Subject.CommonName)

	key, err := s.MasterKey()
	require.NoError(t, err)
	assert.Len(t, key, 48)

	assert.Equal(t, "TLSv1.3", sslsession.Version(0x0304).String())
	assert.Equal(t, "0x1234", sslsession.Version(0x1234).String())
}

// The master key never shows in String, fmt verbs, JSON of Info, or errors.
func TestSecretsStaySecret(t *testing.T) {
	s := ownedSession(t)
	defer s.Close()
	key, err := s.MasterKey()
	require.NoError(t, err)
	secrets := []string{hex.EncodeToString(key), strings.ToUpper(hex.EncodeToString(key)), string(key)}
	info, err := s.Info()
	require.NoError(t, err)
	js, err := json.Marshal(info)
	require.NoError(t, err)
	shown := []string{
		s.String(), fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s),
		fmt.Sprint(s), info.String(), fmt.Sprintf("%+v", info), string(js),
	}
	b, err := getFixture(t).ssl.Session()
	require.NoError(t, err)
	shown = append(shown, b.String(), fmt.Sprintf("%#v", b))
	// Errors that involve the session's bytes.
	der, err := s.MarshalBinary()
	require.NoError(t, err)
	for _, bad := range [][]byte{der[:len(der)/2], append(append([]byte{}, der...), 0, 0)} {
		_, err := sslsession.ParseDER(bad)
		require.Error(t, err)
		shown = append(shown, err.Error())
	}
	for _, out := range shown {
		for _, secret := range secrets {
			assert.NotContains(t, out, secret)
		}
	}
	assert.Contains(t, s.String(), "TLSv1.2")
}

func TestDERAndPEMRoundTrip(t *testing.T) {
	s := ownedSession(t)
	defer s.Close()
	der, err := s.MarshalBinary()
	require.NoError(t, err)
	pemData, err := s.MarshalPEM()
	require.NoError(t, err)
	block, rest := pem.Decode(pemData)
	require.NotNil(t, block)
	assert.Empty(t, rest)
	assert.Equal(t, sslsession.PEMType, block.Type)
	assert.Equal(t, der, block.Bytes)
	want, err := s.Info()
	require.NoError(t, err)
	for name, parse := range map[string]func() (*sslsession.Session, error){
		"ParseDER":  func() (*sslsession.Session, error) { return sslsession.ParseDER(der) },
		"ParsePEM":  func() (*sslsession.Session, error) { return sslsession.ParsePEM(pemData) },
		"Parse/DER": func() (*sslsession.Session, error) { return sslsession.Parse(der) },
		"Parse/PEM": func() (*sslsession.Session, error) { return sslsession.Parse(pemData) },
		"UnmarshalBinary": func() (*sslsession.Session, error) {
			var d sslsession.Session
			return &d, d.UnmarshalBinary(der)
		},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := parse()
			require.NoError(t, err)
			defer d.Close()
			got, err := d.Info()
			require.NoError(t, err)
			assert.Equal(t, want, got)
			again, err := d.MarshalBinary()
			require.NoError(t, err)
			assert.Equal(t, der, again)
		})
	}
	// A second UnmarshalBinary into a used Session is refused.
	d, err := sslsession.ParseDER(der)
	require.NoError(t, err)
	defer d.Close()
	assert.ErrorIs(t, d.UnmarshalBinary(der), sslsession.ErrInvalidArgument)
}

// Bad input gets a typed error and loses nothing: never a panic, never a
// crash inside OpenSSL.
func TestBadInput(t *testing.T) {
	s := ownedSession(t)
	der, err := s.MarshalBinary()
	require.NoError(t, err)
	require.NoError(t, s.Close())
	random := make([]byte, 4096)
	_, _ = rand.Read(random)
	huge := make([]byte, 10<<20)
	_, _ = rand.Read(huge)
	hugeDER := append([]byte{0x30, 0x84, 0x00, 0xa0, 0x00, 0x00}, huge...)
	wrapPEM := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }

	derCases := map[string][]byte{
		"nil":            nil,
		"empty":          {},
		"one byte":       {0x30},
		"truncated":      der[:len(der)-1],
		"half":           der[:len(der)/2],
		"trailing":       append(append([]byte{}, der...), 0x00),
		"random":         random,
		"10MB random":    huge,
		"10MB SEQUENCE":  hugeDER,
		"wrong sequence": {0x30, 0x03, 0x02, 0x01, 0x01},
		"flipped":        flip(der, len(der)/3),
	}
	for name, in := range derCases {
		t.Run("DER/"+name, func(t *testing.T) {
			s, err := sslsession.ParseDER(in)
			if name == "flipped" && err == nil {
				// A flipped byte inside an OCTET STRING can still parse:
				// then it must be a usable session object.
				defer s.Close()
				_, err := s.Info()
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Nil(t, s)
			assert.ErrorIs(t, err, sslsession.ErrMalformed)
			var oe *sslsession.Error
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, "d2i_SSL_SESSION", oe.Func)
		})
	}
	pemCases := map[string][]byte{
		"nil":        nil,
		"empty":      {},
		"no block":   []byte("hello"),
		"wrong type": wrapPEM("CERTIFICATE", der),
		"bad body":   wrapPEM(sslsession.PEMType, random),
		"truncated":  wrapPEM(sslsession.PEMType, der[:len(der)-5]),
		"bad base64": []byte("-----BEGIN SSL SESSION PARAMETERS-----\n!!!!\n-----END SSL SESSION PARAMETERS-----\n"),
		"10MB":       wrapPEM(sslsession.PEMType, huge),
	}
	for name, in := range pemCases {
		t.Run("PEM/"+name, func(t *testing.T) {
			s, err := sslsession.ParsePEM(in)
			require.Error(t, err)
			require.Nil(t, s)
			assert.ErrorIs(t, err, sslsession.ErrMalformed)
		})
	}
	t.Run("nil session", func(t *testing.T) {
		var s *sslsession.Session
		_, err := s.Info()
		assert.ErrorIs(t, err, sslsession.ErrNilSession)
		_, err = s.MarshalBinary()
		assert.ErrorIs(t, err, sslsession.ErrNilSession)
		_, err = s.Owned()
		assert.ErrorIs(t, err, sslsession.ErrNilSession)
		assert.NoError(t, s.Close())
		assert.ErrorIs(t, getFixture(t).ssl.SetSession(nil), sslsession.ErrNilSession)
		assert.ErrorIs(t, s.UnmarshalBinary(der), sslsession.ErrNilSession)
		assert.Contains(t, s.String(), "nil session")
	})
	t.Run("zero session", func(t *testing.T) {
		var s sslsession.Session
		_, err := s.Info()
		assert.ErrorIs(t, err, sslsession.ErrClosed)
	})
	t.Run("nil connection and context", func(t *testing.T) {
		_, err := sslsession.FromConn(nil)
		assert.ErrorIs(t, err, sslsession.ErrNilSSL)
		_, err = sslsession.FromPointer(nil)
		assert.ErrorIs(t, err, sslsession.ErrNilSSL)
		_, err = rawssl.New(nil)
		assert.ErrorIs(t, err, sslsession.ErrNilCtx)
		_, err = sslsession.NewCtx(nil)
		assert.ErrorIs(t, err, sslsession.ErrNilCtx)
		assert.NotErrorIs(t, err, sslsession.ErrNilSSL, "one meaning per error")
		_, err = sslsession.Client(nil, nil, nil)
		assert.ErrorIs(t, err, sslsession.ErrNilSSL)
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		_, err = sslsession.Client(a, nil, nil)
		assert.ErrorIs(t, err, sslsession.ErrNilCtx)
		var ssl *sslsession.SSL
		_, err = ssl.Session1()
		assert.ErrorIs(t, err, sslsession.ErrNilSSL)
	})
}

func flip(b []byte, i int) []byte {
	out := append([]byte{}, b...)
	out[i] ^= 0xff
	return out
}

func TestSetupChecks(t *testing.T) {
	require.NoError(t, sslsession.CheckSetup())
	b, r := sslsession.BuildVersion(), sslsession.RuntimeVersion()
	assert.Equal(t, b.Major(), r.Major())
	assert.Equal(t, b.Minor(), r.Minor())
	assert.Contains(t, sslsession.RuntimeVersionText(), r.String())
	err := sslsession.CheckSetupF(0x1000215f, 0x30000130, true)
	assert.ErrorIs(t, err, sslsession.ErrSetup)
	assert.Contains(t, err.Error(), "1.0.2u")
	assert.Contains(t, err.Error(), "3.0.19")
	assert.ErrorIs(t, sslsession.CheckSetupF(0x1000215f, 0x1000215f, false), sslsession.ErrSetup)
	assert.Equal(t, "1.1.1w", sslsession.OpenSSLVersion(0x1010117f).String())
}

func TestErrorFormat(t *testing.T) {
	_, err := sslsession.ParseDER(bytes.Repeat([]byte{0x30, 0x01}, 4))
	require.Error(t, err)
	var oe *sslsession.Error
	require.ErrorAs(t, err, &oe)
	assert.True(t, strings.HasPrefix(err.Error(), "sslsession: d2i_SSL_SESSION failed: malformed session data"), err.Error())
}
