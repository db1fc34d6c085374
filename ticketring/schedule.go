package ticketring

import (
	"slices"
	"time"

	"github.com/sslsession/sslsession"
)

// The schedule. Keys take turns: a key encrypts from its start for one
// Interval, or until the next key starts if that is sooner, and decrypts
// for Lifetime after its turn. Every time here is the fleet's time (Redis's
// clock), so every server computes the same ring from the same read.

type entry struct {
	key   sslsession.TicketKey
	start time.Time
}

// retired is a key of an earlier ring, kept to decrypt until its end.
type retired struct {
	key          sslsession.TicketKey
	start, until time.Time
}

// turnEnd is when ring[i] stops encrypting.
func (r *Ring) turnEnd(ring []entry, i int) time.Time {
	end := ring[i].start.Add(r.interval)
	if i+1 < len(ring) && ring[i+1].start.Before(end) {
		end = ring[i+1].start
	}
	return end
}

// until is when ring[i] stops decrypting: Lifetime after its turn.
func (r *Ring) until(ring []entry, i int) time.Time {
	return r.turnEnd(ring, i).Add(r.lifetime)
}

// prune returns the keys of ring that still decrypt at now (ring itself,
// with no room to append in place, when all do).
func (r *Ring) prune(ring []entry, now time.Time) []entry {
	for i := range ring {
		if !r.until(ring, i).After(now) {
			out := make([]entry, 0, len(ring))
			for j, e := range ring {
				if r.until(ring, j).After(now) {
					out = append(out, e)
				}
			}
			return out
		}
	}
	return ring[:len(ring):len(ring)]
}

// newEntry makes a key that starts at start.
func newEntry(start time.Time) (entry, error) {
	k, err := sslsession.NewTicketKey()
	return entry{key: k, start: start.Truncate(time.Millisecond)}, err
}

