package sslsession

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// MemoryStore is a SessionStore in this process's memory: bounded, least
// recently used first out, each session forgotten when it expires. It is
// what OpenSSL's internal cache already does, as a Go store: use it to run
// the bridge without Redis, to cache sessions beyond an SSL_CTX's lifetime
// (several contexts can share one), or as a model for other stores.
type MemoryStore struct {
	mu  sync.Mutex
	max int
	ll  *list.List // of *memEntry, most recently used first
	m   map[string]*list.Element
	now func() time.Time
}

type memEntry struct {
	id      string
	der     []byte
	expires time.Time
}

// DefaultMemoryStoreSize is the bound NewMemoryStore uses for max <= 0:
// OpenSSL's default internal cache size (SSL_SESSION_CACHE_MAX_SIZE_DEFAULT).
const DefaultMemoryStoreSize = 20480

// NewMemoryStore makes a store holding at most max sessions.
func NewMemoryStore(max int) *MemoryStore {
	if max <= 0 {
		max = DefaultMemoryStoreSize
	}
	return &MemoryStore{max: max, ll: list.New(), m: make(map[string]*list.Element), now: time.Now}
}

// errNilStore is what a nil *MemoryStore returns. (A zero MemoryStore is
// usable: unbounded up to DefaultMemoryStoreSize, as NewMemoryStore(0).)
var errNilStore = fmt.Errorf("%w: nil *MemoryStore (use NewMemoryStore)", ErrZeroValue)

// init makes a zero MemoryStore usable. Call with mu held.
func (s *MemoryStore) init() {
	if s.ll == nil {
		s.ll, s.m = list.New(), make(map[string]*list.Element)
	}
	if s.max <= 0 {
		s.max = DefaultMemoryStoreSize
	}
	if s.now == nil {
		s.now = time.Now
	}
}

// Put stores a copy of der under id until expires; an already expired
// session is not stored (and replaces nothing).
func (s *MemoryStore) Put(_ context.Context, id, der []byte, expires time.Time) error {
	if s == nil {
		return errNilStore
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	key := string(id)
	if !expires.After(s.now()) {
		if el, ok := s.m[key]; ok {
			s.drop(el)
		}
		return nil
	}
	v := append([]byte(nil), der...)
	if el, ok := s.m[key]; ok {
		e := el.Value.(*memEntry)
		e.der, e.expires = v, expires
		s.ll.MoveToFront(el)
		return nil
	}
	s.m[key] = s.ll.PushFront(&memEntry{id: key, der: v, expires: expires})
	for s.ll.Len() > s.max {
		s.drop(s.ll.Back())
	}
	return nil
}

// Get returns a copy of the DER stored under id, or ErrNotFound. An
// expired session is deleted and not found.
func (s *MemoryStore) Get(_ context.Context, id []byte) ([]byte, error) {
	if s == nil {
		return nil, errNilStore
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.m[string(id)]
	if !ok {
		return nil, ErrNotFound
	}
	e := el.Value.(*memEntry)
	if !e.expires.After(s.now()) {
		s.drop(el)
		return nil, ErrNotFound
	}
	s.ll.MoveToFront(el)
	return append([]byte(nil), e.der...), nil
}

// Delete forgets id.
func (s *MemoryStore) Delete(_ context.Context, id []byte) error {
	if s == nil {
		return errNilStore
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.m[string(id)]; ok {
		s.drop(el)
	}
	return nil
}

// Len is the number of sessions held, expired ones not yet dropped
// included.
func (s *MemoryStore) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ll == nil {
		return 0
	}
	return s.ll.Len()
}

func (s *MemoryStore) drop(el *list.Element) {
	e := s.ll.Remove(el).(*memEntry)
	delete(s.m, e.id)
}
