package sslsession

// #include "callbacks_cgo.h"
import "C"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// The server-side store behind the session callbacks (SetStore): each
// installed store is one bridge, whose worker goroutine runs queued Puts and
// Deletes, and whose calls into the store run on goroutines of their own,
// bounded by a timeout, so that nothing a store does reaches OpenSSL.

// SetStore makes store the context's server-side session cache beyond
// OpenSSL's internal one, through OpenSSL's new, get and (with
// DeleteOnRemove) remove session callbacks (SSL_CTX_sess_set_new_cb(3)).
// It replaces any previous store (whose queued work still runs) and the
// session callbacks set on the SSL_CTX by other code. It adds CacheServer to
// the cache mode, since OpenSSL calls the callbacks only then.
//
// Every server of a fleet sharing one store must use the same certificate
// and session ID context (SetSessionIDContext). Servers resume by session ID
// (TLS 1.2) and by stateful ticket (TLS 1.3, OpenSSL 1.1.1+): set
// OptionNoTicket, or TLS tickets, which are encrypted under each server's
// own ticket keys, bypass the store. With an SNI callback that switches
// contexts, install the store on every context.
//
// The store is used until ClearStore, or until the SSL_CTX is freed: the
// bridge does not keep the context alive. A store that holds the context
// (or a *Ctx, or anything holding them) does, through a package-level
// registry, until ClearStore. Set it
// before the context serves connections: the first SetStore (or
// NewClientCache) on a context writes the SSL_CTX's ex_data, which OpenSSL
// does not lock against concurrent readers. See SessionStore for the rules
// a store follows.
func (c *Ctx) SetStore(store SessionStore, opts StoreOptions) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if store == nil {
		return fmt.Errorf("%w: nil SessionStore", ErrInvalidArgument)
	}
	if err := callbackGuard("SSL_CTX_sess_set_new_cb"); err != nil {
		return err
	}
	defer runtime.KeepAlive(c)
	hooksMu.Lock()
	defer hooksMu.Unlock()
	hk, err := hooksOf(c.p, true)
	if err != nil {
		return err
	}
	b, err := newBridge(store, opts)
	if err != nil {
		return err
	}
	old := hk.server.Swap(b)
	c.SetCacheMode(c.CacheMode() | CacheServer)
	hk.syncCallbacks(c.p)
	if old != nil {
		old.close()
	}
	return nil
}

// ClearStore removes the context's store: OpenSSL's callbacks are taken
// off, then Puts and Deletes still queued run until ctx is done; those left
// then are dropped (Metrics().Store.Dropped). It returns ctx's error if ctx ended
// before the queue was empty. Without a store it does nothing.
func (c *Ctx) ClearStore(ctx context.Context) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if err := callbackGuard("SSL_CTX_sess_set_new_cb"); err != nil {
		return err
	}
	defer runtime.KeepAlive(c)
	hooksMu.Lock()
	hk, err := hooksOf(c.p, false)
	if err != nil || hk == nil {
		hooksMu.Unlock()
		return err
	}
	b := hk.server.Swap(nil)
	hk.syncCallbacks(c.p)
	hooksMu.Unlock()
	if b == nil {
		return nil
	}
	b.close()
	return b.wait(ctx)
}

// Store returns the context's store, or nil.
func (c *Ctx) Store() SessionStore {
	defer runtime.KeepAlive(c)
	if b := c.bridge(); b != nil {
		return b.store
	}
	return nil
}

// storeStats returns the counters of the context's store; zero without one.
func (c *Ctx) storeStats() StoreStats {
	defer runtime.KeepAlive(c)
	if b := c.bridge(); b != nil {
		return b.stats.snapshot()
	}
	return StoreStats{}
}

func (c *Ctx) bridge() *bridge {
	if c.nilCtx() {
		return nil
	}
	hk, _ := hooksOf(c.p, false)
	if hk == nil {
		return nil
	}
	return hk.server.Load()
}

// bridge is one installed store.
type bridge struct {
	store SessionStore
	opts  StoreOptions
	key   *IntegrityKey // tags values; nil for a ValueAuthenticator
	stats storeCounters

	queue   chan storeOp
	startMu sync.Mutex
	started bool
	closed  atomic.Bool
	done    chan struct{} // closed by close: the worker drains and exits
	exited  chan struct{} // closed by the worker when it exits
	cancel  context.CancelFunc
	ctx     context.Context // cancelled by wait's deadline: in-flight calls end
}