// rotate returns the fleet's ring as it must be at now: keys past their end
// dropped; when the newest key's turn is over (or there is none), a fresh
// key that encrypts from now — an old key is never given a second turn;
// and when the newest key has started, the next one, published one
// Interval before it starts. The result holds at most ceil(Lifetime /
// Interval) + 3 keys (New's bound), the oldest going first.
func (r *Ring) rotate(ring []entry, now time.Time) ([]entry, error) {
	out := r.prune(ring, now)
	if n := len(out); n == 0 || !r.turnEnd(out, n-1).After(now) {
		e, err := newEntry(now)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if last := out[len(out)-1]; !last.start.After(now) {
		e, err := newEntry(last.start.Add(r.interval))
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if len(out) > r.bound {
		out = out[len(out)-r.bound:]
	}
	return out, nil
}

// fleetEnd is when the last key of the fleet's ring stops encrypting: from
// then on this server encrypts with host-local keys, unless it has read a
// newer ring by then. Zero before any ring was read.
func (r *Ring) fleetEndLocked() time.Time {
	if len(r.fleet) == 0 {
		return time.Time{}
	}
	return r.turnEnd(r.fleet, len(r.fleet)-1)
}

// localLocked keeps this server's own keys: a standby key that takes over
// when the fleet's ring runs out (at fleetEnd, so no fleet key encrypts
// past its turn even when Redis is gone), and, once host-local keys
// encrypt, their own rotation on the fleet's schedule.
func (r *Ring) localLocked(now time.Time) error {
	floor := r.fleetEndLocked()
	out := r.prune(r.local, now)
	var spare sslsession.TicketKey
	if n := len(out); n > 0 && out[n-1].start.After(now) {
		// A key that has not encrypted yet is scheduled again below.
		spare, out = out[n-1].key, out[:n-1]
	}
	add := func(start time.Time) error {
		if n := len(out); n > 0 && !start.After(out[n-1].start) {
			start = out[n-1].start.Add(time.Millisecond)
		}
		k := spare
		spare = sslsession.TicketKey{}
		if k.IsZero() {
			var err error
			if k, err = sslsession.NewTicketKey(); err != nil {
				return err
			}
		}
		out = append(out, entry{key: k, start: start})
		return nil
	}
	start := maxTime(floor, now)
	if n := len(out); n > 0 && !out[n-1].start.Before(floor) {
		// Host-local keys encrypt: the next one takes over after a turn.
		start = maxTime(out[n-1].start.Add(r.interval), now)
	}
	if err := add(start); err != nil {
		return err
	}
	if last := out[len(out)-1]; !last.start.After(now) {
		if err := add(last.start.Add(r.interval)); err != nil {
			return err
		}
	}
	if len(out) > r.bound {
		out = out[len(out)-r.bound:]
	}
	r.local = out
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// keysLocked is the ring the contexts get, in the fleet's time: the
// fleet's keys (they take turns encrypting), the host-local keys that start
// at or after the fleet's ring ends (they take over then), and every other
// key that still decrypts. Past maxPublish keys, the decrypt-only keys that
// end first are left out; the encrypting keys never are.
//
// The result lives in a buffer the next call reuses, unless it became
// r.published (publishLocked swaps the two).
func (r *Ring) keysLocked(now time.Time) []sslsession.TicketRingKey {
	out := slices.Grow(r.spare[:0], len(r.fleet)+len(r.local)+len(r.past))
	r.spare = out
	if r.seen == nil {
		r.seen = make(map[[sslsession.TicketKeyNameSize]byte]bool, cap(out))
	}
	seen := r.seen
	defer clear(seen)
	add := func(k sslsession.TicketRingKey) {
		if seen[k.Key.Name()] || !k.Until.After(now) {
			return
		}
		seen[k.Key.Name()] = true
		out = append(out, k)
	}
	for i, e := range r.fleet {
		add(sslsession.TicketRingKey{Key: e.key, Encrypt: r.turnEnd(r.fleet, i).After(now), Start: e.start, Until: r.until(r.fleet, i)})
	}
	floor := r.fleetEndLocked()
	for i, e := range r.local {
		add(sslsession.TicketRingKey{Key: e.key, Encrypt: !e.start.Before(floor), Start: e.start, Until: r.until(r.local, i)})
	}
	past := r.past[:0]
	for _, p := range r.past {
		if p.until.After(now) {
			past = append(past, p)
			add(sslsession.TicketRingKey{Key: p.key, Start: p.start, Until: p.until})
		}
	}
	clear(r.past[len(past):])
	r.past = past
	for len(out) > maxPublish {
		drop := -1
		for i, k := range out {
			if !k.Encrypt && (drop < 0 || k.Until.Before(out[drop].Until)) {
				drop = i
			}
		}
		if drop < 0 {
			break
		}
		out = append(out[:drop], out[drop+1:]...)
	}
	return out
}

// encrypting is the key of keys that encrypts a ticket issued at now, as
// the context's callback picks it: the Encrypt key with the latest Start not
// after now (the earliest when none has started), among those not past
// their Until.
func encrypting(keys []sslsession.TicketRingKey, now time.Time) (sslsession.TicketKey, bool) {
	best, first := -1, -1
	for i, k := range keys {
		if !k.Encrypt || (!k.Until.IsZero() && !k.Until.After(now)) {
			continue
		}
		if !k.Start.After(now) && (best < 0 || k.Start.After(keys[best].Start)) {
			best = i
		}
		if first < 0 || k.Start.Before(keys[first].Start) {
			first = i
		}
	}
	if best < 0 {
		best = first
	}
	if best < 0 {
		return sslsession.TicketKey{}, false
	}
	return keys[best].Key, true
}

// fleetKeyAt is the key of the fleet's ring whose turn it is at now (the
// first key before any has started); false when the last key's turn is
// over.
func (r *Ring) fleetKeyAt(now time.Time) (sslsession.TicketKey, bool) {
	if len(r.fleet) == 0 {
		return sslsession.TicketKey{}, false
	}
	for i := len(r.fleet) - 1; i >= 0; i-- {
		if !r.fleet[i].start.After(now) {
			return r.fleet[i].key, r.turnEnd(r.fleet, i).After(now)
		}
	}
	return r.fleet[0].key, true
}

// retireLocked moves the keys of old that keep lacks into past, to decrypt
// until their end: a ring written by another server after Redis lost its
// data, or a rolled-back one, drops nothing a ticket was issued under.
func (r *Ring) retireLocked(old, keep []entry, now time.Time) {
	names := make(map[[sslsession.TicketKeyNameSize]byte]bool, len(keep))
	for _, k := range keep {
		names[k.key.Name()] = true
	}
	for i, e := range old {
		if until := r.until(old, i); !names[e.key.Name()] && until.After(now) {
			r.past = append(r.past, retired{key: e.key, start: e.start, until: until})
		}
	}
}

func sameRing(a, b []entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].key.Equal(b[i].key) || !a[i].start.Equal(b[i].start) {
			return false
		}
	}
	return true
}
