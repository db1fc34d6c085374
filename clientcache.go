package sslsession

// #include "callbacks_cgo.h"
import "C"

import (
	"container/list"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/spacemonkeygo/openssl"
)

// ClientCache keeps client sessions, keyed by server name and address, so
// that Dial, given one in DialConfig.Cache, resumes on its own, as
// crypto/tls does with Config.ClientSessionCache. It holds sessions as
// SSL_SESSION objects, not DER: resuming from a held object is much faster
// than decoding DER for every connection.
//
// One ClientCache belongs to one client context (a session only resumes
// within its SSL_CTX), and a context has at most one ClientCache.
//
// How sessions get in: with TLS 1.2 the session is resumable as soon as the
// handshake is done, and Dial stores it before returning. With TLS 1.3 the
// server sends its tickets after the handshake, and OpenSSL reads them only
// when the application reads from the connection; Dial does not wait for
// them (that would cost a round trip, or block on servers that send none).
// Instead the cache takes each ticket as it arrives, from OpenSSL's
// new-session callback (SSL_CTX_sess_set_new_cb(3)), during the
// connection's Reads. A connection that is never read from leaves nothing to
// resume. A TLS 1.3 session is used once: Get (and so Dial) takes it out of
// the cache, as tickets are single-use.
//
// A ClientCache is safe for concurrent use.
type ClientCache struct {
	oc   *openssl.Ctx
	p    *C.SSL_CTX
	sink *clientSink
}

// ClientCacheStats counts a ClientCache's use.
type ClientCacheStats struct {
	Len    int   `json:"len"`    // sessions held now
	Hits   int64 `json:"hits"`   // Gets (and Dials) that found a session
	Misses int64 `json:"misses"` // Gets that did not
	Puts   int64 `json:"puts"`   // sessions stored, by Dial, tickets or Put
}

// DefaultClientCacheSize is the bound NewClientCache uses for capacity <= 0.
const DefaultClientCacheSize = 1024

// NewClientCache makes the session cache of the client context ctx, bounded
// to capacity sessions (least recently used go first). It installs the
// new-session callback and adds CacheClient and CacheNoInternalStore to the
// cache mode: client caching on, the sessions kept in the ClientCache
// rather than also in OpenSSL's internal cache (which a client never looks
// up). So do not give a ClientCache to a context that also serves
// connections. It fails with ErrCacheInUse if ctx already has a cache.
func NewClientCache(ctx *openssl.Ctx, capacity int) (*ClientCache, error) {
	if setupErr != nil {
		return nil, setupErr
	}
	if err := callbackGuard("SSL_CTX_sess_set_new_cb"); err != nil {
		return nil, err
	}
	p, err := ctxPointer(ctx)
	if err != nil {
		return nil, err
	}
	if capacity <= 0 {
		capacity = DefaultClientCacheSize
	}
	sink := &clientSink{max: capacity, ll: list.New(), m: make(map[string]*list.Element)}
	hooksMu.Lock()
	hk, err := hooksOf(p, true)
	if err == nil && !hk.client.CompareAndSwap(nil, sink) {
		err = &Error{Func: "SSL_CTX_sess_set_new_cb", Err: ErrCacheInUse}
	}
	if err != nil {
		hooksMu.Unlock()
		runtime.KeepAlive(ctx)
		return nil, err
	}
	mode := CacheMode(C.sslsess_ctx_get_cache_mode(p)) | CacheClient | CacheNoInternalStore
	C.sslsess_ctx_set_cache_mode(p, C.long(mode))
	hk.syncCallbacks(p)
	hooksMu.Unlock()
	cc := &ClientCache{oc: ctx, p: p, sink: sink}
	runtime.SetFinalizer(cc, (*ClientCache).Close)
	return cc, nil
}

// ClientCacheKey is the key Dial uses: the server name (SNI, or the host
// part of the address) and the address.
func ClientCacheKey(serverName, addr string) string { return serverName + "|" + addr }

// Ctx returns the client context the cache belongs to.
func (cc *ClientCache) Ctx() *openssl.Ctx {
	if cc.zero() {
		return nil
	}
	return cc.oc
}

// zero reports a nil or zero ClientCache (NewClientCache makes a usable
// one): its methods do nothing, or return errNilCache.
func (cc *ClientCache) zero() bool { return cc == nil || cc.sink == nil || cc.p == nil }

var errNilCache = &Error{Func: "ClientCache", Err: fmt.Errorf("%w: nil or zero ClientCache (use NewClientCache)", ErrZeroValue)}

// track stores a TLS 1.2 session now and marks the connection so that TLS
// 1.3 tickets are stored as they arrive.
func (cc *ClientCache) track(conn *Conn, key string) error {
	ssl := conn.SSL()
	if ssl.Version() < TLS13 {
		s1, err := ssl.Session1()
		if err != nil {
			return nil
		}
		if info, _ := s1.Info(); info.Resumable {
			cc.sink.put(key, s1, false)
		} else {
			s1.Close()
		}
		return nil
	}
	if err := ssl.lock(); err != nil {
		return err
	}
	defer ssl.unlock()
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	var e C.sslsess_err
	if C.sslsess_cache_set_ssl_key(ssl.p, ckey, &e) != C.SSLSESS_OK {
		return newError("SSL_set_ex_data", nil, &e)
	}
	return nil
}

