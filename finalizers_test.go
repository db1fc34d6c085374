package sslsession_test

import (
	"encoding/asn1"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/rawssl"
)

// withoutPeer is the fixture's session as DER with its peer certificate
// (field [3]) taken out: a session of its own at every decode, which
// OpenSSL 3.x decodes some ten times faster than one with a certificate.
func withoutPeer(t *testing.T) []byte {
	t.Helper()
	s := ownedSession(t)
	der, err := s.MarshalBinary()
	require.NoError(t, s.Close())
	require.NoError(t, err)
	var outer asn1.RawValue
	_, err = asn1.Unmarshal(der, &outer)
	require.NoError(t, err)
	var fields []byte
	dropped := false
	for rest := outer.Bytes; len(rest) > 0; {
		var f asn1.RawValue
		rest, err = asn1.Unmarshal(rest, &f)
		require.NoError(t, err)
		if f.Class == asn1.ClassContextSpecific && f.Tag == 3 {
			dropped = true
			continue
		}
		fields = append(fields, f.FullBytes...)
	}
	require.True(t, dropped, "the fixture's session has no peer certificate")
	out, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: fields})
	require.NoError(t, err)
	return out
}

// collectUntil runs the garbage collector, and gives the cleanups it queues
// time to run, until LiveSessions is want or a minute has passed; it
// returns the last LiveSessions. The first collection queues every dropped
// session's cleanup, and one goroutine runs them all: well under a second
// for 63,000 on an idle machine, over five seconds under the race detector
// on a loaded one.
func collectUntil(want int64) int64 {
	deadline := time.Now().Add(time.Minute)
	for sslsession.LiveSessions() != want && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	return sslsession.LiveSessions()
}

func heapInUse(t *testing.T) int64 {
	t.Helper()
	n, err := rawssl.HeapInUse()
	require.NoError(t, err)
	return n
}

// A session dropped without Close is given back by the garbage collector
// whatever other sessions are still in use: 64,000 sessions, each its own
// SSL_SESSION, every 64th kept and the rest dropped. The 63,000 dropped
// ones leave the live count and give their C memory back at the first
// collections; closing the 1,000 kept ones gives back the rest.
//
// The C heap is measured with the C allocator's own count of bytes in use
// (rawssl.HeapInUse), which sees OpenSSL's allocations and not Go's.
// Freed chunks leave that count at once, whatever the allocator keeps for
// reuse, so the heap comes back to where it was, give or take the other C
// allocations of the process meanwhile: slack allows 512 KiB of those
// (OpenSSL's per-thread error state for a new thread, a cgo thread's
// bookkeeping), under 5 % of what the sessions take.
func TestDroppedSessionsFreedWhateverTheirNeighbours(t *testing.T) {
	const (
		kept  = 1000
		every = 64
		total = kept * every
		slack = 512 << 10
	)
	der := withoutPeer(t)
	require.Zero(t, settle())
	finalized := sslsession.FinalizedSessions()
	base := heapInUse(t)

	all := make([]*sslsession.Session, total)
	for i := range all {
		s, err := sslsession.ParseDER(der)
		if err != nil {
			t.Fatal(err)
		}
		all[i] = s
	}
	require.Equal(t, int64(total), sslsession.LiveSessions())
	grown := heapInUse(t) - base
	perSession := grown / total
	t.Logf("%d sessions: C heap +%.1f MiB, %d bytes each", total, float64(grown)/(1<<20), perSession)
	// The meter sees the sessions: each decoded SSL_SESSION takes at least
	// its own structure and master key from the C heap.
	require.Greater(t, perSession, int64(200), "the C heap meter does not see OpenSSL's allocations")
	require.Greater(t, grown, int64(20*slack))

	keep := make([]*sslsession.Session, 0, kept)
	for i := 0; i < total; i += every {
		keep = append(keep, all[i])
	}
	clear(all)
	all = nil

	require.Equal(t, int64(kept), collectUntil(kept), "live sessions once the dropped ones are collected")
	assert.GreaterOrEqual(t, sslsession.FinalizedSessions()-finalized, int64(total-kept))
	retained := heapInUse(t) - base
	t.Logf("%d kept: C heap +%.1f MiB", kept, float64(retained)/(1<<20))
	assert.LessOrEqual(t, retained, kept*perSession+slack, "C heap with the kept sessions only")

	for _, s := range keep {
		require.NoError(t, s.Close())
	}
	assert.Zero(t, sslsession.LiveSessions())
	left := heapInUse(t) - base
	t.Logf("all closed: C heap %+d bytes", left)
	assert.LessOrEqual(t, left, int64(slack), "C heap after Close")
	runtime.KeepAlive(keep)
}

// Close and the garbage collector's cleanup never both give a reference
// back: sessions closed and dropped in turn while another goroutine
// collects without pause. Every dropped one is counted as finalized, no
// closed one is, the live count never goes below zero, and the connection's
// session, whose references these were, is intact.
func TestCloseWhileCollecting(t *testing.T) {
	const n = 20_000
	f := getFixture(t)
	require.Zero(t, settle())
	finalized := sslsession.FinalizedSessions()

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	low := int64(0)
	for i := 0; i < n; i++ {
		s, err := f.ssl.Session1()
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			require.NoError(t, s.Close())
		}
		low = min(low, sslsession.LiveSessions())
	}
	close(stop)
	<-done

	assert.Zero(t, collectUntil(0))
	assert.Zero(t, low, "live sessions went below zero")
	assert.Equal(t, int64(n/2), sslsession.FinalizedSessions()-finalized)
	b, err := f.ssl.Session()
	require.NoError(t, err)
	_, err = b.Info()
	require.NoError(t, err)
}
