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
	mrand "math/rand/v2"
	"net"
	"runtime"
	"slices"
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

// tryDial is ticketClient.dial returning its error, for goroutines.
func (tc *ticketClient) tryDial(addr string) (bool, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, tc.cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return false, err
	}
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		return false, err
	}
	return c.ConnectionState().DidResume, nil
}

// SetTicketKeys, ClearTicketKeys and SetStore while handshakes run, and
// other contexts given keys and freed meanwhile: every handshake succeeds
// (resumed or not), nothing fails in the callback, and -race sees nothing.
func TestTicketKeysSetWhileServing(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			now := time.Now()
			k1, k2 := mustTicketKey(t), mustTicketKey(t)
			ringA := []sslsession.TicketRingKey{{Key: k1, Encrypt: true, Start: now.Add(-time.Hour)}, {Key: k2, Encrypt: true, Start: now.Add(time.Hour)}}
			ringB := []sslsession.TicketRingKey{{Key: k1, Encrypt: true, Start: now.Add(-time.Hour)}, {Key: k2, Encrypt: true, Start: now.Add(-time.Minute)}}
			sc, srv := ticketServer(t, v, ringA)
			store := sslsession.NewMemoryStore(64)
			require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{}), "the first SetStore before serving, as documented")

			stop := make(chan struct{})
			var setters sync.WaitGroup
			var errs sync.Map
			setters.Add(2)
			go func() {
				defer setters.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					ring := ringA
					if i%2 == 1 {
						ring = ringB
					}
					if err := sc.SetTicketKeys(ring); err != nil {
						errs.Store("set", err)
					}
					if i%5 == 0 {
						sc.ClearTicketKeys()
						if err := sc.SetTicketKeys(ring); err != nil {
							errs.Store("reset", err)
						}
					}
					if err := sc.SetStore(store, sslsession.StoreOptions{}); err != nil {
						errs.Store("store", err)
					}
					time.Sleep(time.Millisecond)
				}
			}()
			go func() { // other contexts come and go: the registry's free path
				defer setters.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					oc, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{})
					if err == nil {
						c, err := sslsession.NewCtx(oc)
						if err == nil {
							err = c.SetTicketKeys(ringB)
						}
						if err != nil {
							errs.Store("other", err)
						}
					}
					runtime.GC()
				}
			}()
			var clients sync.WaitGroup
			var resumed atomic.Int64
			for g := 0; g < 4; g++ {
				clients.Add(1)
				go func() {
					defer clients.Done()
					tc := newTicketClient(t, v)
					for i := 0; i < 25; i++ {
						r, err := tc.tryDial(srv.Addr)
						if err != nil {
							errs.Store("dial", err)
							return
						}
						if r {
							resumed.Add(1)
						}
					}
				}()
			}
			clients.Wait()
			close(stop)
			setters.Wait()
			errs.Range(func(k, v any) bool {
				t.Errorf("%v: %v", k, v)
				return true
			})
			assert.Positive(t, resumed.Load(), "tickets resumed while the ring changed")
			assert.Zero(t, sc.Metrics().Tickets.Errors)
		})
	}
}

// OptionNoTicket: the call that installs the callback clears it; a refresh
// never does, so an operator's choice holds through the ring's updates.
func TestTicketKeysKeepNoTicket(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	oc, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{Min: v, Max: v, NoCache: true, NoTickets: true})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	srv := sesstest.Serve(t, oc)
	ring := []sslsession.TicketRingKey{{Key: mustTicketKey(t), Encrypt: true}}
	require.NoError(t, sc.SetTicketKeys(ring))
	require.Zero(t, sc.Options(0, 0)&sslsession.OptionNoTicket, "installing the callback turns tickets on")

	sc.Options(sslsession.OptionNoTicket, 0) // the operator turns them off
	require.NoError(t, sc.SetTicketKeys([]sslsession.TicketRingKey{{Key: mustTicketKey(t), Encrypt: true}}))
	assert.NotZero(t, sc.Options(0, 0)&sslsession.OptionNoTicket, "a refresh keeps OptionNoTicket")
	tc := newTicketClient(t, v)
	require.False(t, tc.dial(t, srv.Addr))
	tc.mu.Lock()
	assert.Empty(t, tc.last, "no ticket issued")
	tc.mu.Unlock()

	sc.ClearTicketKeys()
	require.NoError(t, sc.SetTicketKeys(ring))
	assert.Zero(t, sc.Options(0, 0)&sslsession.OptionNoTicket, "the first call after ClearTicketKeys installs and clears it again")
	require.False(t, tc.dial(t, srv.Addr))
	assert.Equal(t, ring[0].Key.Name(), tc.lastName(t))
}

