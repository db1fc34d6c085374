// Package ticketring gives a fleet of TLS servers one ring of session-ticket
// keys, kept in the Redis they already share and rotated by the servers
// themselves: a ticket issued by any server resumes on every other, with no
// key file to generate, copy or rotate by hand, and no Redis call during a
// handshake.
//
// The ring is one Redis string, sealed with AES-GCM under the fleet's
// sealing keys (the same keys as redisstore's). Each server reads it in the
// background and publishes it to its contexts (sslsession.Ctx.SetTicketKeys),
// where OpenSSL's ticket callback uses it from C memory. Keys take turns: a
// key is published one Interval before it starts, encrypts for one
// Interval, and decrypts for Lifetime after its turn. Servers that race to
// rotate produce one ring: a write only succeeds against the value it was
// computed from (a Lua compare-and-set on one key, so it works on Redis
// Cluster too).
//
// The schedule runs on Redis's clock, read with the ring: servers whose
// clocks disagree still rotate at the same instants, and a server whose
// clock is far off is counted and logged, not followed. The sealed ring
// carries a generation: a ring older than one a server has seen (Redis
// restored from a snapshot, a replayed value, a write lost in a failover)
// is replaced, never adopted, and a key whose turn is over never encrypts
// again, whatever a read returns.
//
// Failures never fail a handshake. With Redis down or slow a server keeps
// the ring it has; when the ring's last key's turn ends it goes on with
// keys of its own (its tickets then resume on it alone), counts it, and
// rejoins the fleet's ring when Redis answers again. A server that starts
// with Redis down serves at once with its own keys. A value under the
// ring's key that does not open — forged, corrupt, sealed with a key this
// server lacks, too large, not a string — is never trusted for what its
// header claims: it is counted, logged once and replaced with a ring of the
// keys the server holds, so a fleet heals from it without an operator.
// docs/fleet.md has the limits and what each fault does.
package ticketring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/redisclient"
)

// Defaults and limits, and why.
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
	// MaxKeys bounds the fleet's ring. A ring holds ceil(Lifetime/Interval)
	// + 3 keys at most (the keys still decrypting, the current one and the
	// next); New refuses Options that would need more. An hour's Interval
	// allows MaxLifetime; 15 minutes allow 2.6 days.
	MaxKeys = 256
	// DefaultMaxSkew is how far this server's clock may be from Redis's
	// before it is counted and logged.
	DefaultMaxSkew = 5 * time.Minute
	// DefaultPrefix names the ring's Redis key: "{sslsession-tickets}:ring".
	DefaultPrefix = "sslsession-tickets"
	// maxPublish bounds the keys given to a context: the fleet's, this
	// server's own and retired ones.
	maxPublish = sslsession.MaxTicketKeys
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
	// stored in clear. Rotate them as redisstore's (docs/fleet.md): a key
	// goes into every server's list before any server seals with it.
	Keys [][]byte
	// Interval is how long each key encrypts new tickets, and how long
	// before its turn it is published. Default DefaultInterval; at least
	// 100ms.
	Interval time.Duration
	// Lifetime is how long a key decrypts after its turn. At most
	// MaxLifetime, and at most MaxKeys-3 Intervals. Default
	// DefaultLifetime, or MaxKeys-3 Intervals when that is shorter.
	Lifetime time.Duration
	// Refresh is how often the ring is read from Redis. Default a quarter
	// of Interval, at most a minute; at most half an Interval, so that
	// every server reads each key before it starts.
	Refresh time.Duration
	// Timeout bounds each Redis call. Default one second: calls are made in
	// the background, never during a handshake. The go-redis client must
	// honour context deadlines (ContextTimeoutEnabled).
	Timeout time.Duration
	// MaxSkew is how far this server's clock may be from Redis's before it
	// is counted (Stats.Skewed) and logged, and how far past one Interval
	// ahead of Redis's clock a key of the ring may start before it is taken
	// for the work of a wrong clock and dropped. The schedule follows
	// Redis's clock either way. Default DefaultMaxSkew.
	MaxSkew time.Duration
	// Clock is this server's clock. Default time.Now; simulations give
	// their own. Contexts decide which key encrypts by the process's clock:
	// the ring publishes its times shifted by the difference.
	Clock func() time.Time
	// OnPublish, if set, is called after the keys published to the
	// contexts change, with the time and the keys as the contexts got them
	// (keyfile's writers fit it: they keep nginx's and haproxy's key files
	// in step with the ring). It runs on the refreshing goroutine: it must
	// not block for long. A panic in it is recovered, counted and logged.
	OnPublish func(now time.Time, keys []sslsession.TicketRingKey)
	// Logger receives one line when the server falls back to its own keys,
	// rejoins the fleet, first finds a ring it cannot read, and for each
	// other anomaly (once per episode). Keys are never logged. Default
	// slog.Default().
	Logger *slog.Logger
}

