package sslsession

import (
	"context"
	"errors"
	"time"
)

// Errors of the session store bridge.
var (
	// ErrNotFound: a SessionStore has no session under the ID (or it
	// expired). The handshake becomes a full one.
	ErrNotFound = errors.New("sslsession: session not in store")
	// ErrInvalidValue: a SessionStore found a value under the ID that it
	// cannot return: corrupt, or moved from another ID. The bridge counts it
	// in Metrics().Store.Invalid and treats it as a miss. (A value sealed
	// with a key this server lacks is not invalid: redisstore returns
	// ErrNotFound for it, so that a rotation loses nothing.)
	ErrInvalidValue = errors.New("sslsession: invalid value in session store")
	// ErrInCallback: a cache call (Flush, AddSession, RemoveSession,
	// SetStore, ClearStore) was made from inside one of OpenSSL's session
	// callbacks, where OpenSSL may hold the cache lock: it would deadlock,
	// so it is refused.
	ErrInCallback = errors.New("sslsession: cache call from inside an OpenSSL session callback")
	// ErrCacheInUse: the context already has a client session cache; a
	// context has at most one.
	ErrCacheInUse = errors.New("sslsession: context already has a client session cache")
)

// SessionStore is a server-side session cache outside OpenSSL: in memory
// (MemoryStore), or shared by a fleet of servers (package redisstore), so
// that a session made by one server resumes on another. Install one with
// Ctx.SetStore.
//
// A store deals in session IDs and values, never in SSL_SESSION pointers,
// so its values can cross processes. A value is the session's DER
// (i2d_SSL_SESSION(3)) followed by a tag under StoreOptions.IntegrityKey,
// or the bare DER for a ValueAuthenticator. The DER holds the session's
// master key: a store that leaves the process must protect it (redisstore
// seals it with AES-GCM).
//
// How the bridge calls the store:
//
//   - Put, when OpenSSL's new-session callback reports a new server session
//     (SSL_CTX_sess_set_new_cb(3)), on the handshake's goroutine, inside
//     the handshake; with StoreOptions.AsyncPut, later, on the bridge's
//     worker goroutine. expires is the session's creation time plus its
//     timeout: the store should forget the session then.
//   - Get, when a client offers a session ID (or, in TLS 1.3, a stateful
//     ticket) that OpenSSL's internal cache does not hold
//     (SSL_CTX_sess_set_get_cb(3); always with CacheNoInternalLookup), on
//     the handshake's goroutine. The handshake waits for it. A TLS 1.3
//     handshake with a HelloRetryRequest looks the ticket up twice, once
//     per ClientHello.
//   - Delete, only with StoreOptions.DeleteOnRemove, when OpenSSL removes an
//     unexpired session from its cache (SSL_CTX_sess_set_remove_cb(3)),
//     always later, on the worker goroutine.
//
// What a store must do, and must not do:
//
//   - Be safe for concurrent use: every handshake calls it from its own
//     goroutine.
//   - Return promptly and honour ctx: it carries the per-call timeout
//     (StoreOptions.Timeout). A Get that has not returned by then is
//     abandoned (its goroutine left to finish) and the handshake goes on as
//     a full one; a store that ignores ctx only costs those goroutines.
//   - Return ErrNotFound (or an error wrapping it) for a missing or expired
//     session, and ErrInvalidValue for a value it cannot open. Any other
//     error counts in Metrics().Store.Errors. No error ever fails a handshake:
//     a failed Get makes it a full handshake, a failed Put or Delete only
//     costs a later resumption.
//   - Not call back into the cache of a Ctx (Flush, AddSession,
//     RemoveSession, SetStore, ClearStore) from its methods: OpenSSL runs
//     its callbacks with its cache lock held in places (flushes and
//     evictions, on 1.0.2 a lock shared by every SSL_CTX), so such a call
//     could deadlock. Those methods detect the callback thread and return
//     ErrInCallback instead.
//   - Not panic. A panic is recovered, counted as an error and treated as a
//     miss, but a panicking store is a bug.
//
// The bridge itself never runs a store method while OpenSSL holds its cache
// lock: the remove callback, the one OpenSSL calls under that lock, only
// queues the Delete (a bounded queue; when it is full the Delete is dropped
// and counted in Metrics().Store.Dropped), so a slow store never stalls other
// handshakes behind the lock.
type SessionStore interface {
	// Put stores der, the session's DER, under id until expires.
	Put(ctx context.Context, id, der []byte, expires time.Time) error
	// Get returns the DER stored under id, ErrNotFound, or
	// ErrInvalidValue.
	Get(ctx context.Context, id []byte) ([]byte, error)
	// Delete forgets id. Deleting a missing ID is not an error.
	Delete(ctx context.Context, id []byte) error
}

