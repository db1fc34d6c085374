package sslsession_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// ticketServer serves with a stateless-ticket context: the session cache is
// off, so a resumption can only come from a ticket.
func ticketServer(t testing.TB, v sslsession.Version, ring []sslsession.TicketRingKey) (*sslsession.Ctx, *loopback.Server) {
	t.Helper()
	oc, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{Min: v, Max: v, NoCache: true, NoTickets: true})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	require.NoError(t, sc.SetTicketKeys(ring), "SetTicketKeys clears OptionNoTicket")
	require.Zero(t, sc.Options(0, 0)&sslsession.OptionNoTicket)
	return sc, sesstest.Serve(t, oc)
}

// ticketClient is a crypto/tls client that records the last ticket it got.
type ticketClient struct {
	cfg *tls.Config
	mu  sync.Mutex
	tls.ClientSessionCache
	last []byte
}

func newTicketClient(t testing.TB, v sslsession.Version) *ticketClient {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(sesstest.Cert(t).CertPEM))
	tc := &ticketClient{ClientSessionCache: tls.NewLRUClientSessionCache(8)}
	tc.cfg = &tls.Config{
		RootCAs: pool, ServerName: "localhost", ClientSessionCache: tc,
		MinVersion: uint16(v), MaxVersion: uint16(v),
		CurvePreferences: []tls.CurveID{tls.CurveP256},
	}
	return tc
}

func (tc *ticketClient) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		if ticket, _, err := cs.ResumptionState(); err == nil {
			tc.mu.Lock()
			tc.last = bytes.Clone(ticket)
			tc.mu.Unlock()
		}
	}
	tc.ClientSessionCache.Put(key, cs)
}

// lastName is the key name of the last ticket received.
func (tc *ticketClient) lastName(t testing.TB) [16]byte {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	n, ok := sslsession.TicketKeyName(tc.last)
	require.True(t, ok, "no ticket received")
	return n
}

// dial connects, echoes (so TLS 1.3 tickets are read) and reports whether
// the handshake resumed.
func (tc *ticketClient) dial(t testing.TB, addr string) bool {
	t.Helper()
	c, err := tls.Dial("tcp", addr, tc.cfg)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	return c.ConnectionState().DidResume
}

func mustTicketKey(t testing.TB) sslsession.TicketKey {
	k, err := sslsession.NewTicketKey()
	require.NoError(t, err)
	return k
}

func TestTicketKeysAcrossContexts(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			k := mustTicketKey(t)
			ring := []sslsession.TicketRingKey{{Key: k, Encrypt: true, Start: time.Now().Add(-time.Minute)}}
			a, srvA := ticketServer(t, v, ring)
			b, srvB := ticketServer(t, v, ring)
			_, srvC := ticketServer(t, v, []sslsession.TicketRingKey{{Key: mustTicketKey(t), Encrypt: true}})

			tc := newTicketClient(t, v)
			assert.False(t, tc.dial(t, srvA.Addr))
			assert.Equal(t, k.Name(), tc.lastName(t))
			assert.True(t, tc.dial(t, srvB.Addr), "a ticket from A resumes on B, which shares the ring")
			assert.True(t, tc.dial(t, srvA.Addr), "and B's ticket on A")
			assert.False(t, tc.dial(t, srvC.Addr), "a server with other keys makes a full handshake, no error")

			sa, sb := a.Metrics().Tickets, b.Metrics().Tickets
			assert.GreaterOrEqual(t, sa.Issued, int64(1))
			assert.GreaterOrEqual(t, sb.DecryptedAge[0], int64(1))
			assert.Zero(t, sa.Errors+sb.Errors+sa.UnknownKey+sb.UnknownKey)
			name, ok := a.EncryptingTicketKey(time.Now())
			assert.True(t, ok)
			assert.Equal(t, k.Name(), name)
		})
	}
}

