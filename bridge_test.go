package sslsession_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/cbprobe"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/rawssl"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// The session callbacks and the store behind them (callbacks.go,
// bridge.go): resumption through the store, the reference rules, failures,
// the deadlock guard, DeleteOnRemove, AsyncPut, release and replacement.

// With the internal cache off, every resumption goes through the store.
func TestStoreResumesThroughCallbacks(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			oc, sc := sesstest.StatefulServerCtx(t, v, "callbacks")
			sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
			sc.SetTimeout(77 * time.Second)
			store := sesstest.NewRecordStore()
			require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{}))
			require.Same(t, store, sc.Store())
			newCb, getCb, removeCb := sslsession.CacheCallbacks(sc)
			require.True(t, newCb)
			require.True(t, getCb)
			require.False(t, removeCb, "no remove callback without DeleteOnRemove")
			require.Equal(t, sslsession.CacheServer|sslsession.CacheNoInternal, sc.CacheMode())

			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)
			start := time.Now().Truncate(time.Second)
			_, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s1.Close()
			puts, gets, _ := store.Counts()
			require.Positive(t, puts)
			require.Zero(t, gets, "a full handshake offers no session")
			require.Zero(t, sc.Metrics().Cache.Number, "nothing in the internal cache")
			for _, e := range store.Expires() {
				require.WithinDuration(t, start.Add(77*time.Second), e, 2*time.Second, "expires = created + timeout")
			}
			if v == sslsession.TLS12 {
				require.Equal(t, sesstest.SessionID(t, s1), store.Puts()[0], "the store is keyed by the session ID")
			}

			const rounds = 5
			cur, err := s1.Owned()
			require.NoError(t, err)
			for i := 0; i < rounds; i++ {
				reused, next := sesstest.Roundtrip(t, srv.Addr, cctx, cur)
				require.True(t, reused, "round %d", i)
				cur.Close()
				cur = next
			}
			cur.Close()
			st := sc.Metrics().Store
			t.Logf("store: %+v, cache: %+v", st, sc.Metrics().Cache)
			lookups := int64(rounds)
			require.Equal(t, lookups, st.Gets)
			require.Equal(t, lookups, st.Hits)
			require.Zero(t, st.Misses)
			require.Zero(t, st.Errors)
			require.Zero(t, st.Invalid)
			require.Equal(t, lookups, sc.Metrics().Cache.CbHits)
			require.Equal(t, int64(rounds), sc.Metrics().Cache.Hits)

			require.NoError(t, sc.ClearStore(context.Background()))
			require.Nil(t, sc.Store())
			newCb, getCb, removeCb = sslsession.CacheCallbacks(sc)
			require.False(t, newCb || getCb || removeCb, "ClearStore takes every callback off")
			reused, s := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
			require.False(t, reused, "no store, no internal cache: no resumption")
			s.Close()
		})
	}
}

// The reference rules: the new-session callback returns 0 and takes no
// reference, and the get callback hands OpenSSL its one reference (*copy =
// 0). Either mistake would leak every session; the watches prove each one
// is really freed once OpenSSL is done with it.
func TestStoreCallbackReferences(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			var mu sync.Mutex
			var newW, gotW []*rawssl.Watch
			watchInto := func(ws *[]*rawssl.Watch) func(unsafe.Pointer) {
				return func(p unsafe.Pointer) {
					w, err := rawssl.WatchPointer(p)
					if err == nil {
						mu.Lock()
						*ws = append(*ws, w)
						mu.Unlock()
					}
				}
			}

			oc, sc := sesstest.StatefulServerCtx(t, v, "refs")
			sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
			require.NoError(t, sc.SetStore(sslsession.NewMemoryStore(0), sslsession.StoreOptions{}))
			// Watch each session the bridge's new callback saw and each
			// its get callback handed to OpenSSL.
			restore := cbprobe.Install(sc, cbprobe.Probes{New: watchInto(&newW), Got: watchInto(&gotW)})
			defer restore()
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)
			_, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			cur := s1
			for i := 0; i < 3; i++ {
				reused, next := sesstest.Roundtrip(t, srv.Addr, cctx, cur)
				require.True(t, reused)
				cur.Close()
				cur = next
			}
			cur.Close()
			require.NoError(t, srv.Close())
			restore()

			mu.Lock()
			defer mu.Unlock()
			require.NotEmpty(t, newW)
			require.GreaterOrEqual(t, len(gotW), 3)
			all := append(append([]*rawssl.Watch(nil), newW...), gotW...)
			// The server's connections free their SSL (and so the session)
			// in spacemonkeygo's finalizers.
			require.Eventually(t, func() bool {
				runtime.GC()
				for _, w := range all {
					if !w.Freed() {
						return false
					}
				}
				return true
			}, 10*time.Second, 20*time.Millisecond, "every session given to or taken from OpenSSL is freed")
			for _, w := range all {
				w.Release()
			}
		})
	}
}

