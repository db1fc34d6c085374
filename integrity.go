package sslsession

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
)

// IntegrityKeySize is the length of an IntegrityKey.
const IntegrityKeySize = 32

// IntegrityKey authenticates what the session store bridge gives a store
// (StoreOptions.IntegrityKey): 32 random bytes, the same on every server
// that shares the store. It never prints: String, %v, %#v, JSON and slog
// show "IntegrityKey(redacted)".
type IntegrityKey [IntegrityKeySize]byte

// NewIntegrityKey returns a key from crypto/rand.
func NewIntegrityKey() (IntegrityKey, error) {
	var k IntegrityKey
	if _, err := rand.Read(k[:]); err != nil {
		return IntegrityKey{}, fmt.Errorf("sslsession: integrity key: %w", err)
	}
	return k, nil
}

// IsZero reports whether k is the zero key (StoreOptions' "not set").
func (k IntegrityKey) IsZero() bool { return k == IntegrityKey{} }

// String hides the key.
func (k IntegrityKey) String() string { return "IntegrityKey(redacted)" }

// GoString hides the key.
func (k IntegrityKey) GoString() string { return k.String() }

// Format hides the key under every verb.
func (k IntegrityKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// MarshalJSON hides the key.
func (k IntegrityKey) MarshalJSON() ([]byte, error) { return json.Marshal(k.String()) }

// LogValue hides the key.
func (k IntegrityKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// ValueAuthenticator is a SessionStore that authenticates its values
// itself, with keys its servers share (redisstore seals them with AES-GCM,
// the Redis key in the additional data): no value it returns can have been
// changed or made by anyone without those keys. The bridge gives such a
// store the bare DER and does not tag it.
type ValueAuthenticator interface {
	SessionStore
	// AuthenticatesValues reports whether the store authenticates its
	// values; false makes the bridge tag them as for any store.
	AuthenticatesValues() bool
}

// integrityTagSize is the length of the HMAC-SHA256 tag after the DER.
const integrityTagSize = sha256.Size

var (
	processKeyOnce sync.Once
	processKey     IntegrityKey
	processKeyErr  error
)

// integrityKeyFor returns the key a bridge tags with: opts' key, or the
// process's own, made once; nil for a store that authenticates its values.
func integrityKeyFor(store SessionStore, opts StoreOptions) (*IntegrityKey, error) {
	if va, ok := store.(ValueAuthenticator); ok && va.AuthenticatesValues() {
		return nil, nil
	}
	if !opts.IntegrityKey.IsZero() {
		k := opts.IntegrityKey
		return &k, nil
	}
	processKeyOnce.Do(func() { processKey, processKeyErr = NewIntegrityKey() })
	if processKeyErr != nil {
		return nil, processKeyErr
	}
	return &processKey, nil
}

// integrityTag is HMAC-SHA256 under key of the ID's length, the ID and the
// DER.
func integrityTag(key *IntegrityKey, id, der []byte) []byte {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte{byte(len(id))})
	m.Write(id)
	m.Write(der)
	return m.Sum(nil)
}

// seal appends der's tag for id.
func sealValue(key *IntegrityKey, id, der []byte) []byte {
	if key == nil {
		return der
	}
	return append(der, integrityTag(key, id, der)...)
}

// openValue checks v's tag for id and returns its DER, or false.
func openValue(key *IntegrityKey, id, v []byte) ([]byte, bool) {
	if key == nil {
		return v, true
	}
	if len(v) <= integrityTagSize {
		return nil, false
	}
	der, tag := v[:len(v)-integrityTagSize], v[len(v)-integrityTagSize:]
	if !hmac.Equal(tag, integrityTag(key, id, der)) {
		return nil, false
	}
	return der, true
}