// A rotation as a fleet does it: the next key is published before it
// encrypts; a ticket under an older key resumes and is renewed under the
// encrypting key until the old key's Until, then gives a full handshake.
func TestTicketKeysRotation(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			now := time.Now()
			k1, k2 := mustTicketKey(t), mustTicketKey(t)
			sc, srv := ticketServer(t, v, []sslsession.TicketRingKey{
				{Key: k1, Encrypt: true, Start: now.Add(-time.Hour)},
				{Key: k2, Encrypt: true, Start: now.Add(time.Hour)}, // published next
			})
			tc := newTicketClient(t, v)
			require.False(t, tc.dial(t, srv.Addr))
			require.Equal(t, k1.Name(), tc.lastName(t))

			// A server whose clock is ahead already encrypts with k2.
			_, ahead := ticketServer(t, v, []sslsession.TicketRingKey{
				{Key: k1, Encrypt: true, Start: now.Add(-2 * time.Hour)},
				{Key: k2, Encrypt: true, Start: now.Add(-time.Second)},
			})
			tc2 := newTicketClient(t, v)
			require.False(t, tc2.dial(t, ahead.Addr))
			require.Equal(t, k2.Name(), tc2.lastName(t))
			before0 := sc.Metrics().Tickets
			assert.True(t, tc2.dial(t, srv.Addr), "a ticket under the published next key resumes")
			assert.Equal(t, int64(1), sc.Metrics().Tickets.DecryptedNext)
			assert.Equal(t, k2.Name(), tc2.lastName(t), "a ticket under the next key is not renewed")
			assert.Equal(t, before0.Renewed, sc.Metrics().Tickets.Renewed)

			// Rotate: k2 encrypts, k1 decrypts for a while.
			require.NoError(t, sc.SetTicketKeys([]sslsession.TicketRingKey{
				{Key: k1, Encrypt: true, Start: now.Add(-time.Hour), Until: now.Add(time.Hour)},
				{Key: k2, Encrypt: true, Start: now.Add(-time.Second)},
			}))
			before := sc.Metrics().Tickets
			assert.True(t, tc.dial(t, srv.Addr), "a ticket under the previous key still resumes")
			assert.Equal(t, k2.Name(), tc.lastName(t), "the renewed ticket carries the encrypting key's name")
			after := sc.Metrics().Tickets
			assert.Equal(t, before.Renewed+1, after.Renewed)
			assert.Equal(t, before.DecryptedAge[1]+1, after.DecryptedAge[1], "counted as one rotation old")

			// k1 past its Until: a full handshake, counted, no error.
			tc3 := newTicketClient(t, v)
			require.NoError(t, sc.SetTicketKeys([]sslsession.TicketRingKey{
				{Key: k1, Encrypt: true, Start: now.Add(-time.Hour), Until: now.Add(time.Hour)},
			}))
			require.False(t, tc3.dial(t, srv.Addr))
			require.Equal(t, k1.Name(), tc3.lastName(t))
			require.NoError(t, sc.SetTicketKeys([]sslsession.TicketRingKey{
				{Key: k1, Encrypt: true, Start: now.Add(-time.Hour), Until: now.Add(-time.Millisecond)},
				{Key: k2, Encrypt: true, Start: now.Add(-time.Second)},
			}))
			before = sc.Metrics().Tickets
			assert.False(t, tc3.dial(t, srv.Addr), "an expired key's ticket gives a full handshake")
			assert.Equal(t, before.Expired+1, sc.Metrics().Tickets.Expired)

			// Unknown key name.
			require.NoError(t, sc.SetTicketKeys([]sslsession.TicketRingKey{{Key: mustTicketKey(t), Encrypt: true}}))
			before = sc.Metrics().Tickets
			assert.False(t, tc.dial(t, srv.Addr))
			assert.Equal(t, before.UnknownKey+1, sc.Metrics().Tickets.UnknownKey)
			assert.Zero(t, sc.Metrics().Tickets.Errors)
		})
	}
}