// Store errors, panics, timeouts and garbage never fail a handshake: each
// becomes a full handshake and is counted.
func TestStoreFailuresNeverFailHandshakes(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	cases := []struct {
		name  string
		store func(real *sslsession.MemoryStore) sslsession.SessionStore
		check func(t *testing.T, st sslsession.StoreStats)
	}{
		{"errors", func(*sslsession.MemoryStore) sslsession.SessionStore { return failStore{err: errors.New("store down")} },
			func(t *testing.T, st sslsession.StoreStats) {
				require.Positive(t, st.Errors)
				require.Equal(t, st.Gets, st.Misses)
			}},
		{"panics", func(*sslsession.MemoryStore) sslsession.SessionStore { return failStore{panics: true} },
			func(t *testing.T, st sslsession.StoreStats) {
				require.Equal(t, st.Puts+st.Gets, st.Errors)
			}},
		{"slow", func(*sslsession.MemoryStore) sslsession.SessionStore { return failStore{hang: true} },
			func(t *testing.T, st sslsession.StoreStats) {
				require.Equal(t, st.Puts+st.Gets, st.Errors, "timeouts are errors")
			}},
		{"invalid", func(*sslsession.MemoryStore) sslsession.SessionStore {
			return failStore{err: sslsession.ErrInvalidValue}
		},
			func(t *testing.T, st sslsession.StoreStats) {
				require.Equal(t, st.Gets, st.Invalid)
			}},
		{"garbage DER", func(m *sslsession.MemoryStore) sslsession.SessionStore {
			return garbageStore{m, func(_, _ []byte) []byte { return []byte("\x30\x03garbage") }}
		},
			func(t *testing.T, st sslsession.StoreStats) {
				require.Equal(t, st.Gets, st.Invalid)
				require.Zero(t, st.Errors)
			}},
		{"another session's DER", func(m *sslsession.MemoryStore) sslsession.SessionStore {
			return garbageStore{m, func(id, _ []byte) []byte { return sslsession.SealStored(id, cacheOtherDER) }}
		},
			func(t *testing.T, st sslsession.StoreStats) {
				require.Equal(t, st.Gets, st.Invalid, "a value whose session ID differs is refused")
			}},
		{"a newer OpenSSL's session", func(m *sslsession.MemoryStore) sslsession.SessionStore {
			return garbageStore{m, func(id, _ []byte) []byte { return sslsession.SealStored(id, newerDER) }}
		},
			func(t *testing.T, st sslsession.StoreStats) {
				require.Zero(t, st.Deletes, "never deleted")
				if sslsession.RuntimeVersion().Major() >= 3 {
					// This OpenSSL reads it: it is another session's.
					require.Equal(t, st.Gets, st.Invalid)
					require.Zero(t, st.NewerFormat)
					return
				}
				require.Equal(t, st.Gets, st.NewerFormat, "counted apart from tampering")
				require.Zero(t, st.Invalid)
			}},
	}
	cacheOtherDER = mustDER(t, cacheForeignSession(t, v))
	newerPEM, err := os.ReadFile(newerSessionFiles[0])
	require.NoError(t, err)
	blk, _ := pem.Decode(newerPEM)
	require.NotNil(t, blk)
	newerDER = blk.Bytes
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			oc, sc := sesstest.StatefulServerCtx(t, v, "failures")
			sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
			timeout := 50 * time.Millisecond
			require.NoError(t, sc.SetStore(tc.store(sslsession.NewMemoryStore(0)), sslsession.StoreOptions{Timeout: timeout}))
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)
			_, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s1.Close()
			for i := 0; i < 3; i++ {
				start := time.Now()
				reused, s := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
				require.False(t, reused)
				require.Less(t, time.Since(start), 2*time.Second+4*timeout, "a hung store costs at most the timeout")
				s.Close()
			}
			require.Zero(t, srv.Failed())
			st := sc.Metrics().Store
			t.Logf("%+v", st)
			require.Equal(t, int64(3), st.Gets)
			require.Equal(t, int64(3), st.Misses)
			require.Zero(t, st.Hits)
			tc.check(t, st)
		})
	}
}

