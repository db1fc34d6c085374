package sslsession_test

import (
	"bytes"
	"context"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// hostileStore is a SessionStore whose Get does what get says: return odd
// error values, panic with odd values, or end its goroutine.
type hostileStore struct {
	*sslsession.MemoryStore
	get func(der []byte) ([]byte, error)
}

func (h hostileStore) Get(ctx context.Context, id []byte) ([]byte, error) {
	der, _ := h.MemoryStore.Get(ctx, id)
	return h.get(der)
}

// panicIs is an error whose Is and Error methods panic.
type panicIs struct{}

func (panicIs) Error() string        { panic("Error panics") }
func (panicIs) Is(target error) bool { panic("Is panics") }

// loopErr unwraps to itself forever.
type loopErr struct{}

func (e *loopErr) Error() string { return "loop" }
func (e *loopErr) Unwrap() error { return e }

// panicValue panics when formatted.
type panicValue struct{}

func (panicValue) String() string { panic("String panics") }
func (panicValue) Error() string  { panic("Error panics") }

// Nothing a store's Get returns or does can crash the server or fail a
// handshake: each case is a counted full handshake.
func TestStoreHostileGetNeverCrashes(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	var typedNil *sslsession.Error
	cases := []struct {
		name   string
		get    func(der []byte) ([]byte, error)
		errors bool // counted in Errors (else Invalid)
	}{
		{"typed nil *Error", func([]byte) ([]byte, error) { return nil, typedNil }, true},
		{"wrapped typed nil *Error", func([]byte) ([]byte, error) { return nil, fmt.Errorf("x: %w", typedNil) }, true},
		{"Is panics", func([]byte) ([]byte, error) { return nil, panicIs{} }, true},
		{"Unwrap loops", func([]byte) ([]byte, error) { return nil, &loopErr{} }, true},
		{"value and error", func(der []byte) ([]byte, error) { return der, errors.New("both") }, true},
		{"panic with a value that panics", func([]byte) ([]byte, error) { panic(panicValue{}) }, true},
		{"panic nil error", func([]byte) ([]byte, error) { var e error; panic(e) }, true},
		{"Goexit", func([]byte) ([]byte, error) { runtime.Goexit(); return nil, nil }, true},
		{"huge", func([]byte) ([]byte, error) { return make([]byte, 4*sslsession.MaxDERSize), nil }, false},
		{"nil, nil", func([]byte) ([]byte, error) { return nil, nil }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oc, sc := sesstest.StatefulServerCtx(t, v, "hostile")
			sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
			mem := sslsession.NewMemoryStore(0)
			require.NoError(t, sc.SetStore(hostileStore{mem, tc.get}, sslsession.StoreOptions{Timeout: 200 * time.Millisecond}))
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)
			_, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s1.Close()
			reused, s := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
			require.False(t, reused)
			s.Close()
			require.Zero(t, srv.Failed())
			st := sc.Metrics().Store
			require.Equal(t, int64(1), st.Gets)
			require.Equal(t, int64(1), st.Misses)
			require.Zero(t, st.Hits)
			if tc.errors {
				require.Equal(t, int64(1), st.Errors, "%+v", st)
			} else {
				require.Equal(t, int64(1), st.Invalid, "%+v", st)
			}
		})
	}
}

// goexitStore ends the calling goroutine in Put and panics with a value
// that panics when formatted in Delete.
type goexitStore struct{ *sslsession.MemoryStore }

func (goexitStore) Put(context.Context, []byte, []byte, time.Time) error {
	runtime.Goexit()
	return nil
}
func (goexitStore) Delete(context.Context, []byte) error { panic(panicValue{}) }

// Put and Delete may misbehave as Get does, inside the handshake (Put) or
// on the worker goroutine (AsyncPut, Delete): counted errors, no crash, and
// the worker goes on.
func TestStoreHostilePutDeleteNeverCrash(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%t", async), func(t *testing.T) {
			oc, sc := sesstest.StatefulServerCtx(t, v, "hostile-put")
			// A full internal cache evicts unexpired sessions: removals
			// that DeleteOnRemove forwards to Delete.
			sc.SetCacheSize(1)
			require.NoError(t, sc.SetStore(goexitStore{sslsession.NewMemoryStore(0)}, sslsession.StoreOptions{AsyncPut: async, DeleteOnRemove: true}))
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)
			for i := 0; i < 4; i++ {
				_, s := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
				s.Close()
			}
			require.Eventually(t, func() bool {
				st := sc.Metrics().Store
				return st.Puts == 4 && st.Deletes >= 1 && st.Errors == st.Puts+st.Deletes
			}, 5*time.Second, 10*time.Millisecond, "%+v", sc.Metrics().Store)
			st := sc.Metrics().Store
			require.NoError(t, sc.ClearStore(context.Background()))
			require.Zero(t, srv.Failed())
			require.Equal(t, st.Puts+st.Deletes, st.Errors, "%+v", st)
		})
	}
}