// Get returns an owned copy of the session cached under key (Close it), or
// nil. A TLS 1.3 session is removed from the cache: its ticket is
// single-use.
func (cc *ClientCache) Get(key string) *Session {
	if cc.zero() {
		return nil
	}
	return cc.sink.get(key)
}

// Put stores an owned reference to sess under key; the caller keeps its
// own. sess must belong to the cache's context (or to none yet, when it was
// decoded from DER or PEM); otherwise the error wraps ErrWrongContext.
func (cc *ClientCache) Put(key string, sess *Session) error {
	if cc.zero() {
		return errNilCache
	}
	owned, err := sess.Owned()
	if err != nil {
		return err
	}
	if ctx := owned.context(); ctx != 0 && ctx != ctxID(cc.p) {
		owned.Close()
		return &Error{Func: "ClientCache.Put", Err: ErrWrongContext}
	}
	info, err := owned.Info()
	if err != nil {
		owned.Close()
		return err
	}
	cc.sink.put(key, owned, info.Protocol == TLS13)
	return nil
}

// Remove drops the session cached under key.
func (cc *ClientCache) Remove(key string) {
	if !cc.zero() {
		cc.sink.remove(key)
	}
}

// Len is the number of sessions cached.
func (cc *ClientCache) Len() int { return cc.Stats().Len }

// Stats returns the cache's counters.
func (cc *ClientCache) Stats() ClientCacheStats {
	if cc.zero() {
		return ClientCacheStats{}
	}
	return cc.sink.stats()
}

// Close takes the cache off its context and gives back every session it
// holds. Dial keeps working, without caching. A second Close does nothing.
func (cc *ClientCache) Close() error {
	if cc.zero() {
		return nil
	}
	if err := callbackGuard("SSL_CTX_sess_set_new_cb"); err != nil {
		return err
	}
	runtime.SetFinalizer(cc, nil)
	hooksMu.Lock()
	if hk, _ := hooksOf(cc.p, false); hk != nil && hk.client.CompareAndSwap(cc.sink, nil) {
		hk.syncCallbacks(cc.p)
	}
	hooksMu.Unlock()
	runtime.KeepAlive(cc.oc)
	cc.sink.close()
	return nil
}

// clientSink is the cache proper. It holds no reference to the context, so
// that the hooks registry does not keep the context alive.
type clientSink struct {
	mu     sync.Mutex
	max    int
	ll     *list.List // of *clientEntry, most recently used first
	m      map[string]*list.Element
	closed bool

	hits, misses, puts atomic.Int64
}

type clientEntry struct {
	key   string
	sess  *Session
	tls13 bool
}

func (s *clientSink) get(key string) *Session {
	s.mu.Lock()
	el, ok := s.m[key]
	if !ok {
		s.mu.Unlock()
		s.misses.Add(1)
		return nil
	}
	e := el.Value.(*clientEntry)
	if e.tls13 {
		s.ll.Remove(el)
		delete(s.m, key)
		s.mu.Unlock()
		s.hits.Add(1)
		return e.sess // the cache's reference moves to the caller
	}
	s.ll.MoveToFront(el)
	owned, err := e.sess.Owned()
	s.mu.Unlock()
	if err != nil {
		s.misses.Add(1)
		return nil
	}
	s.hits.Add(1)
	return owned
}

func (s *clientSink) put(key string, sess *Session, tls13 bool) {
	var drop []*Session
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sess.Close()
		return
	}
	if el, ok := s.m[key]; ok {
		e := el.Value.(*clientEntry)
		drop = append(drop, e.sess)
		e.sess, e.tls13 = sess, tls13
		s.ll.MoveToFront(el)
	} else {
		s.m[key] = s.ll.PushFront(&clientEntry{key: key, sess: sess, tls13: tls13})
		for s.ll.Len() > s.max {
			old := s.ll.Remove(s.ll.Back()).(*clientEntry)
			delete(s.m, old.key)
			drop = append(drop, old.sess)
		}
	}
	s.mu.Unlock()
	s.puts.Add(1)
	for _, d := range drop {
		d.Close()
	}
}

func (s *clientSink) remove(key string) {
	s.mu.Lock()
	el, ok := s.m[key]
	if ok {
		s.ll.Remove(el)
		delete(s.m, key)
	}
	s.mu.Unlock()
	if ok {
		el.Value.(*clientEntry).sess.Close()
	}
}

func (s *clientSink) stats() ClientCacheStats {
	s.mu.Lock()
	n := s.ll.Len()
	s.mu.Unlock()
	return ClientCacheStats{Len: n, Hits: s.hits.Load(), Misses: s.misses.Load(), Puts: s.puts.Load()}
}

func (s *clientSink) close() {
	s.mu.Lock()
	s.closed = true
	entries := s.ll
	s.ll = list.New()
	s.m = make(map[string]*list.Element)
	s.mu.Unlock()
	for el := entries.Front(); el != nil; el = el.Next() {
		el.Value.(*clientEntry).sess.Close()
	}
}

// newSession takes a session from the new-session callback: a TLS 1.3
// ticket that a connection made by Dial just read.
func (s *clientSink) newSession(key string, p *C.SSL_SESSION, ctx *C.SSL_CTX) {
	var ci C.sslsess_info
	if C.sslsess_info_get(nil, p, &ci) != C.SSLSESS_OK || ci.resumable != 1 {
		return
	}
	if C.sslsess_up_ref(p) != 1 {
		return
	}
	s.put(key, newOwned(p, ctxID(ctx)), Version(ci.protocol) == TLS13)
}