// ErrOptions is wrapped by New's errors about Options.
var ErrOptions = errors.New("ticketring: invalid options")

// Stats counts what a Ring did, and names (never the secrets) the keys it
// encrypts with.
type Stats struct {
	Refreshes     int64 `json:"refreshes"`      // rings read from Redis and adopted
	RefreshErrors int64 `json:"refresh_errors"` // Redis errors and timeouts
	Rotations     int64 `json:"rotations"`      // rings this server wrote: created, rotated or repaired
	Conflicts     int64 `json:"conflicts"`      // writes lost to another server's: read again
	Fallbacks     int64 `json:"fallbacks"`      // switches to host-local keys
	Rejoins       int64 `json:"rejoins"`        // switches back to the fleet's ring
	Foreign       int64 `json:"foreign"`        // values naming a sealing key this server lacks: replaced
	Tampered      int64 `json:"tampered"`       // values that are not a ring (do not open or parse, too large, not a string): replaced
	Recreated     int64 `json:"recreated"`      // rings missing from Redis (first start, flushed, expired): written anew
	Rollbacks     int64 `json:"rollbacks"`      // rings older than one this server saw (restored, replayed): replaced
	FutureKeys    int64 `json:"future_keys"`    // keys starting too far ahead of Redis's clock: dropped
	Skewed        int64 `json:"skewed"`         // times this server's clock was found more than MaxSkew from Redis's
	Splits        int64 `json:"splits"`         // times this server was found encrypting under another key than the ring's
	HookPanics    int64 `json:"hook_panics"`    // panics recovered from Options.OnPublish
	PublishErrors int64 `json:"publish_errors"` // contexts that refused a ring (they keep the previous one)
	Local         bool  `json:"local"`          // now encrypting with host-local keys
	Split         bool  `json:"split"`          // now encrypting under another key than the ring's
	Keys          int   `json:"keys"`           // keys published to the contexts
	// Generation counts the writes of the ring this server last read or
	// wrote.
	Generation uint64 `json:"generation"`
	// ClockOffset is Redis's clock minus this server's, as last measured.
	ClockOffset time.Duration `json:"clock_offset_ns"`
	// Encrypting names (hex) the key this server's contexts encrypt new
	// tickets with now; RingEncrypting the ring's key of the moment. They
	// differ while Split or Local.
	Encrypting     string `json:"encrypting"`
	RingEncrypting string `json:"ring_encrypting"`
}

type counters struct {
	refreshes, refreshErrors, rotations, conflicts, fallbacks, rejoins, foreign, tampered,
	recreated, rollbacks, futureKeys, skewed, splits, hookPanics, publishErrors atomic.Int64
}