// The keys also resume this package's own clients (OpenSSL on both sides).
func TestTicketKeysDial(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			ring := []sslsession.TicketRingKey{{Key: mustTicketKey(t), Encrypt: true}}
			_, a := ticketServer(t, v, ring)
			_, b := ticketServer(t, v, ring)
			cctx := sesstest.ClientCtx(t, v)
			reused, sess := sesstest.Roundtrip(t, a.Addr, cctx, nil)
			require.False(t, reused)
			defer sess.Close()
			info, err := sess.Info()
			require.NoError(t, err)
			require.True(t, info.HasTicket)
			reused, next := sesstest.Roundtrip(t, b.Addr, cctx, sess)
			defer next.Close()
			assert.True(t, reused)
		})
	}
}

func TestSetTicketKeysErrors(t *testing.T) {
	oc, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	k := mustTicketKey(t)
	now := time.Now()
	for name, ring := range map[string][]sslsession.TicketRingKey{
		"empty":      nil,
		"zero key":   {{Encrypt: true}},
		"no encrypt": {{Key: k}},
		"expired":    {{Key: k, Encrypt: true, Start: now.Add(-time.Hour), Until: now.Add(-2 * time.Hour)}},
		"duplicate":  {{Key: k, Encrypt: true}, {Key: k}},
		"too many":   make([]sslsession.TicketRingKey, sslsession.MaxTicketKeys+1),
	} {
		err := sc.SetTicketKeys(ring)
		assert.ErrorIs(t, err, sslsession.ErrTicketKeys, name)
	}
	assert.False(t, sc.HasTicketKeys())
	_, err = sslsession.ParseTicketKey(make([]byte, 79))
	assert.ErrorIs(t, err, sslsession.ErrTicketKeys)
	require.NoError(t, sc.SetTicketKeys([]sslsession.TicketRingKey{{Key: k, Encrypt: true}}))
	assert.True(t, sc.HasTicketKeys())
	sc.ClearTicketKeys()
	assert.False(t, sc.HasTicketKeys())
	_, ok := sc.EncryptingTicketKey(time.Now())
	assert.False(t, ok)
	sc.ClearTicketKeys()
}

// No form of printing a key shows its secret parts.
func TestTicketKeyNeverPrinted(t *testing.T) {
	k := mustTicketKey(t)
	b := k.Bytes()
	require.Len(t, b, sslsession.TicketKeySize)
	k2, err := sslsession.ParseTicketKey(b)
	require.NoError(t, err)
	require.True(t, k.Equal(k2))
	secrets := []string{
		hex.EncodeToString(b[16:48]), hex.EncodeToString(b[48:]),
		fmt.Sprintf("%x", b[16:48]), fmt.Sprintf("%X", b[48:]), string(b[16:48]), string(b[48:]),
		fmt.Sprint(b[16:48]), fmt.Sprint(b[48:]),
	}
	ring := sslsession.TicketRingKey{Key: k, Encrypt: true}
	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		outs = append(outs, fmt.Sprintf(f, k), fmt.Sprintf(f, &k), fmt.Sprintf(f, ring), fmt.Sprintf(f, []sslsession.TicketKey{k}))
	}
	j, err := json.Marshal(ring)
	require.NoError(t, err)
	outs = append(outs, string(j))
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("key", "key", k, "ring", ring)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("key", "key", k)
	outs = append(outs, logged.String())
	_, err = sslsession.ParseTicketKey(append(b, 0))
	outs = append(outs, err.Error())
	for _, out := range outs {
		assert.Contains(t, out+string(j), hex.EncodeToString(b[:16])[:8])
		for _, s := range secrets {
			assert.NotContains(t, out, s)
		}
	}
	assert.Contains(t, string(j), hex.EncodeToString(b[:16]), "the name is public: tickets carry it")
}

