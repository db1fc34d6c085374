package sslsession

// #include "session_cgo.h"
import "C"

import (
	"runtime"
	"sync/atomic"
)

// Accounting of owned sessions: how many hold a reference now, and how many
// were given back by the garbage collector because nobody called Close.
var (
	liveSessions      atomic.Int64
	finalizedSessions atomic.Int64
)

// LiveSessions is the number of owned sessions whose reference has not been
// given back yet. After every session is closed, or dropped and collected,
// it is 0: tests use it as a leak check.
func LiveSessions() int64 { return liveSessions.Load() }

// FinalizedSessions counts owned sessions freed by the garbage collector
// instead of Close: a non-zero, growing value in a long-running program is a
// missing Close.
func FinalizedSessions() int64 { return finalizedSessions.Load() }

// newOwned wraps a pointer that already carries one reference for us.
//
// Each owned session has a cleanup of its own (runtime.AddCleanup), so a
// session dropped without Close is given back at the first garbage
// collections after it became unreachable, whatever other sessions are
// still in use. The cleanup gets the C pointer only, never the Session:
// it runs once the Session is unreachable, when no call can be using the
// pointer, and it needs nothing of the Session to free it. Close stops it
// (closeOwned).
func newOwned(p *C.SSL_SESSION, ctx uintptr) *Session {
	s := &Session{p: p, ctxAddr: ctx}
	liveSessions.Add(1)
	s.cleanup = runtime.AddCleanup(s, freeDropped, p)
	return s
}

// freeDropped is the garbage collector's Close for a session nobody closed.
func freeDropped(p *C.SSL_SESSION) {
	C.sslsess_free(p)
	liveSessions.Add(-1)
	finalizedSessions.Add(1)
}

// closeOwned gives back the reference of an owned session that Close has
// just marked closed (no call uses p any more, and none will). The cleanup
// is stopped first, while s is still reachable: a cleanup is queued only
// for an unreachable Session, and once queued Stop cannot take it back, so
// the KeepAlive at the end is what makes the reference freed exactly once.
func (s *Session) closeOwned() {
	s.cleanup.Stop()
	C.sslsess_free(s.p)
	liveSessions.Add(-1)
	runtime.KeepAlive(s)
}