// authenticatingStore claims to authenticate its values, so the bridge
// gives it bare DER; change makes what its Get returns.
type authenticatingStore struct {
	*sslsession.MemoryStore
	change func(t *testing.T, der []byte) []byte
	t      *testing.T
}

func (a authenticatingStore) AuthenticatesValues() bool { return true }

func (a authenticatingStore) Get(ctx context.Context, id []byte) ([]byte, error) {
	der, err := a.MemoryStore.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return a.change(a.t, der), nil
}

// withMasterKey returns der with another master key of the same length.
func withMasterKey(t *testing.T, der []byte) []byte {
	fields := sessionFields(t, der)
	// SSLSessionASN1: version, ssl_version, cipher, session_id, master_key.
	var mk []byte
	_, err := asn1.Unmarshal(fields[4].FullBytes, &mk)
	require.NoError(t, err)
	for i := range mk {
		mk[i] ^= 0x5a
	}
	fields[4] = rawOf(t, mk, "")
	return joinFields(t, fields)
}

// A value that still decodes to the offered session ID, but with another
// master key (damaged, spliced or forged without the key), is a miss
// counted invalid and a full handshake: the bridge's tag over the ID and
// the DER does not verify. A store that declares it authenticates its
// values (ValueAuthenticator) is trusted with bare DER: the same change
// then reaches OpenSSL and the handshake fails, which is why only a store
// with its own AEAD (redisstore sealed) may declare it.
func TestStoreChangedMasterKeyIsAMiss(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	for _, trusted := range []bool{false, true} {
		name := "tagged"
		if trusted {
			name = "ValueAuthenticator"
		}
		t.Run(name, func(t *testing.T) {
			oc, sc := sesstest.StatefulServerCtx(t, v, "changed-key")
			sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
			var store sslsession.SessionStore = hostileStore{MemoryStore: sslsession.NewMemoryStore(0), get: func(value []byte) ([]byte, error) {
				// The tag stays; the DER before it changes.
				der := value[:len(value)-32]
				return append(withMasterKey(t, der), value[len(value)-32:]...), nil
			}}
			if trusted {
				store = authenticatingStore{MemoryStore: sslsession.NewMemoryStore(0), change: withMasterKey, t: t}
			}
			require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{}))
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)
			_, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s1.Close()
			reused, s2, err := sesstest.TryRoundtrip(srv.Addr, cctx, s1)
			st := sc.Metrics().Store
			if trusted {
				require.Error(t, err, "a trusted store's changed key reaches OpenSSL")
				assert.Equal(t, int64(1), st.Hits)
				return
			}
			require.NoError(t, err)
			defer s2.Close()
			assert.False(t, reused)
			assert.Equal(t, int64(1), st.Invalid)
			assert.Zero(t, st.Hits)
			assert.Zero(t, srv.Failed())
		})
	}
}

// An IntegrityKey never prints: not alone, not inside StoreOptions, under
// any verb, in JSON or in slog.
func TestIntegrityKeyNeverPrints(t *testing.T) {
	k, err := sslsession.NewIntegrityKey()
	require.NoError(t, err)
	require.False(t, k.IsZero())
	opts := sslsession.StoreOptions{IntegrityKey: k}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("store", "key", k, "opts", opts)
	js, err := json.Marshal(opts)
	require.NoError(t, err)
	outs := []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %X %q", k, k, k, k, k, k, k),
		fmt.Sprintf("%v %+v %#v", opts, opts, opts), string(js), logged.String(), k.String()}
	secret := [][]byte{k[:], []byte(hex.EncodeToString(k[:])), []byte(strings.ToUpper(hex.EncodeToString(k[:]))),
		[]byte(base64.StdEncoding.EncodeToString(k[:])), []byte(fmt.Sprint(k[:]))}
	for _, out := range outs {
		assert.Contains(t, out, "redacted")
		for _, s := range secret {
			assert.NotContains(t, out, string(s))
		}
	}
}