// A ring whose every key has passed its Until has nothing to encrypt with:
// handshakes still succeed, without a ticket (3.x) or with one under a
// throwaway key that no server can open (1.0.2 cannot decline to send one;
// 1.1.1 declines TLS 1.3 tickets with a malformed message), and NoKey
// counts them.
func TestTicketKeysAllExpired(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			k := mustTicketKey(t)
			until := time.Now().Add(300 * time.Millisecond)
			sc, srv := ticketServer(t, v, []sslsession.TicketRingKey{
				{Key: k, Encrypt: true, Start: time.Now().Add(-time.Hour), Until: until},
			})
			tc := newTicketClient(t, v)
			require.False(t, tc.dial(t, srv.Addr))
			require.Equal(t, k.Name(), tc.lastName(t), "issued under the key while it lasts")
			time.Sleep(time.Until(until) + 50*time.Millisecond)

			fresh := newTicketClient(t, v)
			require.False(t, fresh.dial(t, srv.Addr), "a full handshake, not a failed one")
			require.False(t, tc.dial(t, srv.Addr), "the expired key's ticket gives a full handshake")
			perHandshake := int64(1) // TLS 1.2: one ticket
			if v == sslsession.TLS13 {
				perHandshake = 2 // OpenSSL's two TLS 1.3 tickets
			}
			st := sc.Metrics().Tickets
			require.Equal(t, 2*perHandshake, st.NoKey)
			require.Equal(t, int64(1), st.Expired)
			require.Zero(t, st.Errors)
			fresh.mu.Lock()
			last := fresh.last
			fresh.mu.Unlock()
			if sslsession.RuntimeVersion() < 0x30000000 {
				name, ok := sslsession.TicketKeyName(last)
				require.True(t, ok, "before 3.0 a ticket is sent all the same")
				require.NotEqual(t, k.Name(), name, "under a throwaway key")
				require.False(t, fresh.dial(t, srv.Addr), "which no server can open")
				require.Equal(t, 3*perHandshake, sc.Metrics().Tickets.NoKey)
			} else {
				// TLS 1.2: an empty NewSessionTicket (RFC 5077 3.3); TLS
				// 1.3: none.
				require.Empty(t, last, "3.x sends no ticket")
			}
		})
	}
}

// nginx's and haproxy's 48-byte keys: AES-128-CBC with a 16-byte HMAC key.
// They round-trip through Bytes, resume across servers, and share a ring
// with 80-byte keys.
func TestTicketKeysAES128(t *testing.T) {
	sesstest.LeakCheck(t)
	raw := make([]byte, sslsession.TicketKeySize128)
	copy(raw, mustTicketKey(t).Bytes())
	k128, err := sslsession.ParseTicketKey(raw)
	require.NoError(t, err)
	require.True(t, k128.AES128())
	require.Equal(t, sslsession.TicketKeySize128, k128.Size())
	require.Equal(t, raw, k128.Bytes())
	k256 := mustTicketKey(t)
	require.False(t, k256.AES128())
	require.Equal(t, sslsession.TicketKeySize, k256.Size())
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			now := time.Now()
			ring := []sslsession.TicketRingKey{
				{Key: k256, Encrypt: true, Start: now.Add(-time.Hour)},
				{Key: k128, Encrypt: true, Start: now.Add(-time.Minute)},
			}
			a, srvA := ticketServer(t, v, ring)
			_, srvB := ticketServer(t, v, ring)
			tc := newTicketClient(t, v)
			require.False(t, tc.dial(t, srvA.Addr))
			require.Equal(t, k128.Name(), tc.lastName(t), "the AES-128 key encrypts")
			assert.True(t, tc.dial(t, srvB.Addr), "an AES-128 ticket resumes on another server")
			assert.True(t, tc.dial(t, srvA.Addr))
			// An AES-256 ticket in the same ring still opens.
			_, old := ticketServer(t, v, []sslsession.TicketRingKey{{Key: k256, Encrypt: true}})
			tc2 := newTicketClient(t, v)
			require.False(t, tc2.dial(t, old.Addr))
			assert.True(t, tc2.dial(t, srvA.Addr))
			assert.Equal(t, k128.Name(), tc2.lastName(t), "renewed under the AES-128 key")
			assert.Zero(t, a.Metrics().Tickets.Errors)
		})
	}
}
