// Package redisstore is a sslsession.SessionStore on Redis, so that a fleet
// of servers behind a load balancer resumes each other's TLS sessions, as
// Apache httpd's mod_socache_redis does.
//
// Each session is one Redis string: the key is the prefix and the session
// ID in hex, the value the session's DER sealed with AES-GCM (the DER holds
// the master key), the TTL the session's remaining lifetime. Keys rotate
// (Options.Keys): new values are sealed with the first key, values sealed
// with any key given are opened, and a value sealed with a key this server
// lacks is left alone, never deleted.
//
// Failures never fail a handshake: every call is bounded by Options.Timeout
// and an error makes the handshake a full one (the sslsession bridge turns
// it into a cache miss and counts it).
//
// Nothing in Redis is trusted for its size: Get reads at most
// Options.MaxValueSize+1 bytes of a value (GETRANGE, one round trip, on a
// single key: plain Redis, Sentinel and Cluster alike), so a value a
// hostile writer made hundreds of megabytes long costs a lookup no more
// than a session does.
package redisstore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/redisclient"
)

// Options configures a Store.
type Options struct {
	// Prefix starts every key; default "sslsession:". Servers that must
	// not share sessions use different prefixes (or databases).
	Prefix string
	// Keys are AES keys (16, 24 or 32 bytes: AES-128, -192, -256) that seal
	// the values. Keys[0] seals new values; every key, and every OpenKeys
	// key, opens. With no keys, values are stored as the session's plain
	// DER: the master keys are then readable by anyone who can read Redis;
	// only do that on a private, trusted Redis. Servers with and without
	// keys can share a Redis while a fleet moves from one to the other:
	// each treats the other's values as misses and never deletes them
	// (Stats.Unsealed, Stats.UnknownKey).
	//
	// To rotate from K1 to K2 without any server losing a session, in three
	// rolling restarts: (1) every server gets K2 in OpenKeys (Keys {K1},
	// OpenKeys {K2}); (2) once all have it, every server seals with K2
	// (Keys {K2}, OpenKeys {K1}): a server still at step 1 opens what K2
	// seals, one at step 2 opens what K1 sealed; (3) after the session
	// timeout, drop K1. A value sealed with a key a server lacks is a miss
	// there, counted in Stats.UnknownKey and never deleted: another server
	// may hold the key.
	Keys [][]byte
	// OpenKeys only open values, never seal: a key being introduced (step 1
	// above) or retired (step 2).
	OpenKeys [][]byte
	// Timeout bounds each Redis call, default 100ms. It needs a client
	// that honours context deadlines (go-redis's ContextTimeoutEnabled);
	// New refuses clients that do not.
	Timeout time.Duration
	// KeepInvalid leaves values that cannot be opened in Redis (garbage,
	// tampered, truncated, or sealed with a known key that does not open
	// them). By default Get deletes them, so that they are not read again.
	// Values sealed with a key this server lacks are never deleted, nor
	// are the other side's values during a move between sealed and
	// unsealed (docs/fleet.md, "Moving between sealed and unsealed").
	// Values over MaxValueSize and keys of another Redis type are deleted
	// too (with UNLINK, which frees them off Redis's main thread) unless
	// KeepInvalid.
	KeepInvalid bool
	// MaxValueSize bounds the value Get reads, in bytes: default
	// DefaultMaxValueSize, at most MaxMaxValueSize. A longer value is never
	// read whole (only its first MaxValueSize+1 bytes cross the network);
	// it is a miss counted in Stats.Oversize and treated like an invalid
	// value. Put refuses a session whose value would be longer, since no
	// Get could read it back.
	MaxValueSize int
}

// DefaultMaxValueSize is Options.MaxValueSize's default, 64 KiB. A sealed
// session is a few hundred bytes, a few KiB with the peer's certificate
// chain in it (a client certificate).
const DefaultMaxValueSize = 64 << 10

// MaxMaxValueSize is the largest Options.MaxValueSize New accepts: the
// largest value that can hold a session the bridge would decode
// (sslsession.MaxDERSize) with room for the header, nonce and tags.
const MaxMaxValueSize = sslsession.MaxDERSize + 128

// Store is a sslsession.SessionStore on Redis. It is safe for concurrent
// use.
type Store struct {
	client      redis.UniversalClient
	prefix      string
	timeout     time.Duration
	keepInvalid bool
	maxValue    int
	aeads       []cipher.AEAD
	ids         [][keyIDLen]byte
	stats       counters
}

