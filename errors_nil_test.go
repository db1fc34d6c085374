package sslsession_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
	"unsafe"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/rawssl"
)

// Zero values and nil receivers of every exported type give a typed error
// (or a zero result for methods without one), never a panic and never a
// crash in C.
func TestZeroValuesAndNilReceivers(t *testing.T) {
	isNil := func(t *testing.T, err error) {
		t.Helper()
		require.Error(t, err)
		require.True(t, errors.Is(err, sslsession.ErrNilSSL) || errors.Is(err, sslsession.ErrNilCtx) ||
			errors.Is(err, sslsession.ErrZeroValue) || errors.Is(err, sslsession.ErrNilSession) || errors.Is(err, sslsession.ErrClosed),
			"%v wraps no nil/closed sentinel", err)
	}
	ctx := context.Background()
	sess := ownedSession(t)
	defer sess.Close()

	for name, s := range map[string]*sslsession.SSL{"zero": {}, "nil": nil} {
		t.Run("SSL/"+name, func(t *testing.T) {
			require.NotPanics(t, func() {
				_, err := s.Session()
				isNil(t, err)
				_, err = s.Session1()
				isNil(t, err)
				isNil(t, s.SetSession(sess))
				isNil(t, s.SetServerName("x"))
				require.False(t, s.SessionReused())
				require.Zero(t, s.Version())
				require.Empty(t, s.Cipher())
				require.Nil(t, s.Pointer())
				require.Nil(t, s.Conn())
				s.Free()
			})
		})
	}
	for name, s := range map[string]*rawssl.SSL{"zero": {}, "nil": nil} {
		t.Run("rawssl.SSL/"+name, func(t *testing.T) {
			require.NotPanics(t, func() {
				isNil(t, s.Clear())
				isNil(t, s.SetFD(0))
				isNil(t, s.Connect())
				isNil(t, s.Accept())
				isNil(t, s.Shutdown())
				_, err := s.Read(make([]byte, 1))
				isNil(t, err)
				_, err = s.Write([]byte("x"))
				isNil(t, err)
				s.Free()
			})
		})
	}
	for name, c := range map[string]*sslsession.Ctx{"zero": {}, "nil": nil} {
		t.Run("Ctx/"+name, func(t *testing.T) {
			require.NotPanics(t, func() {
				require.Nil(t, c.OpenSSL())
				require.Zero(t, c.SetCacheMode(sslsession.CacheServer))
				require.Zero(t, c.CacheMode())
				require.Zero(t, c.SetCacheSize(3))
				require.Zero(t, c.CacheSize())
				require.Zero(t, c.SetTimeout(time.Minute))
				require.Zero(t, c.Timeout())
				isNil(t, c.SetSessionIDContext([]byte("x")))
				isNil(t, c.Flush(time.Now()))
				_, err := c.AddSession(sess)
				isNil(t, err)
				_, err = c.RemoveSession(sess)
				isNil(t, err)
				require.Zero(t, c.Options(0, 0))
				isNil(t, c.SetNumTickets(1))
				isNil(t, c.SetCipherSuites("TLS_AES_128_GCM_SHA256"))
				require.Zero(t, c.NumTickets())
				require.Zero(t, c.Metrics().Cache)
				isNil(t, c.SetProtocolRange(sslsession.TLS12, 0))
				isNil(t, c.UseSystemRoots())
				isNil(t, c.SetStore(sslsession.NewMemoryStore(1), sslsession.StoreOptions{}))
				isNil(t, c.ClearStore(ctx))
				require.Nil(t, c.Store())
				require.Zero(t, c.Metrics().Store)
				require.Zero(t, c.Metrics())
				isNil(t, sslsession.PublishExpvar("sslsession-zero-ctx", c))
				k, err := sslsession.NewTicketKey()
				require.NoError(t, err)
				isNil(t, c.SetTicketKeys([]sslsession.TicketRingKey{{Key: k, Encrypt: true}}))
				c.ClearTicketKeys()
				require.False(t, c.HasTicketKeys())
				_, ok := c.EncryptingTicketKey(time.Now())
				require.False(t, ok)
				require.Zero(t, c.Metrics().Tickets)
			})
		})
	}
	for name, s := range map[string]*sslsession.Session{"zero": {}, "nil": nil} {
		t.Run("Session/"+name, func(t *testing.T) {
			require.NotPanics(t, func() {
				_, err := s.Info()
				isNil(t, err)
				_, err = s.Owned()
				isNil(t, err)
				_, err = s.MasterKey()
				isNil(t, err)
				_, err = s.PeerCertificate()
				isNil(t, err)
				_, err = s.MarshalBinary()
				isNil(t, err)
				_, err = s.MarshalPEM()
				isNil(t, err)
				isNil(t, s.SetTimeout(time.Minute))
				isNil(t, s.SetCreated(time.Now()))
				_, err = rawssl.WatchSession(s)
				isNil(t, err)
				isNil(t, s.WithPointer(func(unsafe.Pointer) error { return nil }))
				require.NotEmpty(t, s.String())
				require.NoError(t, s.Close())
			})
		})
	}
	for name, c := range map[string]*sslsession.Conn{"zero": {}, "nil": nil} {
		t.Run("Conn/"+name, func(t *testing.T) {
			require.NotPanics(t, func() {
				_, err := c.Session()
				isNil(t, err)
				_, err = c.Session1()
				isNil(t, err)
				require.False(t, c.SessionReused())
				_, err = c.AwaitSession(time.Millisecond)
				isNil(t, err)
				_, err = c.Read(make([]byte, 1))
				isNil(t, err)
				_, err = c.WriteTo(io.Discard)
				isNil(t, err)
				_, err = c.Write([]byte("x"))
				isNil(t, err)
				isNil(t, c.Handshake())
				require.Zero(t, c.HandshakeDuration())
				isNil(t, c.SetDeadline(time.Now()))
				isNil(t, c.SetReadDeadline(time.Now()))
				isNil(t, c.SetWriteDeadline(time.Now()))
				isNil(t, c.SetServerName("x"))
				require.NotEqual(t, openssl.Ok, c.VerifyResult(), "a zero Conn is not verified")
				isNil(t, c.VerifyHostname("x"))
				isNil(t, c.KeyUpdate(false))
				require.Nil(t, c.LocalAddr())
				require.Nil(t, c.RemoteAddr())
				require.Nil(t, c.OpenSSL())
				require.Nil(t, c.SSL())
				isNil(t, c.CloseWrite())
				isNil(t, c.Close())
			})
		})
	}
	for name, cc := range map[string]*sslsession.ClientCache{"zero": {}, "nil": nil} {
		t.Run("ClientCache/"+name, func(t *testing.T) {
			require.NotPanics(t, func() {
				require.Nil(t, cc.Ctx())
				require.Nil(t, cc.Get("k"))
				isNil(t, cc.Put("k", sess))
				cc.Remove("k")
				require.Zero(t, cc.Len())
				require.Zero(t, cc.Stats())
				_, err := sslsession.Dial("tcp", "127.0.0.1:1", &sslsession.DialConfig{Cache: cc})
				if cc == nil {
					require.ErrorIs(t, err, sslsession.ErrIO, "a nil Cache is no cache: Dial dials")
				} else {
					isNil(t, err)
				}
				require.NoError(t, cc.Close())
			})
		})
	}
	for name, m := range map[string]*sslsession.MemoryStore{"zero": {}} {
		t.Run("MemoryStore/"+name, func(t *testing.T) {
			require.NotPanics(t, func() {
				_, err := m.Get(ctx, []byte("a"))
				require.ErrorIs(t, err, sslsession.ErrNotFound)
				require.NoError(t, m.Put(ctx, []byte("a"), []byte("b"), time.Now().Add(time.Hour)))
				got, err := m.Get(ctx, []byte("a"))
				require.NoError(t, err)
				require.Equal(t, "b", string(got))
				require.NoError(t, m.Delete(ctx, []byte("a")))
				require.Zero(t, m.Len())
			})
		})
	}
	t.Run("MemoryStore/nil", func(t *testing.T) {
		var m *sslsession.MemoryStore
		require.NotPanics(t, func() {
			_, err := m.Get(ctx, []byte("a"))
			isNil(t, err)
			isNil(t, m.Put(ctx, []byte("a"), []byte("b"), time.Now().Add(time.Hour)))
			isNil(t, m.Delete(ctx, []byte("a")))
			require.Zero(t, m.Len())
		})
	})
	for name, w := range map[string]*rawssl.Watch{"zero": {}, "nil": nil} {
		t.Run("rawssl.Watch/"+name, func(t *testing.T) {
			require.NotPanics(t, func() {
				require.False(t, w.Freed())
				w.Release()
				w.Release()
			})
		})
	}
	t.Run("Error/nil", func(t *testing.T) {
		var e *sslsession.Error
		require.NotPanics(t, func() {
			require.NotEmpty(t, e.Error())
			require.Nil(t, e.Unwrap())
		})
	})
}
