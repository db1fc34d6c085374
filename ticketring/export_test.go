package ticketring

import (
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sslsession/sslsession"
)

// NewManual is New without the background refresh: tests call Sync.
func NewManual(client redis.UniversalClient, opts Options) (*Ring, error) {
	return newRing(client, opts)
}

// SetBeforeWrite runs fn between reading the ring and writing a new one.
func (r *Ring) SetBeforeWrite(fn func()) { r.beforeWrite = fn }

// SetRedisClock makes fn Redis's clock, for simulations whose time is not
// the real one.
func (r *Ring) SetRedisClock(fn func() time.Time) { r.redisClock = fn }

// Published is the ring the contexts got at the last Sync, in the fleet's
// time, and the fleet's time now.
func (r *Ring) Published() ([]sslsession.TicketRingKey, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sslsession.TicketRingKey(nil), r.published...), r.nowLocked()
}

// Encrypting is the key a ticket issued at t (fleet time) is encrypted with.
func Encrypting(keys []sslsession.TicketRingKey, t time.Time) (sslsession.TicketKey, bool) {
	return encrypting(keys, t)
}

// FleetLen is the number of keys in the fleet's ring this server holds.
func (r *Ring) FleetLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.fleet)
}

// Secrets returns the bytes of every key the ring holds, for tests that
// check they appear nowhere.
func (r *Ring) Secrets() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, set := range [][]entry{r.fleet, r.local} {
		for _, e := range set {
			out = append(out, e.key.Bytes()[sslsession.TicketKeyNameSize:])
		}
	}
	for _, p := range r.past {
		out = append(out, p.key.Bytes()[sslsession.TicketKeyNameSize:])
	}
	return out
}

// FleetNow is this server's view of the fleet's time.
func (r *Ring) FleetNow() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nowLocked()
}

// PublishedGen counts the changes of the published keys.
func (r *Ring) PublishedGen() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pubGen
}
