package sslsession

// #include "ticketkeys_cgo.h"
import "C"

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Session-ticket keys (RFC 5077 §4, the key-name/AES/HMAC construction).
//
// OpenSSL's ticket-key callback runs on every handshake that issues or
// presents a ticket. It runs in C (ticketkeys_cgo.c) and never calls Go:
// SetTicketKeys copies the ring into C memory, where the callback finds it
// under a mutex held only for a copy of one key; the counters live there too.
// Key material handed to C is wiped (OPENSSL_cleanse) when a ring is replaced
// and when the SSL_CTX is freed.

// ErrTicketKeys is wrapped by every error about ticket keys: a key of the
// wrong size, a ring without a key to encrypt with, two keys of one name.
// Such errors never carry key material.
var ErrTicketKeys = errors.New("sslsession: invalid ticket keys")

// Sizes of a ticket key's parts, and of its serialized form.
const (
	TicketKeyNameSize = 16
	TicketKeyAESSize  = 32
	TicketKeyHMACSize = 32
	// TicketKeySize is the length of TicketKey.Bytes: name, HMAC key, AES
	// key, the layout of nginx's 80-byte ssl_session_ticket_key files.
	TicketKeySize = TicketKeyNameSize + TicketKeyHMACSize + TicketKeyAESSize
)

// TicketKey is one session-ticket key: a 16-byte name, sent in clear in
// every ticket so that a server finds the key, an AES-256-CBC key that
// encrypts the ticket and an HMAC-SHA256 key that authenticates it. Its
// String, Format, MarshalJSON and LogValue show the name only; the secret
// parts leave it only through Bytes.
type TicketKey struct {
	name [TicketKeyNameSize]byte
	hmac [TicketKeyHMACSize]byte
	aes  [TicketKeyAESSize]byte
}

// NewTicketKey makes a key from crypto/rand.
func NewTicketKey() (TicketKey, error) {
	var b [TicketKeySize]byte
	defer clear(b[:])
	if _, err := rand.Read(b[:]); err != nil {
		return TicketKey{}, fmt.Errorf("%w: crypto/rand: %v", ErrTicketKeys, err)
	}
	return ParseTicketKey(b[:])
}

// ParseTicketKey reads a key from its TicketKeySize bytes (TicketKey.Bytes:
// name, HMAC key, AES key, as in an nginx ssl_session_ticket_key file).
func ParseTicketKey(b []byte) (TicketKey, error) {
	var k TicketKey
	if len(b) != TicketKeySize {
		return k, fmt.Errorf("%w: a ticket key is %d bytes, not %d", ErrTicketKeys, TicketKeySize, len(b))
	}
	copy(k.name[:], b)
	copy(k.hmac[:], b[TicketKeyNameSize:])
	copy(k.aes[:], b[TicketKeyNameSize+TicketKeyHMACSize:])
	return k, nil
}

// Bytes returns the key's TicketKeySize bytes, secret parts included.
func (k TicketKey) Bytes() []byte {
	b := make([]byte, 0, TicketKeySize)
	b = append(b, k.name[:]...)
	b = append(b, k.hmac[:]...)
	return append(b, k.aes[:]...)
}

// Name is the key's name, as tickets carry it.
func (k TicketKey) Name() [TicketKeyNameSize]byte { return k.name }

// IsZero reports whether k is the zero TicketKey (not a key).
func (k TicketKey) IsZero() bool { return k == TicketKey{} }

// Equal reports whether k and o are the same key, in constant time over the
// secret parts.
func (k TicketKey) Equal(o TicketKey) bool {
	var d byte
	for i := range k.aes {
		d |= k.aes[i] ^ o.aes[i]
	}
	for i := range k.hmac {
		d |= k.hmac[i] ^ o.hmac[i]
	}
	return k.name == o.name && d == 0
}

// String shows the key's name only.
func (k TicketKey) String() string { return "TicketKey(" + hex.EncodeToString(k.name[:]) + ")" }

// GoString shows the key's name only.
func (k TicketKey) GoString() string { return k.String() }

// Format prints String for every verb: fmt never prints the secret parts,
// not even with %#v or %x.
func (k TicketKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// MarshalJSON writes the key's name only: {"name":"<hex>"}.
func (k TicketKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name string `json:"name"`
	}{hex.EncodeToString(k.name[:])})
}

