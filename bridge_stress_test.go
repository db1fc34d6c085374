package sslsession_test

import (
	"testing"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// The bridge under load: concurrent handshakes through the callbacks.

// 8 goroutines × 500 handshakes through the callbacks, against the memory
// store, under -race: TLS 1.2 resumptions by session ID, with an internal
// cache of 32 (so evictions run the remove callback under the cache lock)
// that is never looked up (so every resumption goes through the get
// callback), DeleteOnRemove, and a goroutine flushing concurrently.
func TestStoreStress(t *testing.T) {
	sesstest.LeakCheck(t)
	sesstest.StoreStress(t, sslsession.NewMemoryStore(0), 8, 500, 32)
}
