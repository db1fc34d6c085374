// Package cbprobe runs probes inside an SSL_CTX's session callbacks, for
// the tests of the session-cache bridge: it wraps the callbacks set on the
// context (the bridge's) with its own, which run a probe and chain to them.
// It keeps the probes out of the bridge itself.
package cbprobe

// #cgo pkg-config: libssl libcrypto
// #cgo CFLAGS: -Wno-deprecated-declarations
// #include "cbprobe.h"
import "C"

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/sslsession/sslsession"
)

// Probes are run inside the callbacks, on the thread OpenSSL calls them
// from. A nil probe leaves its callback unwrapped.
type Probes struct {
	// New sees each new session (SSL_CTX_sess_set_new_cb(3)), after the
	// wrapped callback returned.
	New func(sess unsafe.Pointer)
	// Got sees each session the wrapped get callback returns.
	Got func(sess unsafe.Pointer)
	// Remove sees each removed session's ID, before the wrapped remove
	// callback (if any) runs. OpenSSL may hold its cache lock meanwhile.
	Remove func(id []byte)
}

var cur atomic.Pointer[Probes]

// Install wraps ctx's session callbacks with p's probes until restore.
// Install after the callbacks to wrap are set (Ctx.SetStore), and use one
// context at a time.
func Install(ctx *sslsession.Ctx, p Probes) (restore func()) {
	cur.Store(&p)
	var which C.int
	if p.New != nil {
		which |= C.CBPROBE_NEW
	}
	if p.Got != nil {
		which |= C.CBPROBE_GET
	}
	if p.Remove != nil {
		which |= C.CBPROBE_REMOVE
	}
	C.cbprobe_install((*C.SSL_CTX)(ctx.Pointer()), which)
	runtime.KeepAlive(ctx)
	return func() {
		C.cbprobe_restore((*C.SSL_CTX)(ctx.Pointer()))
		runtime.KeepAlive(ctx)
		cur.Store(nil)
	}
}

//export cbprobeNew
func cbprobeNew(sess *C.SSL_SESSION) {
	if p := cur.Load(); p != nil && p.New != nil {
		p.New(unsafe.Pointer(sess))
	}
}

//export cbprobeGot
func cbprobeGot(sess *C.SSL_SESSION) {
	if p := cur.Load(); p != nil && p.Got != nil {
		p.Got(unsafe.Pointer(sess))
	}
}

//export cbprobeRemove
func cbprobeRemove(id *C.uchar, n C.int) {
	if p := cur.Load(); p != nil && p.Remove != nil {
		p.Remove(C.GoBytes(unsafe.Pointer(id), n))
	}
}