type storeOp struct {
	put     bool
	id, der []byte
	expires time.Time
}

type storeCounters struct {
	puts, gets, hits, misses, deletes, errors, invalid, newer, dropped atomic.Int64
}

func (s *storeCounters) snapshot() StoreStats {
	return StoreStats{
		Puts: s.puts.Load(), Gets: s.gets.Load(), Hits: s.hits.Load(), Misses: s.misses.Load(),
		Deletes: s.deletes.Load(), Errors: s.errors.Load(), Invalid: s.invalid.Load(), NewerFormat: s.newer.Load(), Dropped: s.dropped.Load(),
	}
}

func newBridge(store SessionStore, opts StoreOptions) (*bridge, error) {
	key, err := integrityKeyFor(store, opts)
	if err != nil {
		return nil, err
	}
	opts.IntegrityKey = IntegrityKey{} // kept once, in key
	if opts.Timeout <= 0 {
		opts.Timeout = 100 * time.Millisecond
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1024
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &bridge{
		store: store, opts: opts, key: key,
		queue: make(chan storeOp, opts.QueueSize),
		done:  make(chan struct{}), exited: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}, nil
}

// enqueue hands op to the worker without ever blocking: it may run inside
// OpenSSL's cache lock.
func (b *bridge) enqueue(op storeOp) {
	b.startMu.Lock()
	defer b.startMu.Unlock()
	if b.closed.Load() {
		b.stats.dropped.Add(1)
		return
	}
	if !b.started {
		b.started = true
		go b.work()
	}
	select {
	case b.queue <- op:
	default:
		b.stats.dropped.Add(1)
	}
}

func (b *bridge) work() {
	defer close(b.exited)
	for {
		select {
		case op := <-b.queue:
			b.run(op)
		case <-b.done:
			for {
				select {
				case op := <-b.queue:
					if b.ctx.Err() != nil {
						b.stats.dropped.Add(1)
						continue
					}
					b.run(op)
				default:
					return
				}
			}
		}
	}
}

// close stops taking work; the worker finishes what is queued.
func (b *bridge) close() {
	b.startMu.Lock()
	if b.closed.Swap(true) {
		b.startMu.Unlock()
		return
	}
	started := b.started
	b.started = true // no worker starts from now on
	b.startMu.Unlock()
	close(b.done)
	if !started {
		close(b.exited)
	}
}

// wait waits for the worker to drain, cancelling what is left when ctx ends.
func (b *bridge) wait(ctx context.Context) error {
	select {
	case <-b.exited:
		b.cancel()
		return nil
	case <-ctx.Done():
		b.cancel()
		<-b.exited
		return ctx.Err()
	}
}

func (b *bridge) run(op storeOp) {
	if op.put {
		b.put(op)
	} else {
		b.del(op.id)
	}
}

// The outcome of one store call, decided on the call's own goroutine.
type callResult int

const (
	resOK       callResult = iota
	resNotFound            // the error is, or wraps, ErrNotFound
	resInvalid             // the error is, or wraps, ErrInvalidValue
	resError               // any other error, a panic, runtime.Goexit, or the timeout
)

// call runs one store method on a goroutine of its own, with the per-call
// timeout, and classifies its error there too. Nothing the store does can
// reach the caller, which may be inside OpenSSL's callback on a C stack: a
// panic (whatever its value), runtime.Goexit, an error value whose methods
// panic or whose Unwrap chain never ends, or a call that ignores ctx. The
// caller waits at most until ctx ends (the timeout, or ClearStore's
// deadline); a call still running then is abandoned and counted as an error.
func (b *bridge) call(fn func(ctx context.Context) error) callResult {
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.Timeout)
	defer cancel()
	done := make(chan callResult, 1)
	go func() {
		res := resError
		// The goroutine keeps its thread, marked as a callback's, so that
		// the store's calls back into the cache are refused (ErrInCallback)
		// as they would be on the callback's own thread.
		enterCallback()
		defer func() {
			// The panic value is neither formatted nor kept: its methods
			// are the store's too.
			_ = recover()
			leaveCallback()
			done <- res
		}()
		res = classify(fn(ctx))
	}()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
		select {
		case r := <-done:
			return r
		default:
			return resError
		}
	}
}

