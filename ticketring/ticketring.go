// Package ticketring gives a fleet of TLS servers one ring of session-ticket
// keys, kept in the Redis they already share and rotated by the servers
// themselves: a ticket issued by any server resumes on every other, with no
// key file to generate, copy or rotate by hand, and no Redis call during a
// handshake.
//
// The ring is one Redis string, sealed with AES-GCM under the fleet's
// sealing keys (the same keys as redisstore's). Each server reads it in the
// background and publishes it to its contexts (sslsession.Ctx.SetTicketKeys),
// where OpenSSL's ticket callback uses it from C memory. A key is published
// one Interval before any server encrypts with it, so every server decrypts a
// ticket as soon as any server issues it; it encrypts for one Interval and
// decrypts for Lifetime after that. Servers that race to rotate produce one
// ring: a write only succeeds against the ring it was computed from (a Lua
// compare-and-set on one key, so it works on Redis Cluster too).
//
// Failures never fail a handshake. With Redis down or slow a server keeps
// the ring it has; once the ring has no key left to encrypt with it falls
// back to keys of its own (its tickets then resume on it alone), counts it,
// and rejoins the fleet's ring when Redis answers again. A server that
// starts with Redis down serves at once with its own keys. A ring sealed
// with keys the server does not have is never overwritten nor used: the
// server stays on its own keys, and counts and logs it once. A ring that
// does not open under a known key (tampered with, or garbage) is counted,
// logged once and replaced with a good one carrying the keys the server
// knows, so the fleet heals.
package ticketring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/redisclient"
)

// Defaults, and why.
const (
	// DefaultInterval: each key encrypts for an hour. A stolen key then
	// opens at most an hour of new tickets (plus those still renewed within
	// its Lifetime), the forward secrecy that key files rotated by hand by
	// nobody do not give.
	DefaultInterval = time.Hour
	// DefaultLifetime: a key decrypts for a day after it stops encrypting,
	// so a ticket resumes for a day after it was issued. Set it to the
	// session timeout the servers give tickets (sslsession.Ctx.SetTimeout);
	// a longer one only keeps dead keys. RFC 8446 §4.6.1 caps ticket
	// lifetimes at seven days: Lifetime may not exceed MaxLifetime.
	DefaultLifetime = 24 * time.Hour
	// MaxLifetime is RFC 8446 §4.6.1's cap on ticket lifetimes.
	MaxLifetime = 7 * 24 * time.Hour
	// DefaultPrefix names the ring's Redis key: "{sslsession-tickets}:ring".
	DefaultPrefix = "sslsession-tickets"
)

// Options configures a Ring. Every server of a fleet must use the same
// Prefix and sealing Keys; Interval and Lifetime should be the same too.
type Options struct {
	// Prefix names the ring: its Redis key is "{Prefix}:ring" (a hash tag,
	// so that keys added later stay in the same Cluster slot). Fleets that
	// must not share tickets use different prefixes. Default DefaultPrefix.
	Prefix string
	// Keys are AES keys (16, 24 or 32 bytes) that seal the ring in Redis:
	// Keys[0] seals, every key opens. Required: ticket keys are never
	// stored in clear. Rotate them as redisstore's.
	Keys [][]byte
	// Interval is how long each key encrypts new tickets, and how long
	// before its turn it is published. Default DefaultInterval; at least
	// 100ms.
	Interval time.Duration
	// Lifetime is how long a key decrypts after its last ticket. Default
	// DefaultLifetime, at most MaxLifetime.
	Lifetime time.Duration
	// Refresh is how often the ring is read from Redis. Default a quarter
	// of Interval, at most a minute.
	Refresh time.Duration
	// Timeout bounds each Redis call. Default one second: calls are made in
	// the background, never during a handshake. The go-redis client must
	// honour context deadlines (ContextTimeoutEnabled).
	Timeout time.Duration
	// Logger receives one line when the server falls back to its own keys,
	// rejoins the fleet, first finds a ring it cannot read or a tampered
	// one. Keys are never logged. Default slog.Default().
	Logger *slog.Logger
}

// ErrOptions is wrapped by New's errors about Options.
var ErrOptions = errors.New("ticketring: invalid options")

