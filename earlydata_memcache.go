package sslsession

import (
	"context"
	"errors"
	"sync"
	"time"
)

// MemoryReplayCache is a ReplayCache in this process's memory: it protects
// one process's servers (several contexts sharing ticket keys), not a
// fleet; redisstore.ReplayCache is the fleet's. It holds at most its
// bound of keys: when full of keys still within their window, Add fails,
// and the early data is refused rather than accepted unprotected.
type MemoryReplayCache struct {
	mu   sync.Mutex
	max  int
	keys map[string]time.Time // key -> expiry
}

// NewMemoryReplayCache makes a cache of at most max keys (default 1<<16
// when max <= 0).
func NewMemoryReplayCache(max int) *MemoryReplayCache {
	if max <= 0 {
		max = 1 << 16
	}
	return &MemoryReplayCache{max: max, keys: map[string]time.Time{}}
}

// ErrReplayCacheFull: a MemoryReplayCache holds its bound of keys, all
// within their window.
var ErrReplayCacheFull = errors.New("sslsession: replay cache is full")

// Add records key until ttl has passed; false when it is already there.
func (m *MemoryReplayCache) Add(_ context.Context, key []byte, ttl time.Duration) (bool, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.keys[string(key)]; ok && now.Before(exp) {
		return false, nil
	}
	if len(m.keys) >= m.max {
		for k, exp := range m.keys {
			if !now.Before(exp) {
				delete(m.keys, k)
			}
		}
		if len(m.keys) >= m.max {
			return false, ErrReplayCacheFull
		}
	}
	m.keys[string(key)] = now.Add(ttl)
	return true, nil
}

// Len is the number of keys held, expired ones included until they are
// swept.
func (m *MemoryReplayCache) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}
