package sesstest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// RecordStore is a MemoryStore that records the session IDs it is called
// with.
type RecordStore struct {
	*sslsession.MemoryStore
	mu      sync.Mutex
	puts    [][]byte
	expires []time.Time
	gets    [][]byte
	deletes [][]byte
}

// NewRecordStore returns an empty RecordStore.
func NewRecordStore() *RecordStore {
	return &RecordStore{MemoryStore: sslsession.NewMemoryStore(0)}
}

// Put records id and expires, then stores.
func (r *RecordStore) Put(ctx context.Context, id, der []byte, expires time.Time) error {
	r.mu.Lock()
	r.puts = append(r.puts, append([]byte(nil), id...))
	r.expires = append(r.expires, expires)
	r.mu.Unlock()
	return r.MemoryStore.Put(ctx, id, der, expires)
}

// Get records id, then looks it up.
func (r *RecordStore) Get(ctx context.Context, id []byte) ([]byte, error) {
	r.mu.Lock()
	r.gets = append(r.gets, append([]byte(nil), id...))
	r.mu.Unlock()
	return r.MemoryStore.Get(ctx, id)
}

// Delete records id, then deletes it.
func (r *RecordStore) Delete(ctx context.Context, id []byte) error {
	r.mu.Lock()
	r.deletes = append(r.deletes, append([]byte(nil), id...))
	r.mu.Unlock()
	return r.MemoryStore.Delete(ctx, id)
}

// Counts is how many Puts, Gets and Deletes were made.
func (r *RecordStore) Counts() (puts, gets, deletes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.puts), len(r.gets), len(r.deletes)
}

// Puts returns the IDs stored, in order.
func (r *RecordStore) Puts() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.puts...)
}

// Expires returns the expiry of each Put, in order.
func (r *RecordStore) Expires() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.expires...)
}

// Deletes returns the IDs deleted, in order.
func (r *RecordStore) Deletes() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.deletes...)
}

// StatefulServerCtx makes a server context pinned to v that resumes by
// session ID (TLS 1.2) or stateful ticket (TLS 1.3): no stateless tickets.
func StatefulServerCtx(t testing.TB, v sslsession.Version, sidCtx string) (*openssl.Ctx, *sslsession.Ctx) {
	t.Helper()
	oc := ServerCtx(t, v, loopback.Config{NoTickets: true, SessionIDContext: []byte(sidCtx)})
	return oc, NewCtx(t, oc)
}

// SessionID is s's non-empty session ID.
func SessionID(t testing.TB, s *sslsession.Session) []byte {
	t.Helper()
	info, err := s.Info()
	require.NoError(t, err)
	require.NotEmpty(t, info.ID)
	return info.ID
}
