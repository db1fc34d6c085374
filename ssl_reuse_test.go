package sslsession_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/rawssl"
)

// A borrowed session reads only the session it was taken from: when OpenSSL
// frees it and allocates another session at the same address, the old
// handle returns ErrStale instead of the new session's data. Address reuse
// is forced: the connection's session is freed, then sessions are decoded
// until one lands at the freed address, and that one is set.
func TestBorrowedSurvivesAddressReuse(t *testing.T) {
	f := getFixture(t)
	orig := ownedSession(t)
	der := mustDER(t, orig)
	origIDInfo, err := orig.Info()
	origID := origIDInfo.ID
	require.NoError(t, err)
	orig.Close()
	otherDER := mustDER(t, cacheForeignSession(t, sslsession.TLS12))

	reused := 0
	for round := 0; round < 50; round++ {
		ssl, err := rawssl.New(f.cctx)
		require.NoError(t, err)
		first, err := sslsession.ParseDER(der)
		require.NoError(t, err)
		addr := sslsession.SessionAddr(first)
		require.NoError(t, ssl.SetSession(first))
		first.Close() // the SSL holds the only reference now
		b, err := ssl.Session()
		require.NoError(t, err)
		idInfo, err := b.Info()
		id := idInfo.ID
		require.NoError(t, err)
		require.Equal(t, origID, id)

		// Free it: another session replaces it on the SSL.
		filler, err := sslsession.ParseDER(otherDER)
		require.NoError(t, err)
		require.NoError(t, ssl.SetSession(filler))
		filler.Close()
		// Allocate until a session sits at the old address.
		var same *sslsession.Session
		var spare []*sslsession.Session
		for i := 0; i < 64 && same == nil; i++ {
			d, err := sslsession.ParseDER(otherDER)
			require.NoError(t, err)
			if sslsession.SessionAddr(d) == addr {
				same = d
			} else {
				spare = append(spare, d)
			}
		}
		for _, d := range spare {
			d.Close()
		}
		if same != nil {
			reused++
			require.NoError(t, ssl.SetSession(same))
			same.Close()
			cur, err := ssl.Session()
			require.NoError(t, err)
			require.Equal(t, addr, sslsession.SessionAddr(cur), "the SSL's session is at the old address")
		}
		_, err = b.Info()
		require.ErrorIs(t, err, sslsession.ErrStale, "round %d (address reused: %t)", round, same != nil)
		_, err = b.MasterKey()
		require.ErrorIs(t, err, sslsession.ErrStale)
		_, err = b.PeerCertificate()
		require.ErrorIs(t, err, sslsession.ErrStale)
		_, err = b.Owned()
		require.ErrorIs(t, err, sslsession.ErrStale)
		// A new borrow reads the new session.
		nb, err := ssl.Session()
		require.NoError(t, err)
		nidInfo, err := nb.Info()
		nid := nidInfo.ID
		require.NoError(t, err)
		require.NotEqual(t, origID, nid)
		ssl.Free()
	}
	t.Logf("address reused in %d of 50 rounds", reused)
	if !asanBuild {
		// Without ASan's quarantine the allocator reuses the address.
		require.Positive(t, reused, "address reuse was never forced")
	}
}

// Watching a session twice: both watches report the free, and nothing
// leaks (LeakSanitizer, make test-asan).
func TestFreeWatchTwice(t *testing.T) {
	s := ownedSession(t)
	w1, err := rawssl.WatchSession(s)
	require.NoError(t, err)
	w2, err := rawssl.WatchSession(s)
	require.NoError(t, err)
	require.False(t, w1.Freed())
	require.False(t, w2.Freed())
	require.NoError(t, s.Close())
	// The fixture's connection still holds the session: not freed yet.
	require.False(t, w1.Freed())
	d, err := sslsession.ParseDER(mustDER(t, ownedSession(t)))
	require.NoError(t, err)
	v1, err := rawssl.WatchSession(d)
	require.NoError(t, err)
	v2, err := rawssl.WatchSession(d)
	require.NoError(t, err)
	require.NoError(t, d.Close())
	require.True(t, v1.Freed(), "the first watch reports the free")
	require.True(t, v2.Freed(), "the second watch reports the free")
	v1.Release()
	v2.Release()
	w1.Release()
	w2.Release()
	w2.Release()
}