// refEncrypting is TicketRingKey's rule, written plainly.
func refEncrypting(ring []sslsession.TicketRingKey, now time.Time) int {
	best, first := -1, -1
	for i, k := range ring {
		if !k.Encrypt || (!k.Until.IsZero() && k.Until.UnixMilli() <= now.UnixMilli()) {
			continue
		}
		if k.Start.UnixMilli() <= now.UnixMilli() {
			if best < 0 || k.Start.UnixMilli() > ring[best].Start.UnixMilli() {
				best = i
			}
		} else if first < 0 || k.Start.UnixMilli() < ring[first].Start.UnixMilli() {
			first = i
		}
	}
	if best >= 0 {
		return best
	}
	return first
}

// A ring of MaxTicketKeys keys: the indexed lookup picks the key the rule
// picks at every moment (segment edges included), and a ticket under any
// key of the ring resumes.
func TestTicketKeysFullRing(t *testing.T) {
	sesstest.LeakCheck(t)
	rnd := mrand.New(mrand.NewPCG(1, 2))
	base := time.Now().Truncate(time.Millisecond)
	ring := make([]sslsession.TicketRingKey, sslsession.MaxTicketKeys)
	for i := range ring {
		ring[i] = sslsession.TicketRingKey{Key: mustTicketKey(t), Encrypt: rnd.IntN(4) != 0,
			Start: base.Add(time.Duration(rnd.IntN(2000)-1000) * time.Second)}
		if rnd.IntN(3) == 0 {
			ring[i].Until = ring[i].Start.Add(time.Duration(rnd.IntN(600)+1) * time.Second)
		}
	}
	ring[0].Encrypt, ring[0].Until = true, time.Time{}
	oc, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{NoCache: true, NoTickets: true})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	require.NoError(t, sc.SetTicketKeys(ring))
	var times []time.Time
	for _, k := range ring {
		times = append(times, k.Start, k.Start.Add(-time.Millisecond), k.Start.Add(time.Millisecond))
		if !k.Until.IsZero() {
			times = append(times, k.Until, k.Until.Add(-time.Millisecond))
		}
	}
	for range 2000 {
		times = append(times, base.Add(time.Duration(rnd.IntN(4000)-2000)*time.Second))
	}
	for _, at := range times {
		want := refEncrypting(ring, at)
		name, ok := sc.EncryptingTicketKey(at)
		require.Equal(t, want >= 0, ok, at)
		if ok {
			require.Equal(t, ring[want].Key.Name(), name, "at %v", at)
		}
	}
	require.Error(t, sc.SetTicketKeys(append(ring, sslsession.TicketRingKey{Key: mustTicketKey(t), Encrypt: true})))

	// A ticket under a key deep in the ring resumes and is renewed.
	v := sesstest.Versions(t)[0]
	deep := sslsession.TicketRingKey{Key: mustTicketKey(t), Encrypt: true, Start: base.Add(-time.Hour)}
	full := append(slices.Clone(ring[:sslsession.MaxTicketKeys-1]), deep)
	full[0] = sslsession.TicketRingKey{Key: ring[0].Key, Encrypt: true, Start: base.Add(-time.Minute)}
	for i := 1; i < len(full)-1; i++ {
		full[i].Encrypt, full[i].Until = false, time.Time{}
	}
	big, bigSrv := ticketServer(t, v, full)
	_, small := ticketServer(t, v, []sslsession.TicketRingKey{deep})
	tc := newTicketClient(t, v)
	require.False(t, tc.dial(t, small.Addr))
	require.Equal(t, deep.Key.Name(), tc.lastName(t))
	assert.True(t, tc.dial(t, bigSrv.Addr), "the deep key's ticket resumes on the full ring")
	assert.Equal(t, ring[0].Key.Name(), tc.lastName(t), "renewed under the encrypting key")
	st := big.Metrics().Tickets
	assert.Equal(t, int64(1), st.Renewed)
	assert.Equal(t, int64(1), st.DecryptedAge[1], "one rotation old")
}