var cacheOtherDER, newerDER []byte

type failStore struct {
	err    error
	panics bool
	hang   bool
}

func (f failStore) do(ctx context.Context) error {
	switch {
	case f.panics:
		panic("store bug")
	case f.hang:
		<-ctx.Done()
		return ctx.Err()
	}
	return f.err
}
func (f failStore) Put(ctx context.Context, _, _ []byte, _ time.Time) error { return f.do(ctx) }
func (f failStore) Get(ctx context.Context, _ []byte) ([]byte, error)       { return nil, f.do(ctx) }
func (f failStore) Delete(ctx context.Context, _ []byte) error              { return f.do(ctx) }

// garbageStore stores real sessions but returns what bad makes of them.
type garbageStore struct {
	*sslsession.MemoryStore
	bad func(id, value []byte) []byte
}

func (g garbageStore) Get(ctx context.Context, id []byte) ([]byte, error) {
	der, err := g.MemoryStore.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return g.bad(id, der), nil
}

// The deadlock guard: cache calls from inside a callback are refused, on
// the callback's thread, whatever context they aim at (on 1.0.2 the cache
// lock is one lock for every SSL_CTX).
func TestStoreCallbackGuard(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	oc, sc := sesstest.StatefulServerCtx(t, v, "guard")
	_, other := sesstest.StatefulServerCtx(t, v, "guard-other")
	sess := cacheForeignSession(t, v)
	defer sess.Close()

	// 1. From a store's Get (not under OpenSSL's lock, but the rule is
	// the same everywhere).
	var mu sync.Mutex
	var errs []error
	record := func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	reentrant := &hookStore{MemoryStore: sslsession.NewMemoryStore(0), onGet: func() {
		record(sc.Flush(time.Now()))
		_, err := sc.AddSession(sess)
		record(err)
		_, err = sc.RemoveSession(sess)
		record(err)
		record(other.Flush(time.Now()))
		record(sc.SetStore(sslsession.NewMemoryStore(1), sslsession.StoreOptions{}))
		record(sc.ClearStore(context.Background()))
		_, err = sslsession.NewClientCache(oc, 1)
		record(err)
	}}
	sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
	require.NoError(t, sc.SetStore(reentrant, sslsession.StoreOptions{}))
	// The store holds the context (and a session): only ClearStore lets
	// them go (see SetStore).
	defer func() { require.NoError(t, sc.ClearStore(context.Background())) }()
	srv := sesstest.Serve(t, oc)
	cctx := sesstest.ClientCtx(t, v)
	_, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
	defer s1.Close()
	reused, s2 := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
	require.True(t, reused, "the store still works")
	s2.Close()
	mu.Lock()
	require.Len(t, errs, 7)
	for _, err := range errs {
		require.ErrorIs(t, err, sslsession.ErrInCallback)
	}
	errs = nil
	mu.Unlock()
	require.Same(t, reentrant, sc.Store(), "the refused SetStore changed nothing")
	// Outside the callbacks the same calls work.
	require.NoError(t, sc.Flush(time.Now()))
	require.NoError(t, other.Flush(time.Now()))
}