// classify decides what a store's error means, with a bounded walk of its
// wrapping chain (errors.Is would follow a cyclic chain forever).
func classify(err error) callResult {
	if err == nil {
		return resOK
	}
	budget := 256
	switch {
	case storeIs(err, ErrNotFound, &budget):
		return resNotFound
	case storeIs(err, ErrInvalidValue, &budget):
		return resInvalid
	}
	return resError
}

// storeIs is errors.Is with at most *budget steps.
func storeIs(err, target error, budget *int) bool {
	for err != nil {
		if *budget--; *budget < 0 {
			return false
		}
		if err == target {
			return true
		}
		if x, ok := err.(interface{ Is(error) bool }); ok && x.Is(target) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if storeIs(e, target, budget) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

func (b *bridge) put(op storeOp) {
	b.stats.puts.Add(1)
	if b.call(func(ctx context.Context) error { return b.store.Put(ctx, op.id, op.der, op.expires) }) != resOK {
		b.stats.errors.Add(1)
	}
}

func (b *bridge) del(id []byte) {
	b.stats.deletes.Add(1)
	if r := b.call(func(ctx context.Context) error { return b.store.Delete(ctx, id) }); r != resOK && r != resNotFound {
		b.stats.errors.Add(1)
	}
}

// newSession encodes a new server session and stores it.
func (b *bridge) newSession(p *C.SSL_SESSION) {
	var ci C.sslsess_info
	if C.sslsess_info_get(nil, p, &ci) != C.SSLSESS_OK || ci.id_len == 0 {
		return
	}
	id := C.GoBytes(unsafe.Pointer(&ci.id[0]), C.int(ci.id_len))
	expires := time.Unix(int64(ci.time), 0).Add(time.Duration(ci.timeout) * time.Second)
	der, err := encodeDER(nil, p)
	if err != nil {
		b.stats.errors.Add(1)
		return
	}
	op := storeOp{put: true, id: id, der: sealValue(b.key, id, der), expires: expires}
	if b.opts.AsyncPut {
		b.enqueue(op)
		return
	}
	b.put(op)
}

// get looks id up in the store and decodes the session for OpenSSL, which
// receives the one reference d2i_SSL_SESSION made (the C side sets
// *copy = 0). The session is never wrapped in a Go Session.
func (b *bridge) get(id []byte) *C.SSL_SESSION {
	b.stats.gets.Add(1)
	var der []byte
	res := b.call(func(ctx context.Context) error {
		d, err := b.store.Get(ctx, id)
		if err == nil && len(d) > MaxDERSize+integrityTagSize {
			return ErrInvalidValue
		}
		if err == nil {
			// The store may keep and change its slice: decode a copy.
			der = bytes.Clone(d)
		}
		return err
	})
	switch res {
	case resOK:
	case resNotFound:
		b.stats.misses.Add(1)
		return nil
	case resInvalid:
		b.stats.invalid.Add(1)
		b.stats.misses.Add(1)
		return nil
	default:
		b.stats.errors.Add(1)
		b.stats.misses.Add(1)
		return nil
	}
	der, ok := openValue(b.key, id, der)
	if !ok {
		b.stats.invalid.Add(1)
		b.stats.misses.Add(1)
		return nil
	}
	p, err := b.decode(id, der)
	if p == nil {
		if errors.Is(err, ErrNewerFormat) {
			b.stats.newer.Add(1)
		} else {
			b.stats.invalid.Add(1)
		}
		b.stats.misses.Add(1)
		return nil
	}
	var ci C.sslsess_info
	C.sslsess_info_get(nil, p, &ci)
	if int64(ci.time)+int64(ci.timeout) <= time.Now().Unix() {
		C.sslsess_free(p)
		b.stats.misses.Add(1)
		return nil
	}
	b.stats.hits.Add(1)
	return p
}

// decode turns der into a session whose ID is id, or returns nil and why.
func (b *bridge) decode(id, der []byte) (*C.SSL_SESSION, error) {
	p, err := decodeDER(der)
	if err != nil {
		return nil, err
	}
	var ci C.sslsess_info
	if C.sslsess_info_get(nil, p, &ci) != C.SSLSESS_OK ||
		!bytes.Equal(C.GoBytes(unsafe.Pointer(&ci.id[0]), C.int(ci.id_len)), id) {
		C.sslsess_free(p)
		return nil, ErrInvalidValue
	}
	return p, nil
}