// LogValue is the key's name only, for log/slog.
func (k TicketKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// TicketRingKey is one key of a ring and when it is used.
type TicketRingKey struct {
	Key TicketKey
	// Encrypt marks the keys that take turns encrypting new tickets: at
	// any time the one with the latest Start not after now encrypts (the
	// earliest one when none has started yet). The others only decrypt.
	Encrypt bool
	// Start is when the key begins to encrypt (with Encrypt). A key whose
	// Start is still ahead already decrypts: a fleet publishes its next
	// key before any server encrypts with it.
	Start time.Time
	// Until is when the key stops decrypting (and encrypting); the zero
	// time is never.
	Until time.Time
}

// TicketStats are the counters of a context's ticket keys. Decryptions are
// counted by key age: the number of Encrypt keys that started encrypting
// after the ticket's key did and before now (0: the encrypting key).
type TicketStats struct {
	Issued        int64                   `json:"issued"`           // tickets encrypted
	DecryptedNext int64                   `json:"decrypted_next"`   // tickets under a key not yet encrypting here (another server's clock is ahead)
	DecryptedAge  [TicketAgeBuckets]int64 `json:"decrypted_by_age"` // [k]: k rotations old; the last bucket counts older ones too
	Renewed       int64                   `json:"renewed"`          // decrypted under an older key: reissued under the current one
	UnknownKey    int64                   `json:"unknown_key"`      // key name not in the ring: full handshake
	Expired       int64                   `json:"expired"`          // key past its Until: full handshake
	NoKey         int64                   `json:"no_key"`           // no key to encrypt with: no ticket issued (before 3.0: one under a throwaway key)
	Errors        int64                   `json:"errors"`           // OpenSSL failed to set up the cipher or the MAC
}

// TicketAgeBuckets is the length of TicketStats.DecryptedAge.
const TicketAgeBuckets = 8

// The C side's sizes are the ones above (-uint(x) overflows unless x is 0).
const (
	_ = -uint(TicketKeyNameSize ^ C.SSLSESS_TK_NAME)
	_ = -uint(TicketKeyAESSize ^ C.SSLSESS_TK_AES)
	_ = -uint(TicketKeyHMACSize ^ C.SSLSESS_TK_HMAC)
	_ = -uint(TicketAgeBuckets ^ (C.SSLSESS_TK_AGES - 1))
)

// Decrypted is the sum of all decryptions.
func (s TicketStats) Decrypted() int64 {
	n := s.DecryptedNext
	for _, v := range s.DecryptedAge {
		n += v
	}
	return n
}

// maxTicketKeys bounds a ring: the callback scans it linearly.
const maxTicketKeys = 256

var ticketMu sync.Mutex // serializes SetTicketKeys and ClearTicketKeys

// SetTicketKeys makes keys the context's session-ticket keys
// (SSL_CTX_set_tlsext_ticket_key_cb(3) on OpenSSL 1.0.2 and 1.1.1,
// SSL_CTX_set_tlsext_ticket_key_evp_cb(3) on 3.x), replacing OpenSSL's own
// per-context keys and any previous ring, and clears OptionNoTicket. New
// tickets (TLS 1.2 tickets, TLS 1.3 stateless tickets) are encrypted under
// the encrypting key of the moment (see TicketRingKey.Encrypt); a ticket
// under any other key of the ring still resumes until that key's Until and is
// then renewed: the server issues a new ticket under the encrypting key. A
// ticket under a key not in the ring, or past its Until, gives a full
// handshake, never an error. Servers that share keys resume each other's
// tickets when they also share the certificate and session ID context.
//
// Call it again at any time to publish a new ring: the switch is atomic for
// handshakes. The ring needs at least one key with Encrypt, at most 256 keys,
// each name once. With an SNI callback that switches contexts, set the keys
// on every context.
func (c *Ctx) SetTicketKeys(keys []TicketRingKey) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if len(keys) == 0 || len(keys) > maxTicketKeys {
		return fmt.Errorf("%w: a ring holds 1 to %d keys, not %d", ErrTicketKeys, maxTicketKeys, len(keys))
	}
	enc := false
	for i, k := range keys {
		if k.Key.IsZero() {
			return fmt.Errorf("%w: key %d is the zero TicketKey", ErrTicketKeys, i)
		}
		for _, o := range keys[:i] {
			if o.Key.name == k.Key.name {
				return fmt.Errorf("%w: two keys named %x", ErrTicketKeys, k.Key.name)
			}
		}
		if k.Encrypt && (k.Until.IsZero() || k.Until.After(k.Start)) {
			enc = true
		}
	}
	if !enc {
		return fmt.Errorf("%w: no key can encrypt (Encrypt with Until after Start)", ErrTicketKeys)
	}
	ck := make([]C.sslsess_tk_key, len(keys))
	defer func() {
		C.sslsess_tk_cleanse(unsafe.Pointer(&ck[0]), C.size_t(uintptr(len(ck))*unsafe.Sizeof(ck[0])))
	}()
	for i, k := range keys {
		p := &ck[i]
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&p.name[0])), TicketKeyNameSize), k.Key.name[:])
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&p.aes[0])), TicketKeyAESSize), k.Key.aes[:])
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&p.hmac[0])), TicketKeyHMACSize), k.Key.hmac[:])
		p.start_ms = C.int64_t(k.Start.UnixMilli())
		if !k.Until.IsZero() {
			p.until_ms = C.int64_t(max(k.Until.UnixMilli(), 1))
		}
		if k.Encrypt {
			p.may_encrypt = 1
		}
	}
	defer runtime.KeepAlive(c)
	ticketMu.Lock()
	defer ticketMu.Unlock()
	var e C.sslsess_err
	if C.sslsess_tk_set(c.p, &ck[0], C.int(len(ck)), &e) != C.SSLSESS_OK {
		return newError("SSL_CTX_set_tlsext_ticket_key_cb", nil, &e)
	}
	c.Options(0, OptionNoTicket)
	return nil
}

