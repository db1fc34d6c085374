package sslsession

// #include "callbacks_cgo.h"
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// OpenSSL's session callbacks (callbacks_cgo.c) and their Go side: the
// registry of hooks, the //export functions the C callbacks call, and the
// guard against cache calls from inside a callback. bridge.go is the
// server store behind them, clientcache.go the client cache.
//
// Each SSL_CTX with a store or a client cache gets one hooks value, found
// through an integer handle in the SSL_CTX's ex_data (never a Go pointer in
// C memory). The handle is an index into a registry rather than a
// runtime/cgo.Handle, because a callback may already be inside OpenSSL when
// ClearStore runs, and cgo.Handle.Value panics on a deleted handle where a
// registry lookup just finds nothing. The hooks hold no reference to the
// spacemonkeygo *openssl.Ctx, so the registry does not keep the context
// alive: when it is collected, SSL_CTX_free first flushes the cache (running
// the remove callbacks) and then frees the ex_data, whose free callback
// releases the handle and stops the store's worker goroutine.

type hooks struct {
	server atomic.Pointer[bridge]
	client atomic.Pointer[clientSink]
	early  atomic.Pointer[earlyState] // earlydata.go
}

var (
	hooksMu   sync.Mutex // serializes installing and removing hooks
	hooksReg  sync.Map   // uintptr -> *hooks
	hooksNext atomic.Uintptr
)

// hooksHandle returns c's handle and whether it is registered.
func hooksHandle(c *Ctx) (uintptr, bool) {
	h := uintptr(C.sslsess_cache_handle(c.p))
	runtime.KeepAlive(c)
	_, ok := hooksReg.Load(h)
	return h, ok
}

// callbacksOf reports which of the bridge's callbacks are set on c.
func callbacksOf(c *Ctx) (newCb, getCb, removeCb bool) {
	bits := C.sslsess_cache_callbacks(c.p)
	runtime.KeepAlive(c)
	return bits&C.SSLSESS_CB_NEW != 0, bits&C.SSLSESS_CB_GET != 0, bits&C.SSLSESS_CB_REMOVE != 0
}

// hooksOf returns the hooks of an SSL_CTX, making them when create is set.
// Call with hooksMu held when create is set.
func hooksOf(p *C.SSL_CTX, create bool) (*hooks, error) {
	if h := uintptr(C.sslsess_cache_handle(p)); h != 0 {
		if v, ok := hooksReg.Load(h); ok {
			return v.(*hooks), nil
		}
		if create {
			// Released: only SSL_CTX_free does that.
			return nil, &Error{Func: "SSL_CTX_get_ex_data", Err: fmt.Errorf("%w: the SSL_CTX's session hooks were released by SSL_CTX_free", ErrFreed)}
		}
		return nil, nil
	}
	if !create {
		return nil, nil
	}
	hk := &hooks{}
	h := hooksNext.Add(1)
	hooksReg.Store(h, hk)
	var e C.sslsess_err
	if C.sslsess_cache_set_handle(p, C.uintptr_t(h), &e) != C.SSLSESS_OK {
		hooksReg.Delete(h)
		return nil, newError("SSL_CTX_set_ex_data", nil, &e)
	}
	return hk, nil
}

// lookupHooks is the callbacks' way to the hooks: nil once released.
func lookupHooks(h C.uintptr_t) *hooks {
	v, ok := hooksReg.Load(uintptr(h))
	if !ok {
		return nil
	}
	return v.(*hooks)
}

// syncCallbacks installs exactly the callbacks the hooks need.
func (hk *hooks) syncCallbacks(p *C.SSL_CTX) {
	var cbs C.int
	if b := hk.server.Load(); b != nil {
		cbs |= C.SSLSESS_CB_NEW | C.SSLSESS_CB_GET
		if b.opts.DeleteOnRemove {
			cbs |= C.SSLSESS_CB_REMOVE
		}
	}
	if hk.client.Load() != nil {
		cbs |= C.SSLSESS_CB_NEW
	}
	C.sslsess_cache_set_callbacks(p, cbs)
}

//export sslsessGoRelease
func sslsessGoRelease(h C.uintptr_t) {
	v, ok := hooksReg.LoadAndDelete(uintptr(h))
	if !ok {
		return
	}
	hk := v.(*hooks)
	if b := hk.server.Swap(nil); b != nil {
		b.close()
	}
	if s := hk.client.Swap(nil); s != nil {
		s.close()
	}
}

// callbackGuard refuses cache calls made from inside a session callback.
// The check is per OS thread: during a callback its goroutine is locked to
// the thread OpenSSL called from, which is the thread that may hold the
// cache lock.
func callbackGuard(fn string) error {
	if C.sslsess_cache_in_callback() != 0 {
		return &Error{Func: fn, Err: ErrInCallback}
	}
	return nil
}

// enterCallback locks the goroutine to its thread and marks the thread as
// running a callback's work, so that callbackGuard refuses cache calls made
// on it; leaveCallback undoes both.
func enterCallback() {
	runtime.LockOSThread()
	C.sslsess_cache_enter()
}

func leaveCallback() {
	C.sslsess_cache_leave()
	runtime.UnlockOSThread()
}

//export sslsessGoNew
func sslsessGoNew(h C.uintptr_t, server C.int, key *C.char, p *C.SSL_SESSION, ctx *C.SSL_CTX) {
	hk := lookupHooks(h)
	if hk == nil {
		return
	}
	if server != 0 {
		if b := hk.server.Load(); b != nil {
			b.newSession(p)
		}
		return
	}
	if s := hk.client.Load(); s != nil {
		s.newSession(C.GoString(key), p, ctx)
	}
}

//export sslsessGoGet
func sslsessGoGet(h C.uintptr_t, id *C.uchar, n C.int) *C.SSL_SESSION {
	hk := lookupHooks(h)
	if hk == nil {
		return nil
	}
	b := hk.server.Load()
	if b == nil {
		return nil
	}
	return b.get(C.GoBytes(unsafe.Pointer(id), n))
}

// sslsessGoRemove runs while OpenSSL may hold its cache lock: it only
// queues the Delete.
//
//export sslsessGoRemove
func sslsessGoRemove(h C.uintptr_t, id *C.uchar, n C.int, created, timeout C.long) {
	hk := lookupHooks(h)
	if hk == nil {
		return
	}
	b := hk.server.Load()
	if b == nil {
		return
	}
	sid := C.GoBytes(unsafe.Pointer(id), n)
	if !b.opts.DeleteOnRemove || int64(created)+int64(timeout) <= time.Now().Unix() {
		return
	}
	b.enqueue(storeOp{id: sid})
}
