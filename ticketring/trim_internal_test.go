package ticketring

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// Past the context's limit the decrypt-only keys that end first are left
// out, never the encrypting ones: a context with 1,300 retired keys and
// Redis down still encrypts under the fleet's key of the moment.
func TestTrimKeepsEncryptingKeys(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer client.Close()
	r, err := newRing(client, Options{Keys: [][]byte{make([]byte, 32)}, Interval: time.Hour, Lifetime: 7 * 24 * time.Hour})
	require.NoError(t, err)
	cert, err := loopback.SelfSigned()
	require.NoError(t, err)
	oc, err := loopback.ServerCtx(cert, loopback.Config{Max: sslsession.TLS12})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	require.NoError(t, r.Install(sc))

	now := time.Now()
	r.mu.Lock()
	for i := 0; i < 3; i++ {
		e, err := newEntry(now.Add(time.Duration(i-1) * time.Hour))
		require.NoError(t, err)
		r.fleet = append(r.fleet, e)
	}
	for i := 0; i < 1300; i++ {
		k, err := sslsession.NewTicketKey()
		require.NoError(t, err)
		r.past = append(r.past, retired{key: k, start: now.Add(-time.Hour), until: now.Add(time.Duration(i+1) * time.Minute)})
	}
	keys, _ := r.publishLocked(now, nil)
	want := r.fleet[1].key.Name()
	r.mu.Unlock()

	require.Len(t, keys, sslsession.MaxTicketKeys)
	require.Zero(t, r.stats.publishErrors.Load(), "the context took the ring")
	name, ok := sc.EncryptingTicketKey(time.Now())
	require.True(t, ok)
	require.Equal(t, want, name, "the fleet's current key encrypts")
	var fleet, local int
	for _, k := range keys {
		for _, e := range r.fleet {
			if e.key.Name() == k.Key.Name() {
				fleet++
			}
		}
		for _, e := range r.local {
			if e.key.Name() == k.Key.Name() {
				local++
			}
		}
	}
	require.Equal(t, 3, fleet, "every fleet key is kept")
	require.Equal(t, len(r.local), local, "and the standby")
}