// Stats counts a Store's calls.
type Stats struct {
	Puts    int64 `json:"puts"`
	Gets    int64 `json:"gets"`
	Hits    int64 `json:"hits"`
	Misses  int64 `json:"misses"`
	Deletes int64 `json:"deletes"`
	Errors  int64 `json:"errors"`  // Redis errors and timeouts
	Invalid int64 `json:"invalid"` // values that could not be opened: deleted unless KeepInvalid
	// UnknownKey counts values sealed with a key this server lacks (another
	// server's, during a rotation; on an unsealed server, any sealed
	// value): misses, never deleted.
	UnknownKey int64 `json:"unknown_key"`
	// Unsealed counts, on a sealed server, unsealed values that hold a
	// session of the ID looked up: values an unsealed server wrote, during
	// a move to sealing. Misses, never deleted.
	Unsealed int64 `json:"unsealed"`
	// Oversize counts values over Options.MaxValueSize: found by Get (not
	// read whole; a miss, deleted unless KeepInvalid) or refused by Put.
	Oversize int64 `json:"oversize"`
	// WrongType counts keys that hold another Redis type than a string (a
	// list, a hash...): misses, deleted unless KeepInvalid.
	WrongType int64 `json:"wrong_type"`
}

type counters struct {
	puts, gets, hits, misses, deletes, errors, invalid, unknownKey atomic.Int64
	unsealed, oversize, wrongType                                  atomic.Int64
}

// Value format. A sealed value is
//
//	version (1 byte, 1) | key ID (4 bytes) | nonce (12 bytes) | AES-GCM(DER)
//
// with the version, the key ID and the session ID as additional data, so a
// value copied under another session's key does not open. The key ID is the
// start of SHA-256 over a label and the key: it picks the key to try without
// revealing it. An unsealed value is version 0 followed by the DER.
const (
	versionPlain  = 0
	versionSealed = 1
	keyIDLen      = 4
	headerLen     = 1 + keyIDLen
)

// errUnknownKey is open's answer for a value sealed with a key this store
// does not have.
var errUnknownKey = errors.New("redisstore: sealed with a key this server does not have")

// errUnsealed is a sealed store's answer for a value an unsealed store
// wrote for this session ID.
var errUnsealed = errors.New("redisstore: an unsealed value, written by an unsealed server")

// ErrValueTooLarge is wrapped by Get's error for a value over
// Options.MaxValueSize (with sslsession.ErrInvalidValue), and by Put's for
// a session too large to be stored.
var ErrValueTooLarge = errors.New("redisstore: value over the size limit")

// ErrWrongType is wrapped, with sslsession.ErrInvalidValue, by Get's error
// for a key that holds another Redis type than a string.
var ErrWrongType = errors.New("redisstore: key holds another Redis type than a string")

// ErrNoContextTimeout is New's error for a go-redis client whose
// ContextTimeoutEnabled is off: it would ignore the per-call timeout and
// could stall handshakes for its ReadTimeout (seconds) when Redis hangs.
var ErrNoContextTimeout = errors.New("redisstore: the go-redis client must have ContextTimeoutEnabled set, or per-call timeouts are ignored")

// New makes a Store on client.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: nil client")
	}
	if !redisclient.ContextTimeouts(client) {
		return nil, ErrNoContextTimeout
	}
	s := &Store{client: client, prefix: opts.Prefix, timeout: opts.Timeout, keepInvalid: opts.KeepInvalid,
		maxValue: opts.MaxValueSize}
	switch {
	case s.maxValue == 0:
		s.maxValue = DefaultMaxValueSize
	case s.maxValue < minValueSize || s.maxValue > MaxMaxValueSize:
		return nil, fmt.Errorf("redisstore: MaxValueSize %d is outside [%d, %d]", s.maxValue, minValueSize, MaxMaxValueSize)
	}
	if s.prefix == "" {
		s.prefix = "sslsession:"
	}
	if s.timeout <= 0 {
		s.timeout = 100 * time.Millisecond
	}
	if len(opts.Keys) == 0 && len(opts.OpenKeys) > 0 {
		return nil, errors.New("redisstore: OpenKeys without Keys (nothing would seal)")
	}
	for i, k := range append(append([][]byte{}, opts.Keys...), opts.OpenKeys...) {
		which := fmt.Sprintf("key %d", i)
		if i >= len(opts.Keys) {
			which = fmt.Sprintf("open key %d", i-len(opts.Keys))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %s: %w", which, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %s: %w", which, err)
		}
		s.aeads = append(s.aeads, aead)
		s.ids = append(s.ids, keyID(k))
	}
	return s, nil
}

// minValueSize is the smallest MaxValueSize New accepts: a sealed value
// of a one-byte DER.
const minValueSize = headerLen + 12 + 1 + 16

