package sslsession

import "unsafe"

// The root package's exports for its external tests (package
// sslsession_test), all in this one file.

var CheckSetupF = checkSetup

// SessionAddr is the address of the SSL_SESSION s holds (or forwards to).
func SessionAddr(s *Session) uintptr { return uintptr(unsafe.Pointer(s.target().p)) }

// CacheHandle returns the bridge handle of c's SSL_CTX (0: none) and
// CacheHandleLive whether it is still registered.
func CacheHandle(c *Ctx) uintptr {
	h, _ := hooksHandle(c)
	return h
}

func CacheHandleLive(h uintptr) bool {
	_, ok := hooksReg.Load(h)
	return ok
}

// CacheCallbacks reports which bridge callbacks are set on c.
func CacheCallbacks(c *Ctx) (newCb, getCb, removeCb bool) { return callbacksOf(c) }

// EnterCallback and LeaveCallback mark the calling goroutine's thread as
// running a session callback's work, as the bridge does: cache calls made
// on it in between are refused (ErrInCallback).
var (
	EnterCallback = enterCallback
	LeaveCallback = leaveCallback
)

// OpenStored checks the tag of a value the bridge gave a store under the
// process's integrity key and returns its DER; SealStored makes one.
func OpenStored(id, v []byte) ([]byte, bool) {
	k, _ := integrityKeyFor(NewMemoryStore(1), StoreOptions{})
	return openValue(k, id, v)
}

func SealStored(id, der []byte) []byte {
	k, _ := integrityKeyFor(NewMemoryStore(1), StoreOptions{})
	return sealValue(k, id, append([]byte(nil), der...))
}