// From inside the remove callback, which OpenSSL runs holding its cache
// lock (here during SSL_CTX_flush_sessions): without the guard this
// deadlocks on every version (1.0.2: CRYPTO_LOCK_SSL_CTX, one lock for all
// contexts; 1.1.1+: the context's own lock). The probe marks its thread as
// the bridge's callbacks mark theirs (TestStoreCallbackGuard sees the
// bridge's own marking).
func TestStoreCallbackGuardUnderLock(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	_, other := sesstest.StatefulServerCtx(t, v, "guard-other")
	sess := cacheForeignSession(t, v)
	defer sess.Close()
	var mu sync.Mutex
	var errs []error
	record := func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	inside := make(chan struct{}, 100)
	var sc *sslsession.Ctx // the context whose lock OpenSSL holds
	probe := func([]byte) {
		sslsession.EnterCallback()
		defer sslsession.LeaveCallback()
		inside <- struct{}{}
		record(sc.Flush(time.Now()))
		_, err := sc.AddSession(sess)
		record(err)
		_, err = sc.RemoveSession(sess)
		record(err)
		record(other.Flush(time.Now())) // 1.0.2: the same lock
	}
	oc, sc := sesstest.StatefulServerCtx(t, v, "guard")
	require.NoError(t, sc.SetStore(sslsession.NewMemoryStore(0), sslsession.StoreOptions{}))
	restore := cbprobe.Install(sc, cbprobe.Probes{Remove: probe})
	defer restore()
	srv := sesstest.Serve(t, oc)
	_, s := sesstest.Roundtrip(t, srv.Addr, sesstest.ClientCtx(t, v), nil)
	s.Close()
	require.Equal(t, int64(1), sc.Metrics().Cache.Number)
	done := make(chan error, 1)
	go func() { done <- sc.Flush(time.Now().Add(48 * time.Hour)) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("deadlock: a cache call from inside the remove callback did not return")
	}
	require.Len(t, inside, 1)
	require.Zero(t, sc.Metrics().Cache.Number)
	mu.Lock()
	require.Len(t, errs, 4)
	for _, err := range errs {
		require.ErrorIs(t, err, sslsession.ErrInCallback)
	}
	mu.Unlock()
}

type hookStore struct {
	*sslsession.MemoryStore
	onGet func()
}

func (h *hookStore) Get(ctx context.Context, id []byte) ([]byte, error) {
	h.onGet()
	return h.MemoryStore.Get(ctx, id)
}

