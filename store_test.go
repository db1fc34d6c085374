package sslsession

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// MemoryStore unit tests: they need no TLS.

func TestMemoryStoreBasics(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(0)
	require.Equal(t, DefaultMemoryStoreSize, s.max)
	future := time.Now().Add(time.Hour)

	_, err := s.Get(ctx, []byte("a"))
	require.ErrorIs(t, err, ErrNotFound)

	der := []byte("der-a")
	require.NoError(t, s.Put(ctx, []byte("a"), der, future))
	der[0] = 'X' // the store keeps its own copy
	got, err := s.Get(ctx, []byte("a"))
	require.NoError(t, err)
	require.Equal(t, "der-a", string(got))
	got[0] = 'Y' // and hands out copies
	got, _ = s.Get(ctx, []byte("a"))
	require.Equal(t, "der-a", string(got))

	require.NoError(t, s.Put(ctx, []byte("a"), []byte("der-a2"), future))
	got, _ = s.Get(ctx, []byte("a"))
	require.Equal(t, "der-a2", string(got))
	require.Equal(t, 1, s.Len())

	require.NoError(t, s.Delete(ctx, []byte("a")))
	require.NoError(t, s.Delete(ctx, []byte("a")), "deleting a missing ID is not an error")
	_, err = s.Get(ctx, []byte("a"))
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, 0, s.Len())
}

func TestMemoryStoreLRU(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(3)
	future := time.Now().Add(time.Hour)
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, s.Put(ctx, []byte(id), []byte(id), future))
	}
	// Touch a: b is now the least recently used.
	_, err := s.Get(ctx, []byte("a"))
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, []byte("d"), []byte("d"), future))
	require.Equal(t, 3, s.Len())
	_, err = s.Get(ctx, []byte("b"))
	require.ErrorIs(t, err, ErrNotFound, "b was least recently used")
	for _, id := range []string{"a", "c", "d"} {
		_, err := s.Get(ctx, []byte(id))
		require.NoError(t, err, id)
	}
	// Use order now d, c, a (most recent first). Replacing a refreshes it,
	// so c is the one to go.
	require.NoError(t, s.Put(ctx, []byte("a"), []byte("a2"), future))
	require.NoError(t, s.Put(ctx, []byte("e"), []byte("e"), future))
	_, err = s.Get(ctx, []byte("c"))
	require.ErrorIs(t, err, ErrNotFound, "c was least recently used after a's replacement")
	v, err := s.Get(ctx, []byte("a"))
	require.NoError(t, err)
	require.Equal(t, "a2", string(v))
}

func TestMemoryStoreExpiry(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(10)
	now := time.Unix(1_000_000, 0)
	s.now = func() time.Time { return now }

	require.NoError(t, s.Put(ctx, []byte("a"), []byte("a"), now.Add(10*time.Second)))
	require.NoError(t, s.Put(ctx, []byte("gone"), []byte("x"), now), "expiring now: not stored")
	require.NoError(t, s.Put(ctx, []byte("past"), []byte("x"), now.Add(-time.Second)))
	require.Equal(t, 1, s.Len())

	now = now.Add(9 * time.Second)
	_, err := s.Get(ctx, []byte("a"))
	require.NoError(t, err)
	now = now.Add(time.Second)
	_, err = s.Get(ctx, []byte("a"))
	require.ErrorIs(t, err, ErrNotFound, "expired at its expiry time")
	require.Equal(t, 0, s.Len(), "Get deletes the expired entry")

	// An expired Put replaces (deletes) a live entry.
	require.NoError(t, s.Put(ctx, []byte("b"), []byte("b"), now.Add(time.Minute)))
	require.NoError(t, s.Put(ctx, []byte("b"), []byte("b"), now.Add(-time.Minute)))
	_, err = s.Get(ctx, []byte("b"))
	require.ErrorIs(t, err, ErrNotFound)
}

func TestMemoryStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(64)
	future := time.Now().Add(time.Hour)
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func(g int) {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 500; i++ {
				id := []byte(fmt.Sprintf("%d-%d", g, i%100))
				_ = s.Put(ctx, id, id, future)
				if v, err := s.Get(ctx, id); err == nil && string(v) != string(id) {
					panic("wrong value")
				}
				if i%7 == 0 {
					_ = s.Delete(ctx, id)
				}
			}
		}(g)
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	require.LessOrEqual(t, s.Len(), 64)
}

// The bridge's worker: queued work drains on close, and what is left when
// the wait gives up is dropped and counted.
func TestBridgeQueue(t *testing.T) {
	slow := &slowStore{delay: 50 * time.Millisecond}
	b, err := newBridge(slow, StoreOptions{QueueSize: 4, Timeout: time.Second})
	require.NoError(t, err)
	for i := 0; i < 6; i++ {
		b.enqueue(storeOp{id: []byte{byte(i)}})
	}
	// The worker may already hold the first op: 4 or 5 queued, the rest dropped.
	require.GreaterOrEqual(t, b.stats.dropped.Load(), int64(1))
	b.close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	err = b.wait(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	st := b.stats.snapshot()
	require.Equal(t, int64(6), st.Deletes+st.Dropped, "every op is either run or dropped: %+v", st)
	b.enqueue(storeOp{id: []byte{9}})
	require.Equal(t, int64(7), b.stats.deletes.Load()+b.stats.dropped.Load(), "closed bridge drops")
}

type slowStore struct{ delay time.Duration }

func (s *slowStore) Put(ctx context.Context, _, _ []byte, _ time.Time) error { return s.wait(ctx) }
func (s *slowStore) Get(ctx context.Context, _ []byte) ([]byte, error)       { return nil, s.wait(ctx) }
func (s *slowStore) Delete(ctx context.Context, _ []byte) error              { return s.wait(ctx) }
func (s *slowStore) wait(ctx context.Context) error {
	select {
	case <-time.After(s.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestBridgeCallRecoversPanics(t *testing.T) {
	b, err := newBridge(NewMemoryStore(1), StoreOptions{})
	require.NoError(t, err)
	require.Equal(t, resError, b.call(func(context.Context) error { panic("boom") }))
	var dl time.Time
	var ok bool
	res := b.call(func(ctx context.Context) error {
		dl, ok = ctx.Deadline()
		return errors.New("x")
	})
	require.Equal(t, resError, res)
	require.True(t, ok)
	require.WithinDuration(t, time.Now().Add(100*time.Millisecond), dl, 50*time.Millisecond, "default timeout")
	require.Equal(t, resNotFound, b.call(func(context.Context) error { return fmt.Errorf("a: %w", ErrNotFound) }))
	require.Equal(t, resInvalid, b.call(func(context.Context) error { return errors.Join(errors.New("a"), ErrInvalidValue) }))
	require.Equal(t, resOK, b.call(func(context.Context) error { return nil }))
}