// StoreOptions configures Ctx.SetStore. The zero value is ready to use.
type StoreOptions struct {
	// Timeout bounds each store call (the ctx passed to Put, Get and
	// Delete). Default 100ms.
	Timeout time.Duration
	// AsyncPut stores new sessions from a worker goroutine instead of
	// inside the handshake: full handshakes do not wait for the store, but
	// a client that reconnects to another server at once may find its
	// session not stored yet (a full handshake, never an error).
	AsyncPut bool
	// DeleteOnRemove deletes a session from the store when OpenSSL removes
	// it from its own cache before it expires. Off by default: OpenSSL
	// reports removals that are local housekeeping (the cache full, a
	// flush, the SSL_CTX freed) through the same callback as an explicit
	// RemoveSession or a connection that ended without close_notify, and
	// for a store shared by a fleet the first kind must not delete a
	// session other servers may still resume (TLS 1.1 and later do not
	// require dropping a session after an unclean close). Removals of
	// expired sessions are never forwarded: the store expires them itself.
	DeleteOnRemove bool
	// QueueSize bounds the Puts (AsyncPut) and Deletes waiting for the
	// worker goroutine. Default 1024.
	QueueSize int
	// IntegrityKey authenticates the values the bridge gives the store:
	// each is the session's DER followed by an HMAC-SHA256 tag over the
	// session ID and the DER, and a value whose tag does not verify is a
	// miss counted invalid, never decoded. Without it a value that decodes
	// to the offered ID with another master key (damaged, spliced, or
	// written by anyone with access to the store) would make OpenSSL resume
	// with the wrong key and the handshake fail. Servers sharing a store
	// must share the key. Zero (the default): a key made at random once per
	// process, so contexts of one process sharing a store (MemoryStore)
	// need nothing. A ValueAuthenticator store (redisstore) gets bare DER
	// and the key is not used.
	IntegrityKey IntegrityKey
}

// StoreStats counts what the bridge did with a context's SessionStore. All
// counters only grow, from SetStore on.
type StoreStats struct {
	Puts    int64 `json:"puts"`    // Put calls
	Gets    int64 `json:"gets"`    // Get calls: server lookups that reached the store
	Hits    int64 `json:"hits"`    // Gets that gave OpenSSL a session
	Misses  int64 `json:"misses"`  // Gets that did not: not found, expired, invalid, or an error
	Deletes int64 `json:"deletes"` // Delete calls
	Errors  int64 `json:"errors"`  // store calls that failed (timeouts and panics included), and sessions that could not be encoded
	Invalid int64 `json:"invalid"` // values that were unusable: ErrInvalidValue, undecodable DER, or another session's ID
	// NewerFormat counts values that are sessions a newer OpenSSL wrote
	// (ErrNewerFormat): in a fleet midway through an upgrade, not
	// tampering. Like every unusable value they are misses, and the bridge
	// never deletes them.
	NewerFormat int64 `json:"newer_format"`
	Dropped     int64 `json:"dropped"` // queued Puts and Deletes dropped: queue full, or the store cleared first
}
