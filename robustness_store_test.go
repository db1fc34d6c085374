package sslsession_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

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
			oc, sc := statefulServerCtx(t, v, "hostile")
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
			oc, sc := statefulServerCtx(t, v, "hostile-put")
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