// Ring is one server's view of the fleet's ring. It is safe for concurrent
// use.
type Ring struct {
	client    redis.UniversalClient
	rkey      string
	interval  time.Duration
	lifetime  time.Duration
	refresh   time.Duration
	timeout   time.Duration
	maxSkew   time.Duration
	bound     int
	clock     func() time.Time
	onPublish func(time.Time, []sslsession.TicketRingKey)
	log       *slog.Logger
	aeads     []cipher.AEAD
	ids       [][keyIDLen]byte
	stats     counters

	syncMu sync.Mutex // one Sync at a time

	mu        sync.Mutex
	fleet     []entry       // the fleet's ring as last read or written; nil before
	gen       uint64        // the highest generation read or written
	offset    time.Duration // Redis's clock minus this server's
	local     []entry       // this server's own keys: the standby, and its rotation
	past      []retired     // keys of earlier rings, decrypt only
	ctxs      []*sslsession.Ctx
	published []sslsession.TicketRingKey // in the fleet's time
	pubGen    uint64                     // counts changes of published
	spare     []sslsession.TicketRingKey // keysLocked's buffer
	wallBuf   []sslsession.TicketRingKey // the contexts' copy, in the process's clock
	shift     time.Duration              // process clock − fleet time, as published
	stale     bool                       // a context may hold other keys than published
	seen      map[[sslsession.TicketKeyNameSize]byte]bool
	onLocal   bool // the contexts encrypt with a host-local key
	failed    bool // a Sync failed since the last good one: going back to the fleet is a rejoin
	split     bool
	logged    map[string]bool // anomalies logged in the current episode

	lastRaw  []byte // the last value opened, and what it held
	lastOpen struct {
		state   valueState
		gen     uint64
		entries []entry
	}

	redisClock  func() time.Time // tests: Redis's clock in a simulation
	beforeWrite func()           // tests: runs between reading and writing

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
		client: client, interval: opts.Interval, lifetime: opts.Lifetime, refresh: opts.Refresh,
		timeout: opts.Timeout, maxSkew: opts.MaxSkew, clock: opts.Clock, onPublish: opts.OnPublish,
		log: opts.Logger, logged: map[string]bool{},
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
		r.lifetime = min(DefaultLifetime, (MaxKeys-3)*r.interval)
	}
	if r.lifetime < 0 || r.lifetime > MaxLifetime {
		return nil, fmt.Errorf("%w: Lifetime %v is not within (0, %v] (RFC 8446 §4.6.1)", ErrOptions, r.lifetime, MaxLifetime)
	}
	turns := (r.lifetime + r.interval - 1) / r.interval
	if r.bound = int(turns) + 3; r.bound > MaxKeys {
		return nil, fmt.Errorf("%w: Lifetime %v is %d Intervals of %v; a ring would hold %d keys, more than MaxKeys (%d): "+
			"use an Interval of at least %v or a shorter Lifetime", ErrOptions, r.lifetime, turns, r.interval, r.bound, MaxKeys,
			(r.lifetime/(MaxKeys-3)).Truncate(time.Second)+time.Second)
	}
	switch {
	case r.refresh == 0:
		r.refresh = min(r.interval/4, time.Minute)
	case r.refresh < 0 || r.refresh > r.interval/2:
		return nil, fmt.Errorf("%w: Refresh %v is not within (0, Interval/2 = %v]: servers would learn a key only once it encrypts",
			ErrOptions, r.refresh, r.interval/2)
	}
	if r.timeout <= 0 {
		r.timeout = time.Second
	}
	if r.maxSkew == 0 {
		r.maxSkew = DefaultMaxSkew
	}
	if r.maxSkew < 0 {
		return nil, fmt.Errorf("%w: MaxSkew %v is negative", ErrOptions, r.maxSkew)
	}
	if r.clock == nil {
		r.clock = time.Now
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
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.localLocked(r.nowLocked()); err != nil {
		return nil, err
	}
	r.onLocal = true
	return r, nil
}

// Key is the ring's Redis key.
func (r *Ring) Key() string { return r.rkey }

// nowLocked is the fleet's time: this server's clock corrected by the
// offset to Redis's measured at the last read.
func (r *Ring) nowLocked() time.Time { return r.clock().Add(r.offset) }