// DeleteOnRemove forwards removals of unexpired sessions (here: evictions
// from a full internal cache) to Store.Delete, from the worker goroutine;
// without it nothing is deleted.
func TestStoreDeleteOnRemove(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	for _, del := range []bool{false, true} {
		t.Run(fmt.Sprint("DeleteOnRemove=", del), func(t *testing.T) {
			oc, sc := sesstest.StatefulServerCtx(t, v, "remove")
			sc.SetCacheSize(1)
			store := sesstest.NewRecordStore()
			require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{DeleteOnRemove: del}))
			_, _, removeCb := sslsession.CacheCallbacks(sc)
			require.Equal(t, del, removeCb)
			srv := sesstest.Serve(t, oc)
			cctx := sesstest.ClientCtx(t, v)
			_, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s1.Close()
			_, s2 := sesstest.Roundtrip(t, srv.Addr, cctx, nil) // evicts s1 from the internal cache
			defer s2.Close()
			require.Equal(t, int64(1), sc.Metrics().Cache.CacheFull)
			id1 := sesstest.SessionID(t, s1)
			if del {
				require.Eventually(t, func() bool {
					_, err := store.MemoryStore.Get(context.Background(), id1)
					return errors.Is(err, sslsession.ErrNotFound)
				}, 5*time.Second, 5*time.Millisecond)
				require.Eventually(t, func() bool { return sc.Metrics().Store.Deletes == 1 }, 5*time.Second, 5*time.Millisecond)
				require.Equal(t, [][]byte{id1}, store.Deletes())
				reused, s := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
				require.False(t, reused, "deleted from the store too")
				s.Close()
			} else {
				reused, s := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
				require.True(t, reused, "evicted locally, still in the store")
				s.Close()
				_, _, deletes := store.Counts()
				require.Zero(t, deletes)
			}
			if !del {
				return
			}
			// Expired sessions are never forwarded: the store expires them.
			// Two of them: one OpenSSL finds expired when a client offers
			// it (a Timeouts count, and SSL_CTX_remove_session), one that a
			// flush removes.
			require.NoError(t, sc.Flush(time.Now().Add(48*time.Hour)))
			sc.SetCacheSize(0)
			sc.SetTimeout(time.Second)
			_, s3 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s3.Close()
			_, s4 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
			defer s4.Close()
			require.Equal(t, int64(2), sc.Metrics().Cache.Number)
			time.Sleep(2100 * time.Millisecond)
			_, _, before := store.Counts()
			sc.SetTimeout(time.Minute)
			reused, s5 := sesstest.Roundtrip(t, srv.Addr, cctx, s3)
			s5.Close()
			require.False(t, reused)
			require.Equal(t, int64(1), sc.Metrics().Cache.Timeouts, "an expired session offered: a timeout")
			require.Equal(t, int64(2), sc.Metrics().Cache.Number, "s3 removed, s5 added")
			require.NoError(t, sc.Flush(time.Now()))
			require.Equal(t, int64(1), sc.Metrics().Cache.Number, "s4 flushed, s5 stays")
			require.NoError(t, sc.ClearStore(context.Background()))
			_, _, after := store.Counts()
			require.Equal(t, before, after, "removing expired sessions deletes nothing")
		})
	}
}

// AsyncPut stores from the worker; ClearStore waits for the queue.
func TestStoreAsyncPut(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	oc, sc := sesstest.StatefulServerCtx(t, v, "async")
	sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
	store := sesstest.NewRecordStore()
	require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{AsyncPut: true}))
	srv := sesstest.Serve(t, oc)
	cctx := sesstest.ClientCtx(t, v)
	var sessions []*sslsession.Session
	for i := 0; i < 5; i++ {
		_, s := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
		sessions = append(sessions, s)
	}
	st := sc.Metrics().Store
	require.NoError(t, sc.ClearStore(context.Background()))
	puts, _, _ := store.Counts()
	require.Equal(t, 5, puts, "ClearStore drained the queue")
	require.Equal(t, 5, store.Len())
	require.Zero(t, st.Dropped)
	// The stats stay readable on the store value, not on the context.
	require.Equal(t, sslsession.StoreStats{}, sc.Metrics().Store)
	for _, s := range sessions {
		s.Close()
	}
}

