package rawssl

// #cgo pkg-config: libssl libcrypto
// #cgo CFLAGS: -Wno-deprecated-declarations
// #include "freewatch.h"
import "C"

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/sslsession/sslsession"
)

// Watch observes when OpenSSL really frees a session: when its
// reference count reaches zero and SSL_SESSION_free(3) destroys it. It is a
// diagnostic for checking who holds references (the man-page checks use it
// to prove the reference rules on every OpenSSL version, since 1.1.0+ hides
// the count). It marks the session with an SSL_SESSION ex_data slot of its
// own; copies OpenSSL makes of the session are not watched.
type Watch struct {
	flag *C.int
	once sync.Once
}

// errWatch is what a failed SSL_SESSION_set_ex_data returns.
var errWatch = &sslsession.Error{Func: "SSL_SESSION_set_ex_data", Err: sslsession.ErrOpenSSL}

// WatchSession starts watching s's SSL_SESSION. It fails as s's methods do: a
// closed session with ErrClosed, a stale borrowed one with ErrStale.
func WatchSession(s *sslsession.Session) (*Watch, error) {
	var w *Watch
	err := s.WithPointer(func(p unsafe.Pointer) error {
		var err error
		w, err = WatchPointer(p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// WatchPointer starts watching the SSL_SESSION at p, which must be valid during
// the call (a session inside an OpenSSL callback, for instance).
func WatchPointer(p unsafe.Pointer) (*Watch, error) {
	if p == nil {
		return nil, sslsession.ErrNilSession
	}
	flag := C.freewatch_watch((*C.SSL_SESSION)(p))
	if flag == nil {
		return nil, errWatch
	}
	w := &Watch{flag: flag}
	runtime.SetFinalizer(w, (*Watch).Release)
	return w, nil
}

// Freed reports whether OpenSSL has freed the watched session.
func (w *Watch) Freed() bool {
	if w == nil {
		return false
	}
	return C.freewatch_freed(w.flag) == 1
}

// Release ends the watch. A second Release does nothing.
func (w *Watch) Release() {
	if w == nil || w.flag == nil {
		return // nil, or a zero Watch: nothing watched
	}
	w.once.Do(func() {
		runtime.SetFinalizer(w, nil)
		C.freewatch_release(w.flag)
	})
}
