package ticketring

import (
	"github.com/redis/go-redis/v9"

	"github.com/sslsession/sslsession"
)

// NewManual is New without the background refresh: tests call Sync.
func NewManual(client redis.UniversalClient, opts Options) (*Ring, error) {
	return newRing(client, opts)
}

// SetBeforeWrite runs fn between reading the ring and writing a new one.
func (r *Ring) SetBeforeWrite(fn func()) { r.beforeWrite = fn }

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