func keyID(k []byte) [keyIDLen]byte {
	h := sha256.New()
	h.Write([]byte("sslsession redisstore key id\x00"))
	h.Write(k)
	var id [keyIDLen]byte
	copy(id[:], h.Sum(nil))
	return id
}

// Key is the Redis key of a session ID.
func (s *Store) Key(id []byte) string { return s.prefix + hex.EncodeToString(id) }

// Sealed reports whether values are sealed (Options.Keys was given).
func (s *Store) Sealed() bool { return len(s.aeads) > 0 }

// AuthenticatesValues is Sealed: a sealed store's AES-GCM authenticates
// every value (sslsession.ValueAuthenticator), so the bridge gives it bare
// DER. An unsealed one gets DER tagged under StoreOptions.IntegrityKey.
func (s *Store) AuthenticatesValues() bool { return s.Sealed() }

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	c := &s.stats
	return Stats{
		Puts: c.puts.Load(), Gets: c.gets.Load(), Hits: c.hits.Load(), Misses: c.misses.Load(),
		Deletes: c.deletes.Load(), Errors: c.errors.Load(), Invalid: c.invalid.Load(), UnknownKey: c.unknownKey.Load(),
		Unsealed: c.unsealed.Load(), Oversize: c.oversize.Load(), WrongType: c.wrongType.Load(),
	}
}

func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, s.timeout)
}