// The hooks do not keep a context alive: a context with a store that is
// dropped is freed by the garbage collector, and SSL_CTX_free releases its
// handle.
func TestStoreReleasedWithContext(t *testing.T) {
	sesstest.LeakCheck(t)
	var handles []uintptr
	func() {
		for i := 0; i < 5; i++ {
			_, sc := sesstest.StatefulServerCtx(t, sslsession.TLS12, "gc")
			require.NoError(t, sc.SetStore(sslsession.NewMemoryStore(1), sslsession.StoreOptions{DeleteOnRemove: true}))
			h := sslsession.CacheHandle(sc)
			require.NotZero(t, h)
			require.True(t, sslsession.CacheHandleLive(h))
			handles = append(handles, h)
		}
	}()
	require.Eventually(t, func() bool {
		runtime.GC()
		for _, h := range handles {
			if sslsession.CacheHandleLive(h) {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "SSL_CTX_free released the hooks")
}

// SetStore replaces a store; the old one keeps no callbacks.
func TestStoreReplace(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	oc, sc := sesstest.StatefulServerCtx(t, v, "replace")
	sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
	a, b := sesstest.NewRecordStore(), sesstest.NewRecordStore()
	require.NoError(t, sc.SetStore(a, sslsession.StoreOptions{}))
	require.NoError(t, sc.SetStore(b, sslsession.StoreOptions{}))
	require.Same(t, b, sc.Store())
	require.ErrorIs(t, sc.SetStore(nil, sslsession.StoreOptions{}), sslsession.ErrInvalidArgument)
	srv := sesstest.Serve(t, oc)
	_, s := sesstest.Roundtrip(t, srv.Addr, sesstest.ClientCtx(t, v), nil)
	s.Close()
	pa, _, _ := a.Counts()
	pb, _, _ := b.Counts()
	require.Zero(t, pa)
	require.Equal(t, 1, pb)
	// The cache mode gains CacheServer.
	sc.SetCacheMode(sslsession.CacheOff)
	require.NoError(t, sc.SetStore(a, sslsession.StoreOptions{}))
	require.Equal(t, sslsession.CacheServer, sc.CacheMode())
}

// When OpenSSL runs the remove callback for SSL_CTX_remove_session:
// 1.0.2 only for a session that was in the internal cache; 1.1.1+ for any
// session with an ID, cached or not.
func TestStoreRemoveCallbackOnExplicitRemove(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	cctx := sesstest.ClientCtx(t, v)
	client, server := cacheServerSession(t, cctx, "explicit")
	defer client.Close()
	defer server.Close()
	id := sesstest.SessionID(t, server)

	_, sc := sesstest.StatefulServerCtx(t, v, "explicit")
	store := sesstest.NewRecordStore()
	require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{DeleteOnRemove: true}))

	removed, err := sc.RemoveSession(server)
	require.NoError(t, err)
	require.False(t, removed, "not in the internal cache")
	require.NoError(t, sc.ClearStore(context.Background())) // drains the queue
	_, _, deletes := store.Counts()
	if sesstest.Is102() {
		require.Zero(t, deletes, "1.0.2: no callback for an uncached session")
	} else {
		require.Equal(t, 1, deletes, "1.1.1+: the callback runs for an uncached session too")
	}

	require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{DeleteOnRemove: true}))
	added, err := sc.AddSession(server)
	require.NoError(t, err)
	require.True(t, added)
	removed, err = sc.RemoveSession(server)
	require.NoError(t, err)
	require.True(t, removed)
	require.NoError(t, sc.ClearStore(context.Background()))
	_, _, after := store.Counts()
	require.Equal(t, deletes+1, after, "a cached session's removal is forwarded on every version")
	for _, d := range store.Deletes() {
		require.Equal(t, id, d)
	}
}

// A TLS 1.3 client whose key share is not in the server's groups gets a
// HelloRetryRequest, and OpenSSL looks its ticket up once per ClientHello:
// two store lookups for one resumption. (OpenSSL 1.0.2 has no TLS 1.3:
// cacheVersions asserts it, and the loop has nothing to run.)
func TestStoreHelloRetryLooksUpTwice(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		if v != sslsession.TLS13 {
			continue
		}
		oc, sc := sesstest.StatefulServerCtx(t, v, "hrr")
		// P-256 as the server's only group: the default client offers an
		// X25519 key share and is asked for another.
		require.NoError(t, oc.SetEllipticCurve(openssl.Prime256v1))
		sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
		require.NoError(t, sc.SetStore(sslsession.NewMemoryStore(0), sslsession.StoreOptions{}))
		srv := sesstest.Serve(t, oc)
		cctx, err := loopback.ClientCtx(sesstest.Cert(t), v, v)
		require.NoError(t, err)
		_, s1 := sesstest.Roundtrip(t, srv.Addr, cctx, nil)
		defer s1.Close()
		reused, s2 := sesstest.Roundtrip(t, srv.Addr, cctx, s1)
		defer s2.Close()
		require.True(t, reused)
		st := sc.Metrics().Store
		require.Equal(t, int64(2), st.Gets)
		require.Equal(t, int64(2), st.Hits)
		require.Equal(t, int64(2), sc.Metrics().Cache.CbHits)
		require.Equal(t, int64(2), sc.Metrics().Cache.Hits, "OpenSSL counts a hit per ClientHello too")
	}
}