// Stats counts what a Ring did.
type Stats struct {
	Refreshes     int64 `json:"refreshes"`      // rings read from Redis and adopted
	RefreshErrors int64 `json:"refresh_errors"` // Redis errors and timeouts
	Rotations     int64 `json:"rotations"`      // rings this server wrote: created, rotated or repaired
	Conflicts     int64 `json:"conflicts"`      // writes lost to another server's: read again
	Fallbacks     int64 `json:"fallbacks"`      // switches to host-local keys
	Rejoins       int64 `json:"rejoins"`        // switches back to the fleet's ring
	Foreign       int64 `json:"foreign"`        // rings sealed with keys this server does not have
	Tampered      int64 `json:"tampered"`       // rings that do not open under a known key, or do not parse
	Local         bool  `json:"local"`          // now on host-local keys
	Keys          int   `json:"keys"`           // keys published to the contexts
}

type counters struct {
	refreshes, refreshErrors, rotations, conflicts, fallbacks, rejoins, foreign, tampered atomic.Int64
}

type entry struct {
	key   sslsession.TicketKey
	start time.Time
}

// retired is a key of an earlier ring, kept to decrypt until its end.
type retired struct {
	key          sslsession.TicketKey
	start, until time.Time
}

// Ring is one server's view of the fleet's ring. It is safe for concurrent
// use.
type Ring struct {
	client   redis.UniversalClient
	rkey     string
	interval time.Duration
	lifetime time.Duration
	refresh  time.Duration
	timeout  time.Duration
	log      *slog.Logger
	aeads    []cipher.AEAD
	ids      [][keyIDLen]byte
	stats    counters

	mu      sync.Mutex
	fleet   []entry   // the fleet's ring as last read or written; nil before
	local   []entry   // this server's own keys; used while isLocal
	isLocal bool      // encrypting with local
	past    []retired // keys of earlier rings, decrypt only
	ctxs    []*sslsession.Ctx
	nkeys   int
	failed  bool // a Sync has failed: the next switch to the fleet's ring is a rejoin

	loggedForeign, loggedTamper atomic.Bool
	beforeWrite                 func() // tests: runs between reading and writing

	looping   bool
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// New makes a Ring on client and starts its background refresh. It does
// not wait for Redis: until the first read succeeds the ring is this
// server's own keys, so contexts given to Install issue tickets at once.
// Call Sync to wait for the fleet's ring, and Close to stop.
func New(client redis.UniversalClient, opts Options) (*Ring, error) {
	r, err := newRing(client, opts)
	if err != nil {
		return nil, err
	}
	r.looping = true
	go r.loop()
	return r, nil
}

func newRing(client redis.UniversalClient, opts Options) (*Ring, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", ErrOptions)
	}
	if !redisclient.ContextTimeouts(client) {
		return nil, fmt.Errorf("%w: the go-redis client must have ContextTimeoutEnabled set", ErrOptions)
	}
	r := &Ring{
		client: client, interval: opts.Interval, lifetime: opts.Lifetime,
		refresh: opts.Refresh, timeout: opts.Timeout, log: opts.Logger,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	r.rkey = "{" + prefix + "}:ring"
	if r.interval == 0 {
		r.interval = DefaultInterval
	}
	if r.interval < 100*time.Millisecond {
		return nil, fmt.Errorf("%w: Interval %v is under 100ms", ErrOptions, r.interval)
	}
	if r.lifetime == 0 {
		r.lifetime = DefaultLifetime
	}
	if r.lifetime < 0 || r.lifetime > MaxLifetime {
		return nil, fmt.Errorf("%w: Lifetime %v is not within (0, %v] (RFC 8446 §4.6.1)", ErrOptions, r.lifetime, MaxLifetime)
	}
	if r.refresh <= 0 {
		r.refresh = min(r.interval/4, time.Minute)
	}
	if r.timeout <= 0 {
		r.timeout = time.Second
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if len(opts.Keys) == 0 {
		return nil, fmt.Errorf("%w: no sealing keys: ticket keys are never stored in clear", ErrOptions)
	}
	for i, k := range opts.Keys {
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("%w: sealing key %d: %v", ErrOptions, i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: sealing key %d: %v", ErrOptions, i, err)
		}
		r.aeads = append(r.aeads, aead)
		r.ids = append(r.ids, keyID(k))
	}
	now := time.Now()
	local, err := r.rotate(nil, now)
	if err != nil {
		return nil, err
	}
	r.local, r.isLocal = local, true
	return r, nil
}

// Key is the ring's Redis key.
func (r *Ring) Key() string { return r.rkey }

// Install publishes the ring to sc (sslsession.Ctx.SetTicketKeys) and keeps
// it up to date there until Close.
func (r *Ring) Install(sc *sslsession.Ctx) error {
	if sc == nil {
		return fmt.Errorf("%w: nil context", ErrOptions)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := sc.SetTicketKeys(r.ringLocked(time.Now())); err != nil {
		return err
	}
	r.ctxs = append(r.ctxs, sc)
	return nil
}

// Stats returns the ring's counters.
func (r *Ring) Stats() Stats {
	c := &r.stats
	r.mu.Lock()
	local, n := r.isLocal, r.nkeys
	r.mu.Unlock()
	return Stats{
		Refreshes: c.refreshes.Load(), RefreshErrors: c.refreshErrors.Load(), Rotations: c.rotations.Load(),
		Conflicts: c.conflicts.Load(), Fallbacks: c.fallbacks.Load(), Rejoins: c.rejoins.Load(),
		Foreign: c.foreign.Load(), Tampered: c.tampered.Load(), Local: local, Keys: n,
	}
}

// Names returns the names of the fleet keys this server holds, oldest
// first, and whether it now encrypts with them (false: host-local keys).
func (r *Ring) Names() ([][sslsession.TicketKeyNameSize]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][sslsession.TicketKeyNameSize]byte
	for _, e := range r.fleet {
		out = append(out, e.key.Name())
	}
	return out, !r.isLocal
}

// Close stops the background refresh. The contexts keep the last ring.
func (r *Ring) Close() error {
	r.closeOnce.Do(func() { close(r.stop) })
	if r.looping {
		<-r.done
	}
	return nil
}

func (r *Ring) loop() {
	defer close(r.done)
	t := time.NewTicker(r.refresh)
	defer t.Stop()
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-r.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		_ = r.Sync(ctx)
		cancel()
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

// Sync reads the fleet's ring now, rotates it when its next key has become
// the current one, publishes the result to the contexts and returns the
// Redis or sealing error, if any (counted in Stats). On error the contexts
// keep their ring, or go to host-local keys when it has no key left to
// encrypt with.
func (r *Ring) Sync(ctx context.Context) error {
	err := r.sync(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if err != nil {
		r.failed = true
	}
	if err != nil && !r.isLocal && r.outlived(r.fleet, now) {
		r.isLocal = true
		r.stats.fallbacks.Add(1)
		r.local, _ = r.rotate(nil, now)
		r.log.Warn("ticketring: the fleet's ring was not refreshed in time; issuing tickets under host-local keys (they resume on this host only)", "key", r.rkey, "error", err)
	}
	if r.isLocal {
		// Keep the local keys rotating too.
		if local, rerr := r.rotate(r.local, now); rerr == nil {
			r.local = local
		}
	}
	r.publishLocked(now)
	return err
}

// ringState is what a GET found.
type ringState int

const (
	stateEmpty ringState = iota
	stateOK
	stateForeign
	stateTampered
)

func (r *Ring) sync(ctx context.Context) error {
	for attempt := 0; attempt < 4; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		raw, err := r.client.Get(cctx, r.rkey).Bytes()
		cancel()
		if err != nil && !errors.Is(err, redis.Nil) {
			r.stats.refreshErrors.Add(1)
			return fmt.Errorf("ticketring: GET: %w", err)
		}
		now := time.Now()
		state, entries := stateEmpty, []entry(nil)
		if err == nil {
			state, entries = r.open(raw)
		}
		switch state {
		case stateForeign:
			r.stats.foreign.Add(1)
			if !r.loggedForeign.Swap(true) {
				r.log.Error("ticketring: the ring in Redis is sealed with keys this server does not have; issuing tickets under host-local keys, which other servers will not resume (check the sealing keys)", "key", r.rkey)
			}
			return errForeign
		case stateTampered:
			r.stats.tampered.Add(1)
			if !r.loggedTamper.Swap(true) {
				r.log.Error("ticketring: the ring in Redis does not open under this server's sealing keys (tampered with, or corrupt); replacing it", "key", r.rkey)
			}
			entries = nil
		}
		base := entries
		if state != stateOK {
			// Empty (Redis restarted, or first start) or tampered: carry
			// over the fleet keys this server still has, so that tickets
			// already issued keep resuming across the fleet.
			r.mu.Lock()
			if !r.outlived(r.fleet, now) {
				base = append([]entry(nil), r.fleet...)
			}
			r.mu.Unlock()
		}
		next, err := r.rotate(base, now)
		if err != nil {
			return err
		}
		if state == stateOK && sameRing(next, entries) {
			r.adopt(entries, now)
			r.stats.refreshes.Add(1)
			return nil
		}
		if fn := r.beforeWrite; fn != nil {
			fn()
		}
		sealed, err := r.seal(next)
		if err != nil {
			return err
		}
		var old string
		if state != stateEmpty {
			old = string(raw)
		}
		ttl := time.Until(next[len(next)-1].start.Add(r.interval + r.lifetime))
		cctx, cancel = context.WithTimeout(ctx, r.timeout)
		won, err := casScript.Run(cctx, r.client, []string{r.rkey}, old, sealed, ttl.Milliseconds()).Int()
		cancel()
		if err != nil {
			r.stats.refreshErrors.Add(1)
			return fmt.Errorf("ticketring: write: %w", err)
		}
		if won == 1 {
			r.stats.rotations.Add(1)
			r.adopt(next, now)
			return nil
		}
		r.stats.conflicts.Add(1) // another server wrote first: read its ring
	}
	return errors.New("ticketring: the ring kept changing under this server's writes")
}

var errForeign = errors.New("ticketring: the ring is sealed with other keys")

// casScript sets KEYS[1] to ARGV[2] (TTL ARGV[3] ms) only if it still holds
// ARGV[1] ("" for none).
var casScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if (cur == false and ARGV[1] == '') or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
`)

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

// rotate returns ring pruned of keys past their end and, when no key is
// left to take over after the current one, with a new next key: it starts
// one Interval after the last key did, and at least half an Interval from
// now so that every server reads it before anyone encrypts with it.
func (r *Ring) rotate(ring []entry, now time.Time) ([]entry, error) {
	var out []entry
	for i, e := range ring {
		if i+1 < len(ring) && !r.until(ring, i).After(now) {
			continue
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		k, err := sslsession.NewTicketKey()
		if err != nil {
			return nil, err
		}
		out = append(out, entry{key: k, start: now.Truncate(time.Millisecond)})
	}
	if last := out[len(out)-1]; !last.start.After(now) {
		start := last.start.Add(r.interval)
		if start.Before(now.Add(r.interval / 2)) {
			start = now.Add(r.interval)
		}
		k, err := sslsession.NewTicketKey()
		if err != nil {
			return nil, err
		}
		out = append(out, entry{key: k, start: start.Truncate(time.Millisecond)})
	}
	return out, nil
}

// until is when ring[i] stops decrypting: Lifetime after its successor
// takes over (the last key has no end).
func (r *Ring) until(ring []entry, i int) time.Time {
	if i+1 >= len(ring) {
		return time.Time{}
	}
	return ring[i+1].start.Add(r.lifetime)
}

// outlived reports whether ring has no key to encrypt with at now: its
// last key's turn is over.
func (r *Ring) outlived(ring []entry, now time.Time) bool {
	return len(ring) == 0 || !ring[len(ring)-1].start.Add(r.interval).After(now)
}

// adopt makes ring the fleet's ring; keys of the previous one that it
// dropped early (another server's fresh ring after Redis lost its data)
// still decrypt until their end.
func (r *Ring) adopt(ring []entry, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retireLocked(r.fleet, ring, now)
	r.fleet = ring
	if r.isLocal && !r.outlived(ring, now) {
		r.isLocal = false
		if r.failed {
			r.stats.rejoins.Add(1)
			r.log.Info("ticketring: issuing tickets under the fleet's ring again", "key", r.rkey)
		}
		r.retireLocked(r.local, nil, now)
		r.local = nil
	}
	r.failed = false
}

// retireLocked moves the keys of old not in keep into past.
func (r *Ring) retireLocked(old, keep []entry, now time.Time) {
	for i, e := range old {
		found := false
		for _, k := range keep {
			if k.key.Name() == e.key.Name() {
				found = true
				break
			}
		}
		until := r.until(old, i)
		if until.IsZero() {
			until = e.start.Add(r.interval + r.lifetime)
		}
		if !found && until.After(now) {
			r.past = append(r.past, retired{key: e.key, start: e.start, until: until})
		}
	}
}

// ringLocked is the ring the contexts get: the encrypting set (fleet or
// local) and every other key that still decrypts.
func (r *Ring) ringLocked(now time.Time) []sslsession.TicketRingKey {
	var out []sslsession.TicketRingKey
	seen := map[[sslsession.TicketKeyNameSize]byte]bool{}
	add := func(ring []entry, encrypt bool) {
		for i, e := range ring {
			until := r.until(ring, i)
			if !encrypt && until.IsZero() {
				until = e.start.Add(r.interval + r.lifetime)
			}
			if seen[e.key.Name()] || (!until.IsZero() && !until.After(now)) {
				continue
			}
			seen[e.key.Name()] = true
			out = append(out, sslsession.TicketRingKey{Key: e.key, Encrypt: encrypt, Start: e.start, Until: until})
		}
	}
	if r.isLocal {
		add(r.local, true)
		add(r.fleet, false)
	} else {
		add(r.fleet, true)
		add(r.local, false)
	}
	past := r.past[:0]
	for _, p := range r.past {
		if p.until.After(now) {
			past = append(past, p)
			if !seen[p.key.Name()] {
				seen[p.key.Name()] = true
				out = append(out, sslsession.TicketRingKey{Key: p.key, Start: p.start, Until: p.until})
			}
		}
	}
	r.past = past
	if len(out) > 256 {
		out = out[len(out)-256:]
	}
	return out
}

func (r *Ring) publishLocked(now time.Time) {
	ring := r.ringLocked(now)
	r.nkeys = len(ring)
	for _, sc := range r.ctxs {
		if err := sc.SetTicketKeys(ring); err != nil {
			r.log.Error("ticketring: publishing the ring", "error", err)
		}
	}
}

// The sealed ring:
//
//	version (1 byte, 1) | key ID (4 bytes) | nonce (12 bytes) | AES-GCM(payload)
//
// with the version, the key ID and the Redis key as additional data. The
// payload is a count (2 bytes) and, per key, its start in Unix
// milliseconds (8 bytes) and its sslsession.TicketKeySize bytes.
const (
	version   = 1
	keyIDLen  = 4
	headerLen = 1 + keyIDLen
	entryLen  = 8 + sslsession.TicketKeySize
	maxKeys   = 64
)

func keyID(k []byte) [keyIDLen]byte {
	h := sha256.New()
	h.Write([]byte("sslsession ticketring key id\x00"))
	h.Write(k)
	var id [keyIDLen]byte
	copy(id[:], h.Sum(nil))
	return id
}

func (r *Ring) seal(ring []entry) ([]byte, error) {
	payload := make([]byte, 2, 2+len(ring)*entryLen)
	defer clear(payload)
	binary.BigEndian.PutUint16(payload, uint16(len(ring)))
	for _, e := range ring {
		payload = binary.BigEndian.AppendUint64(payload, uint64(e.start.UnixMilli()))
		kb := e.key.Bytes()
		payload = append(payload, kb...)
		clear(kb)
	}
	aead := r.aeads[0]
	out := make([]byte, headerLen+aead.NonceSize(), headerLen+aead.NonceSize()+len(payload)+aead.Overhead())
	out[0] = version
	copy(out[1:headerLen], r.ids[0][:])
	if _, err := rand.Read(out[headerLen:]); err != nil {
		return nil, fmt.Errorf("ticketring: nonce: %w", err)
	}
	return aead.Seal(out, out[headerLen:], payload, r.additional(out[:headerLen])), nil
}

func (r *Ring) additional(header []byte) []byte {
	return append(append([]byte(nil), header...), r.rkey...)
}

func (r *Ring) open(raw []byte) (ringState, []entry) {
	if len(raw) < headerLen || raw[0] != version {
		return stateTampered, nil
	}
	for i, aead := range r.aeads {
		if !bytes.Equal(raw[1:headerLen], r.ids[i][:]) {
			continue
		}
		n := aead.NonceSize()
		if len(raw) < headerLen+n+aead.Overhead() {
			return stateTampered, nil
		}
		payload, err := aead.Open(nil, raw[headerLen:headerLen+n], raw[headerLen+n:], r.additional(raw[:headerLen]))
		if err != nil {
			return stateTampered, nil
		}
		defer clear(payload)
		ring, ok := parse(payload)
		if !ok {
			return stateTampered, nil
		}
		return stateOK, ring
	}
	return stateForeign, nil
}

func parse(p []byte) ([]entry, bool) {
	if len(p) < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if n == 0 || n > maxKeys || len(p) != n*entryLen {
		return nil, false
	}
	ring := make([]entry, n)
	for i := range ring {
		ring[i].start = time.UnixMilli(int64(binary.BigEndian.Uint64(p)))
		k, err := sslsession.ParseTicketKey(p[8:entryLen])
		if err != nil || k.IsZero() || (i > 0 && !ring[i].start.After(ring[i-1].start)) {
			return nil, false
		}
		ring[i].key = k
		p = p[entryLen:]
	}
	return ring, true
}
