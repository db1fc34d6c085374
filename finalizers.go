package sslsession

// #include "session_cgo.h"
import "C"

import (
	"runtime"
	"sync"
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
func LiveSessions() int64 {
	n := liveSessions.Load()
	if b := curBlock.Load(); b != nil {
		// The current block's slots not handed out yet.
		n -= int64(blockSize - min(b.next.Load(), blockSize))
	}
	return n
}

// FinalizedSessions counts owned sessions freed by the garbage collector
// instead of Close: a non-zero, growing value in a long-running program is a
// missing Close.
func FinalizedSessions() int64 { return finalizedSessions.Load() }

// Owned sessions are allocated in blocks of blockSize with one finalizer per
// block. A finalizer per session (runtime.SetFinalizer, and clearing it
// again in Close) costs about 160 ns, three times the C calls it guards;
// per block it is paid once per 64 sessions. The allocator drops its hold on
// the current block at every garbage collection (as sync.Pool does), so a
// block whose sessions were all dropped is collected even when it is not
// full. The price: a session dropped without Close is given back once every
// session of its block is unreachable, not necessarily at the first GC
// after it was dropped. Close is always immediate.
//
// Accounting is per block too: a new block counts its blockSize slots as
// live at once; Close and the block's finalizer take them off.
const blockSize = 64

type block struct {
	next  atomic.Int32
	items [blockSize]Session
}

var (
	curBlock atomic.Pointer[block]
	blockMu  sync.Mutex
)

func init() { armGCSentinel() }

// armGCSentinel makes the allocator let go of its current block at the next
// garbage collection, and again after every one.
func armGCSentinel() {
	// Not a tiny pointer-free object: the tiny allocator packs those
	// together, and a finalizer on one may never run.
	sentinel := &gcSentinel{}
	runtime.SetFinalizer(sentinel, func(*gcSentinel) {
		if b := curBlock.Swap(nil); b != nil {
			b.retire()
		}
		armGCSentinel()
	})
}

type gcSentinel struct{ _ *block }

// newOwned wraps a pointer that already carries one reference for us.
func newOwned(p *C.SSL_SESSION, ctx uintptr) *Session {
	s := allocSession()
	s.p, s.ctx = p, ctx
	return s
}

func allocSession() *Session {
	if s := fromCurrentBlock(); s != nil {
		return s
	}
	blockMu.Lock()
	defer blockMu.Unlock()
	// Another goroutine may have made a new block meanwhile.
	if s := fromCurrentBlock(); s != nil {
		return s
	}
	b := &block{}
	b.next.Store(1)
	liveSessions.Add(blockSize)
	runtime.SetFinalizer(b, (*block).finalize)
	curBlock.Store(b)
	return &b.items[0]
}

// fromCurrentBlock takes the next free slot of the current block, or nil.
func fromCurrentBlock() *Session {
	if b := curBlock.Load(); b != nil {
		if i := b.next.Add(1) - 1; i < blockSize {
			return &b.items[i]
		}
	}
	return nil
}

// retire takes a block out of allocation: its slots not handed out yet are
// never handed out and leave the live count now, so that LiveSessions
// counts exactly the sessions handed out and not given back. The swap
// decides, against a concurrent fromCurrentBlock, which slots were taken.
func (b *block) retire() {
	if taken := b.next.Swap(blockSize); taken < blockSize {
		liveSessions.Add(-int64(blockSize - taken))
	}
}

// finalize is the garbage collector's Close for every session of a block
// that nobody closed, and takes the slots never handed out off the count.
// The block is unreachable: no session of it is in use.
func (b *block) finalize() {
	for i := range b.items {
		b.items[i].finalize()
	}
	if unused := blockSize - b.next.Load(); unused > 0 {
		liveSessions.Add(-int64(unused))
	}
}

// forget drops s's bookkeeping after its reference was given back.
func forget(*Session) { liveSessions.Add(-1) }

// finalize gives back a reference nobody closed.
func (s *Session) finalize() {
	if s.p != nil && s.use.Load() >= 0 {
		s.use.Store(closedState)
		C.sslsess_free(s.p)
		liveSessions.Add(-1)
		finalizedSessions.Add(1)
	}
}