// Install publishes the ring to sc (sslsession.Ctx.SetTicketKeys) and keeps
// it up to date there until Close.
func (r *Ring) Install(sc *sslsession.Ctx) error {
	if sc == nil {
		return fmt.Errorf("%w: nil context", ErrOptions)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.nowLocked()
	if err := r.localLocked(now); err != nil {
		return err
	}
	keys := r.keysLocked(now)
	if err := sc.SetTicketKeys(r.wallKeys(keys, now)); err != nil {
		return err
	}
	r.ctxs = append(r.ctxs, sc)
	// The others hold what was published last; if that differs, the next
	// Sync gives every context the same ring again.
	r.stale = r.stale || !sameKeys(keys, r.published)
	return nil
}

// Stats returns the ring's counters.
func (r *Ring) Stats() Stats {
	c := &r.stats
	r.mu.Lock()
	now := r.nowLocked()
	st := Stats{Local: r.onLocal, Split: r.split, Keys: len(r.published), Generation: r.gen, ClockOffset: r.offset}
	if k, ok := encrypting(r.published, now); ok {
		st.Encrypting = keyName(k)
	}
	if k, ok := r.fleetKeyAt(now); ok {
		st.RingEncrypting = keyName(k)
	}
	r.mu.Unlock()
	st.Refreshes, st.RefreshErrors, st.Rotations = c.refreshes.Load(), c.refreshErrors.Load(), c.rotations.Load()
	st.Conflicts, st.Fallbacks, st.Rejoins = c.conflicts.Load(), c.fallbacks.Load(), c.rejoins.Load()
	st.Foreign, st.Tampered, st.Recreated = c.foreign.Load(), c.tampered.Load(), c.recreated.Load()
	st.Rollbacks, st.FutureKeys, st.Skewed = c.rollbacks.Load(), c.futureKeys.Load(), c.skewed.Load()
	st.Splits, st.HookPanics, st.PublishErrors = c.splits.Load(), c.hookPanics.Load(), c.publishErrors.Load()
	return st
}

func keyName(k sslsession.TicketKey) string {
	n := k.Name()
	return hex.EncodeToString(n[:])
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
	return out, !r.onLocal
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		_ = r.Sync(ctx)
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

// Sync reads the fleet's ring now, rotates or repairs it when it must,
// publishes the result to the contexts and returns the Redis or sealing
// error, if any (counted in Stats). On error the contexts keep their ring,
// whose standby host-local key takes over when the ring's last key's turn
// ends.
func (r *Ring) Sync(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	err := r.sync(ctx)
	r.mu.Lock()
	now := r.nowLocked()
	keys, changed := r.publishLocked(now, err)
	hook := r.onPublish
	if changed && hook != nil {
		keys = slices.Clone(keys) // the ring's buffer: the hook gets its own
	}
	r.mu.Unlock()
	if changed && hook != nil {
		r.callHook(hook, keys)
	}
	return err
}

func (r *Ring) callHook(hook func(time.Time, []sslsession.TicketRingKey), keys []sslsession.TicketRingKey) {
	defer func() {
		if p := recover(); p != nil {
			r.stats.hookPanics.Add(1)
			r.log.Error("ticketring: OnPublish panicked; the ring is unaffected", "panic", fmt.Sprint(p))
		}
	}()
	hook(time.Now(), keys)
}

func (r *Ring) sync(ctx context.Context) error {
	for attempt := 0; attempt < 4; attempt++ {
		rd, err := r.read(ctx)
		if err != nil {
			r.stats.refreshErrors.Add(1)
			return fmt.Errorf("ticketring: read: %w", err)
		}
		r.mu.Lock()
		r.observeClockLocked(rd)
		now := r.nowLocked()
		state, gen, entries := stateEmpty, uint64(0), []entry(nil)
		switch rd.mode {
		case modeString:
			state, gen, entries = r.openCached(rd.raw)
		case modeBig, modeType:
			state = stateTampered
		}
		base, repair := r.baseLocked(state, gen, entries, now)
		newGen := max(gen, r.gen) + 1
		r.mu.Unlock()

		next, err := r.rotate(base, now)
		if err != nil {
			return err
		}
		if !repair && sameRing(next, entries) {
			r.adopt(entries, gen, now)
			r.stats.refreshes.Add(1)
			return nil
		}
		if fn := r.beforeWrite; fn != nil {
			fn()
		}
		sealed, err := r.seal(newGen, next)
		if err != nil {
			return err
		}
		ttl := r.until(next, len(next)-1).Sub(now)
		won, err := r.write(ctx, rd, sealed, ttl)
		if err != nil {
			r.stats.refreshErrors.Add(1)
			return fmt.Errorf("ticketring: write: %w", err)
		}
		if won {
			r.stats.rotations.Add(1)
			r.adopt(next, newGen, now)
			return nil
		}
		r.stats.conflicts.Add(1) // another server wrote first: read its ring
	}
	return errors.New("ticketring: the ring kept changing under this server's writes")
}

// openCached is open, skipped when the value is the one read last time
// (most reads: the ring changes once an Interval).
func (r *Ring) openCached(raw []byte) (valueState, uint64, []entry) {
	if r.lastRaw != nil && string(raw) == string(r.lastRaw) {
		return r.lastOpen.state, r.lastOpen.gen, r.lastOpen.entries
	}
	state, gen, entries := r.open(raw)
	r.lastRaw = raw
	r.lastOpen.state, r.lastOpen.gen, r.lastOpen.entries = state, gen, entries
	return state, gen, entries
}

// observeClockLocked measures the offset to Redis's clock.
func (r *Ring) observeClockLocked(rd readResult) {
	r.offset = rd.redisNow.Sub(rd.hostNow)
	if r.offset > r.maxSkew || -r.offset > r.maxSkew {
		r.anomalyLocked("skew", &r.stats.skewed, slog.LevelWarn,
			"ticketring: this server's clock is far from Redis's; the ring follows Redis's clock", "offset", r.offset)
	} else {
		delete(r.logged, "skew")
	}
}

// anomalyLocked counts an anomaly and logs it once per episode: until a
// clean read ends it.
func (r *Ring) anomalyLocked(kind string, n *atomic.Int64, level slog.Level, msg string, args ...any) {
	if r.logged[kind] {
		if kind != "skew" && kind != "split" {
			n.Add(1)
		}
		return
	}
	n.Add(1)
	r.logged[kind] = true
	r.log.Log(context.Background(), level, msg, append(args, "key", r.rkey)...)
}

// baseLocked is the ring to rotate from after a read, and whether it must
// be written whatever rotate makes of it: a value that is not a ring this
// server can trust is replaced by the keys this server holds.
func (r *Ring) baseLocked(state valueState, gen uint64, entries []entry, now time.Time) ([]entry, bool) {
	mine := func() []entry { return append([]entry(nil), r.fleet...) }
	switch state {
	case stateEmpty:
		r.anomalyLocked("empty", &r.stats.recreated, slog.LevelInfo,
			"ticketring: no ring in Redis (first start, flushed or expired); writing one with the keys this server holds")
		return mine(), true
	case stateForeign:
		r.anomalyLocked("foreign", &r.stats.foreign, slog.LevelError,
			"ticketring: the value in Redis names a sealing key this server does not have; replacing it with the keys this server holds (if the fleet's servers hold different sealing keys, they now overwrite each other: check them)")
		return mine(), true
	case stateTampered:
		r.anomalyLocked("tampered", &r.stats.tampered, slog.LevelError,
			"ticketring: the value in Redis is not a ring this server can open (tampered with, corrupt, too large or not a string); replacing it")
		return mine(), true
	}
	if gen < r.gen {
		r.anomalyLocked("rollback", &r.stats.rollbacks, slog.LevelWarn,
			"ticketring: the ring in Redis is older than one this server read (Redis restored or a value replayed); writing the newer one back",
			"generation", gen, "seen", r.gen)
		if len(r.fleet) > 0 {
			return mine(), true
		}
	}
	limit := now.Add(r.interval + r.maxSkew)
	if n := len(entries); n > 0 && entries[n-1].start.After(limit) {
		kept := make([]entry, 0, n)
		for _, e := range entries {
			if !e.start.After(limit) {
				kept = append(kept, e)
			}
		}
		r.anomalyLocked("future", &r.stats.futureKeys, slog.LevelWarn,
			"ticketring: the ring has keys starting too far ahead of Redis's clock (written by a server with a wrong clock); dropping them",
			"dropped", n-len(kept))
		return kept, true
	}
	for _, kind := range []string{"empty", "foreign", "tampered", "rollback", "future"} {
		delete(r.logged, kind)
	}
	return entries, gen < r.gen
}

// adopt makes ring the fleet's ring; keys of the previous one that it
// dropped early still decrypt until their end.
func (r *Ring) adopt(ring []entry, gen uint64, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !sameRing(r.fleet, ring) {
		r.retireLocked(r.fleet, ring, now)
	}
	r.fleet = ring
	r.gen = max(r.gen, gen)
}

// publishLocked gives the contexts the ring as it is at now and tracks
// which key they encrypt with; it returns the keys as published and
// whether they changed.
func (r *Ring) publishLocked(now time.Time, syncErr error) ([]sslsession.TicketRingKey, bool) {
	if err := r.localLocked(now); err != nil {
		r.log.Error("ticketring: making a host-local key", "error", err)
	}
	keys := r.keysLocked(now)
	changed := !sameKeys(keys, r.published)
	// The contexts read the process's clock: the keys go to them shifted
	// by this host's view of the fleet's time, re-published only when the
	// keys or that shift changed, so a Sync that learns nothing costs no
	// cgo call and takes no lock the handshakes take.
	shift := time.Since(now)
	var wall []sslsession.TicketRingKey // nil when not re-published (and so not changed)
	if changed || r.stale || (shift-r.shift).Abs() > shiftSlack {
		r.wallBuf = shiftKeys(r.wallBuf[:0], keys, shift)
		wall = r.wallBuf
		r.stale, r.shift = false, shift
		for _, sc := range r.ctxs {
			if err := sc.SetTicketKeys(wall); err != nil {
				r.stale = true
				r.stats.publishErrors.Add(1)
				r.log.Error("ticketring: publishing the ring", "error", err)
			}
		}
	}
	r.spare, r.published = r.published, keys
	if changed {
		r.pubGen++
	}

	enc, _ := encrypting(keys, now)
	if len(r.ctxs) > 0 {
		// What the contexts really do, as their callback picks it.
		if name, ok := r.ctxs[0].EncryptingTicketKey(time.Now()); ok && name != enc.Name() {
			for _, k := range keys {
				if k.Key.Name() == name {
					enc = k.Key
				}
			}
		}
	}
	if syncErr != nil {
		r.failed = true
	}
	isLocal := false
	for _, e := range r.local {
		if e.key.Name() == enc.Name() {
			isLocal = true
		}
	}
	switch {
	case isLocal && !r.onLocal:
		r.stats.fallbacks.Add(1)
		r.log.Warn("ticketring: the fleet's ring was not refreshed in time; issuing tickets under host-local keys (they resume on this host only)",
			"key", r.rkey, "error", syncErr)
	case !isLocal && r.onLocal && len(r.fleet) > 0 && r.failed:
		r.stats.rejoins.Add(1)
		r.log.Info("ticketring: issuing tickets under the fleet's ring again", "key", r.rkey)
	}
	if syncErr == nil {
		r.failed = false
	}
	r.onLocal = isLocal
	// The fleet's time is known to this server within a round trip to
	// Redis: at a rotation, either neighbour is the ring's key.
	tol := min(time.Second, r.interval/4)
	ringKey, _ := r.fleetKeyAt(now)
	split := len(r.fleet) > 0
	for _, t := range []time.Time{now.Add(-tol), now, now.Add(tol)} {
		if k, ok := r.fleetKeyAt(t); ok && k.Name() == enc.Name() {
			split = false
		}
	}
	if split && !r.split {
		r.anomalyLocked("split", &r.stats.splits, slog.LevelWarn,
			"ticketring: this server encrypts under another key than the fleet's ring: its new tickets resume on it alone",
			"encrypting", enc, "ring", ringKey)
	} else if !split {
		delete(r.logged, "split")
	}
	r.split = split
	return wall, changed
}

// wallKeys shifts keys from the fleet's time (now) to the process's clock,
// which the contexts' callback reads.
func (r *Ring) wallKeys(keys []sslsession.TicketRingKey, now time.Time) []sslsession.TicketRingKey {
	return shiftKeys(nil, keys, time.Since(now))
}

// shiftSlack is how far this host's view of the fleet's time may drift
// (round-trip jitter to Redis) before the contexts get the ring again.
const shiftSlack = 50 * time.Millisecond

// shiftKeys appends keys to dst with their times moved by shift.
func shiftKeys(dst, keys []sslsession.TicketRingKey, shift time.Duration) []sslsession.TicketRingKey {
	for _, k := range keys {
		k.Start = k.Start.Add(shift)
		if !k.Until.IsZero() {
			k.Until = k.Until.Add(shift)
		}
		dst = append(dst, k)
	}
	return dst
}

func sameKeys(a, b []sslsession.TicketRingKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key.Name() != b[i].Key.Name() || a[i].Encrypt != b[i].Encrypt ||
			!a[i].Start.Equal(b[i].Start) || !a[i].Until.Equal(b[i].Until) {
			return false
		}
	}
	return true
}