// Put stores der under id with a TTL of the whole seconds until expires
// (at least one). A session that has already expired is not stored.
func (s *Store) Put(ctx context.Context, id, der []byte, expires time.Time) error {
	s.stats.puts.Add(1)
	left := time.Until(expires)
	if left <= 0 {
		return nil
	}
	ttl := time.Duration(math.Ceil(left.Seconds())) * time.Second
	value, err := s.seal(id, der)
	if err != nil {
		s.stats.errors.Add(1)
		return err
	}
	if len(value) > s.maxValue {
		s.stats.oversize.Add(1)
		return fmt.Errorf("%w: %d bytes, MaxValueSize %d", ErrValueTooLarge, len(value), s.maxValue)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.client.Set(ctx, s.Key(id), value, ttl).Err(); err != nil {
		s.stats.errors.Add(1)
		return fmt.Errorf("redisstore: SET: %w", err)
	}
	return nil
}

// Get returns the DER stored under id: sslsession.ErrNotFound when there is
// none, an error wrapping sslsession.ErrInvalidValue when the value does not
// open with any key, is over Options.MaxValueSize (ErrValueTooLarge) or is
// not a Redis string (ErrWrongType); such values are deleted unless
// Options.KeepInvalid. A value sealed with a key this server lacks, or
// written by the other side of a move between sealed and unsealed, is
// ErrNotFound and stays.
//
// The value is read with GETRANGE key 0 MaxValueSize: at most
// MaxValueSize+1 bytes, whatever the value's length, in one round trip.
// GETRANGE answers a missing key with an empty string, so an empty value
// is a miss too, left to its TTL (no store writes one).
func (s *Store) Get(ctx context.Context, id []byte) ([]byte, error) {
	s.stats.gets.Add(1)
	ctx, cancel := s.call(ctx)
	defer cancel()
	key := s.Key(id)
	value, err := s.client.GetRange(ctx, key, 0, int64(s.maxValue)).Bytes()
	switch {
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		s.stats.wrongType.Add(1)
		return nil, s.drop(ctx, key, ErrWrongType)
	case err != nil:
		s.stats.errors.Add(1)
		return nil, fmt.Errorf("redisstore: GETRANGE: %w", err)
	case len(value) == 0:
		// No key, or an empty value, which no store writes: a second
		// command to tell them apart would race with a Put of this ID
		// (the key may appear between the two), so both are a miss.
		s.stats.misses.Add(1)
		return nil, sslsession.ErrNotFound
	case len(value) > s.maxValue:
		s.stats.oversize.Add(1)
		return nil, s.drop(ctx, key, fmt.Errorf("%w (MaxValueSize %d)", ErrValueTooLarge, s.maxValue))
	}
	der, err := s.open(id, value)
	switch {
	case errors.Is(err, errUnknownKey):
		// Another server's key: not ours to judge, nor to delete.
		s.stats.unknownKey.Add(1)
		s.stats.misses.Add(1)
		return nil, fmt.Errorf("%w (%w)", sslsession.ErrNotFound, err)
	case errors.Is(err, errUnsealed):
		// An unsealed server's session, during a move to sealing: not
		// authenticated by our keys, so not used, but not ours to delete.
		s.stats.unsealed.Add(1)
		s.stats.misses.Add(1)
		return nil, fmt.Errorf("%w (%w)", sslsession.ErrNotFound, err)
	case err != nil:
		s.stats.invalid.Add(1)
		if !s.keepInvalid {
			_ = s.client.Unlink(ctx, key).Err()
		}
		return nil, err
	}
	s.stats.hits.Add(1)
	return der, nil
}

// drop is Get's end for a value it will not read: a miss, the key unlinked
// (UNLINK frees a large value or a long list off Redis's main thread)
// unless KeepInvalid, and an error wrapping sslsession.ErrInvalidValue and
// why.
func (s *Store) drop(ctx context.Context, key string, why error) error {
	s.stats.misses.Add(1)
	if !s.keepInvalid {
		_ = s.client.Unlink(ctx, key).Err()
	}
	return fmt.Errorf("%w: %w", sslsession.ErrInvalidValue, why)
}

// Delete removes id.
func (s *Store) Delete(ctx context.Context, id []byte) error {
	s.stats.deletes.Add(1)
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.client.Del(ctx, s.Key(id)).Err(); err != nil {
		s.stats.errors.Add(1)
		return fmt.Errorf("redisstore: DEL: %w", err)
	}
	return nil
}

func (s *Store) seal(id, der []byte) ([]byte, error) {
	if len(s.aeads) == 0 {
		return append([]byte{versionPlain}, der...), nil
	}
	aead := s.aeads[0]
	out := make([]byte, headerLen+aead.NonceSize(), headerLen+aead.NonceSize()+len(der)+aead.Overhead())
	out[0] = versionSealed
	copy(out[1:headerLen], s.ids[0][:])
	nonce := out[headerLen:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("redisstore: nonce: %w", err)
	}
	return aead.Seal(out, nonce, der, additional(out[:headerLen], id)), nil
}

func additional(header, id []byte) []byte {
	return append(append(make([]byte, 0, len(header)+len(id)), header...), id...)
}

func (s *Store) open(id, value []byte) ([]byte, error) {
	invalid := func(why string) error {
		return fmt.Errorf("%w: redisstore: %s", sslsession.ErrInvalidValue, why)
	}
	if len(value) == 0 {
		return nil, invalid("empty value")
	}
	if len(s.aeads) == 0 {
		if value[0] == versionSealed && len(value) >= headerLen+12+16 {
			// A sealed server's value (12: the GCM nonce, 16: its tag):
			// during a move between sealed and unsealed, or a server that
			// was not given the keys. Not ours to delete.
			return nil, errUnknownKey
		}
		if value[0] != versionPlain || len(value) == 1 {
			return nil, invalid("not an unsealed value (is the store missing its keys?)")
		}
		return value[1:], nil
	}
	if value[0] == versionPlain && holdsSession(id, value[1:]) {
		return nil, errUnsealed
	}
	if value[0] != versionSealed {
		return nil, invalid("not a sealed value")
	}
	if len(value) < headerLen {
		return nil, invalid("truncated")
	}
	tried := false
	for i, aead := range s.aeads {
		if string(value[1:headerLen]) != string(s.ids[i][:]) {
			continue
		}
		tried = true
		n := aead.NonceSize()
		if len(value) < headerLen+n+aead.Overhead() {
			return nil, invalid("truncated")
		}
		der, err := aead.Open(nil, value[headerLen:headerLen+n], value[headerLen+n:], additional(value[:headerLen], id))
		if err == nil {
			return der, nil
		}
	}
	if !tried {
		return nil, errUnknownKey
	}
	return nil, invalid("does not open (tampered, or stored under another session ID)")
}

// maxTrailer bounds what may follow the DER in an unsealed value: the
// bridge's integrity tag (32 bytes, HMAC-SHA256) with room to spare.
const maxTrailer = 64

// holdsSession reports whether v is what an unsealed store keeps for id: a
// DER SSL_SESSION (OpenSSL's SSL_SESSION_ASN1: version, protocol version,
// cipher, session ID, ...) whose session ID is id, followed by at most
// maxTrailer bytes (the bridge's integrity tag). It reads the first four
// fields only: the value is never used, only told apart from garbage so
// that it is left alone.
func holdsSession(id, v []byte) bool {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(v, &seq)
	if err != nil || len(rest) > maxTrailer || seq.Class != asn1.ClassUniversal ||
		seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return false
	}
	body := seq.Bytes
	var version, protocol int64
	var cipher, sid []byte
	for _, field := range []any{&version, &protocol, &cipher, &sid} {
		if body, err = asn1.Unmarshal(body, field); err != nil {
			return false
		}
	}
	return version == 1 && len(sid) > 0 && bytes.Equal(sid, id)
}