// ClearTicketKeys takes the ticket-key callback off: OpenSSL goes back to
// its own per-context keys, and tickets under the ring's keys no longer
// resume. The keys are wiped from C memory.
func (c *Ctx) ClearTicketKeys() {
	if c.nilCtx() {
		return
	}
	defer runtime.KeepAlive(c)
	ticketMu.Lock()
	defer ticketMu.Unlock()
	C.sslsess_tk_clear(c.p)
}

// HasTicketKeys reports whether SetTicketKeys's callback is installed.
func (c *Ctx) HasTicketKeys() bool {
	if c.nilCtx() {
		return false
	}
	defer runtime.KeepAlive(c)
	return C.sslsess_tk_installed(c.p) != 0
}

// EncryptingTicketKey returns the name of the key that encrypts a ticket
// issued at t, and false when the context has no ring.
func (c *Ctx) EncryptingTicketKey(t time.Time) ([TicketKeyNameSize]byte, bool) {
	defer runtime.KeepAlive(c)
	var name [TicketKeyNameSize]byte
	if c.nilCtx() {
		return name, false
	}
	ok := C.sslsess_tk_current(c.p, C.int64_t(t.UnixMilli()), (*C.uchar)(unsafe.Pointer(&name[0]))) != 0
	return name, ok
}

// TicketStats reads the ticket-key counters; zero before SetTicketKeys.
func (c *Ctx) ticketStats() TicketStats {
	var s C.sslsess_tk_stats
	C.sslsess_tk_stats_get(c.p, &s)
	runtime.KeepAlive(c)
	out := TicketStats{
		Issued: int64(s.issued), DecryptedNext: int64(s.decrypted[0]), Renewed: int64(s.renewed),
		UnknownKey: int64(s.unknown), Expired: int64(s.expired), NoKey: int64(s.no_key), Errors: int64(s.errors),
	}
	for i := range out.DecryptedAge {
		out.DecryptedAge[i] = int64(s.decrypted[i+1])
	}
	return out
}

// TicketKeyName parses a key name as tickets carry it from the first
// TicketKeyNameSize bytes of a TLS 1.2 ticket or TLS 1.3 stateless ticket
// made under SetTicketKeys; false when the ticket is too short.
func TicketKeyName(ticket []byte) ([TicketKeyNameSize]byte, bool) {
	var n [TicketKeyNameSize]byte
	if len(ticket) < TicketKeyNameSize {
		return n, false
	}
	copy(n[:], ticket)
	return n, true
}