// SNI: the servername callback switches "b.localhost" to a second context
// with a ring of its own. The ticket is opened before the switch, with the
// first context's callback; it finds B's keys once B has issued a ticket
// in this process (TicketStats.SNILinked), on every version.
func TestTicketKeysSNI(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			kA, kB := mustTicketKey(t), mustTicketKey(t)
			ringA := []sslsession.TicketRingKey{{Key: kA, Encrypt: true}}
			ringB := []sslsession.TicketRingKey{{Key: kB, Encrypt: true}}
			first, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{Min: v, Max: v, NoCache: true, NoTickets: true})
			require.NoError(t, err)
			second, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{Min: v, Max: v, NoCache: true, NoTickets: true})
			require.NoError(t, err)
			scA, err := sslsession.NewCtx(first)
			require.NoError(t, err)
			scB, err := sslsession.NewCtx(second)
			require.NoError(t, err)
			require.NoError(t, scA.SetTicketKeys(ringA))
			require.NoError(t, scB.SetTicketKeys(ringB))
			var switched atomic.Int64
			first.SetTLSExtServernameCallback(func(ssl *openssl.SSL) openssl.SSLTLSExtErr {
				if ssl.GetServername() == "b.localhost" {
					switched.Add(1)
					ssl.SetSSLCtx(second)
				}
				return openssl.SSLTLSExtErrOK
			})
			srv := sesstest.Serve(t, first)
			_, peerB := ticketServer(t, v, ringB) // another server of B's fleet
			clientB := func() *ticketClient {
				tc := newTicketClient(t, v)
				tc.cfg.ServerName = "b.localhost"
				tc.cfg.InsecureSkipVerify = true // the test certificate names localhost only
				return tc
			}

			// Before this process has issued a ticket for B, the first
			// context does not know B's keys.
			early := clientB()
			require.False(t, early.dial(t, peerB.Addr))
			require.Equal(t, kB.Name(), early.lastName(t))
			assert.False(t, early.dial(t, srv.Addr), "B's ticket before the link: a full handshake")
			assert.Equal(t, kB.Name(), early.lastName(t), "issued under B's ring after the switch")
			assert.Equal(t, int64(1), scA.Metrics().Tickets.SNILinked)

			assert.True(t, early.dial(t, srv.Addr), "B's ticket resumes on B")
			late := clientB()
			require.False(t, late.dial(t, peerB.Addr))
			assert.True(t, late.dial(t, srv.Addr), "a fleet peer's B ticket resumes once linked")

			a := newTicketClient(t, v)
			require.False(t, a.dial(t, srv.Addr))
			assert.Equal(t, kA.Name(), a.lastName(t), "A's connections stay on A's ring")
			assert.True(t, a.dial(t, srv.Addr), "A's ticket resumes on A")
			assert.False(t, a.dial(t, peerB.Addr), "and A's keys are not B's")
			assert.Positive(t, switched.Load())
			assert.Zero(t, scA.Metrics().Tickets.Errors+scB.Metrics().Tickets.Errors)

			// Which context's callback OpenSSL runs: with a ring on B only,
			// B's is never asked (A, the connection's session_ctx, has none
			// and OpenSSL uses A's own keys), before or after the switch.
			scA.ClearTicketKeys()
			issued := scB.Metrics().Tickets.Issued
			only := clientB()
			require.False(t, only.dial(t, srv.Addr))
			assert.NotEqual(t, kB.Name(), only.lastName(t), "not under B's ring")
			assert.Equal(t, issued, scB.Metrics().Tickets.Issued, "B's callback never ran")
			assert.True(t, only.dial(t, srv.Addr), "OpenSSL's own keys of A resume it")
		})
	}
}

// BenchmarkTicketResumeRing resumes a ticket on a server whose ring holds
// 1 key or MaxTicketKeys keys (the ticket's key among them, not the
// encrypting one, so that every resumption looks it up and renews): the
// ring is indexed, so both cost the same within noise.
func BenchmarkTicketResumeRing(b *testing.B) {
	v := sesstest.Versions(b)[0]
	for _, n := range []int{1, sslsession.MaxTicketKeys} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			now := time.Now()
			old := sslsession.TicketRingKey{Key: mustTicketKey(b), Encrypt: true, Start: now.Add(-time.Hour)}
			ring := []sslsession.TicketRingKey{old}
			if n > 1 {
				ring = append(ring, sslsession.TicketRingKey{Key: mustTicketKey(b), Encrypt: true, Start: now.Add(-time.Minute)})
				for len(ring) < n {
					ring = append(ring, sslsession.TicketRingKey{Key: mustTicketKey(b)})
				}
			}
			_, issuer := ticketServer(b, v, []sslsession.TicketRingKey{old})
			_, srv := ticketServer(b, v, ring)
			cctx := sesstest.ClientCtx(b, v)
			_, sess := sesstest.Roundtrip(b, issuer.Addr, cctx, nil)
			defer sess.Close()
			b.ResetTimer()
			for b.Loop() {
				reused, next, err := sesstest.TryRoundtrip(srv.Addr, cctx, sess)
				if err != nil || !reused {
					b.Fatalf("resumed %v, %v", reused, err)
				}
				next.Close()
			}
		})
	}
}
