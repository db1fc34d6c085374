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
// SetTicketKeys copies the ring into C memory and indexes it (by name, and
// the encrypting key of every stretch of time), so the callback's work does
// not grow with the ring and allocates nothing; the counters live there too.
// The per-context state is found through a registry keyed by the SSL_CTX
// pointer, not the SSL_CTX's ex_data, which OpenSSL does not lock against
// readers. Key material handed to C is wiped (OPENSSL_cleanse) when a ring
// is replaced and when the SSL_CTX is freed.

// ErrTicketKeys is wrapped by every error about ticket keys: a key of the
// wrong size, a ring without a key to encrypt with, two keys of one name.
// Such errors never carry key material.
var ErrTicketKeys = errors.New("sslsession: invalid ticket keys")

// Sizes of a ticket key's parts, and of its serialized forms.
const (
	TicketKeyNameSize = 16
	TicketKeyAESSize  = 32 // AES-256 key of a TicketKeySize key
	TicketKeyHMACSize = 32 // HMAC-SHA256 key of a TicketKeySize key
	// TicketKeySize is the length of an AES-256 key's Bytes: name, HMAC
	// key, AES key, the layout of nginx's 80-byte ssl_session_ticket_key
	// files.
	TicketKeySize = TicketKeyNameSize + TicketKeyHMACSize + TicketKeyAESSize
	// TicketKeySize128 is the length of an AES-128 key's Bytes: name, a
	// 16-byte AES-128 key, a 16-byte HMAC-SHA256 key, the layout of
	// nginx's 48-byte ssl_session_ticket_key files (and of haproxy's
	// 48-byte keys).
	TicketKeySize128 = TicketKeyNameSize + 16 + 16
)

// TicketKey is one session-ticket key: a 16-byte name, sent in clear in
// every ticket so that a server finds the key, an AES-CBC key that encrypts
// the ticket and an HMAC-SHA256 key that authenticates it. A key is of one
// of nginx's two kinds: AES-256 with a 32-byte HMAC key (TicketKeySize
// bytes, what NewTicketKey makes) or AES-128 with a 16-byte HMAC key
// (TicketKeySize128 bytes, read by ParseTicketKey). Its String, Format,
// MarshalJSON and LogValue show the name only; the secret parts leave it
// only through Bytes.
type TicketKey struct {
	name   [TicketKeyNameSize]byte
	hmac   [TicketKeyHMACSize]byte // AES-128 keys: the first 16 bytes
	aes    [TicketKeyAESSize]byte  // AES-128 keys: the first 16 bytes
	aes128 bool
}

// NewTicketKey makes an AES-256 key from crypto/rand.
func NewTicketKey() (TicketKey, error) {
	var b [TicketKeySize]byte
	defer clear(b[:])
	if _, err := rand.Read(b[:]); err != nil {
		return TicketKey{}, fmt.Errorf("%w: crypto/rand: %v", ErrTicketKeys, err)
	}
	return ParseTicketKey(b[:])
}

// ParseTicketKey reads a key from its Bytes, the layouts of nginx's
// ssl_session_ticket_key files: TicketKeySize bytes (name, 32-byte HMAC
// key, AES-256 key) or TicketKeySize128 bytes (name, AES-128 key, 16-byte
// HMAC key: nginx puts the AES key first in its 48-byte files).
func ParseTicketKey(b []byte) (TicketKey, error) {
	var k TicketKey
	switch len(b) {
	case TicketKeySize:
		copy(k.name[:], b)
		copy(k.hmac[:], b[TicketKeyNameSize:])
		copy(k.aes[:], b[TicketKeyNameSize+TicketKeyHMACSize:])
	case TicketKeySize128:
		k.aes128 = true
		copy(k.name[:], b)
		copy(k.aes[:16], b[TicketKeyNameSize:])
		copy(k.hmac[:16], b[TicketKeyNameSize+16:])
	default:
		return k, fmt.Errorf("%w: a ticket key is %d or %d bytes, not %d", ErrTicketKeys, TicketKeySize, TicketKeySize128, len(b))
	}
	return k, nil
}

// Bytes returns the key's Size bytes, secret parts included, in the layout
// ParseTicketKey reads: name, HMAC key, AES key for an AES-256 key; name,
// AES key, HMAC key for an AES-128 one.
func (k TicketKey) Bytes() []byte {
	b := make([]byte, 0, k.Size())
	b = append(b, k.name[:]...)
	if k.aes128 {
		b = append(b, k.aes[:16]...)
		return append(b, k.hmac[:16]...)
	}
	b = append(b, k.hmac[:]...)
	return append(b, k.aes[:]...)
}

// Size is the length of Bytes: TicketKeySize for an AES-256 key,
// TicketKeySize128 for an AES-128 one (0 for the zero TicketKey).
func (k TicketKey) Size() int {
	if k.IsZero() {
		return 0
	}
	return TicketKeyNameSize + 2*k.partSize()
}

// AES128 reports whether the key is of the AES-128 kind (TicketKeySize128
// bytes): tickets under it are AES-128-CBC, with a 16-byte HMAC-SHA256 key.
func (k TicketKey) AES128() bool { return k.aes128 }

func (k TicketKey) partSize() int {
	if k.aes128 {
		return 16
	}
	return 32
}

// Name is the key's name, as tickets carry it.
func (k TicketKey) Name() [TicketKeyNameSize]byte { return k.name }

// IsZero reports whether k is the zero TicketKey (not a key), or all its
// bytes are zero.
func (k TicketKey) IsZero() bool {
	return k.name == [TicketKeyNameSize]byte{} && k.hmac == [TicketKeyHMACSize]byte{} && k.aes == [TicketKeyAESSize]byte{}
}

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
	return k.name == o.name && k.aes128 == o.aes128 && d == 0
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
	SNILinked     int64                   `json:"sni_linked"`       // contexts an SNI callback switched this one's connections to, whose keys it now also decrypts with
}

// TicketAgeBuckets is the length of TicketStats.DecryptedAge.
const TicketAgeBuckets = 8

// The C side's sizes are the ones above (-uint(x) overflows unless x is 0).
const (
	_ = -uint(TicketKeyNameSize ^ C.SSLSESS_TK_NAME)
	_ = -uint(TicketKeyAESSize ^ C.SSLSESS_TK_AES)
	_ = -uint(TicketKeyHMACSize ^ C.SSLSESS_TK_HMAC)
	_ = -uint(TicketAgeBuckets ^ (C.SSLSESS_TK_AGES - 1))
	_ = -uint(MaxTicketKeys ^ C.SSLSESS_TK_MAX)
	_ = -uint(TicketKeySize128 ^ (C.SSLSESS_TK_NAME + 2*C.SSLSESS_TK_SHORT))
)

// Decrypted is the sum of all decryptions.
func (s TicketStats) Decrypted() int64 {
	n := s.DecryptedNext
	for _, v := range s.DecryptedAge {
		n += v
	}
	return n
}

// MaxTicketKeys bounds a ring given to SetTicketKeys. The ring is indexed
// when it is set: finding a ticket's key, and the key that encrypts, costs
// the same with MaxTicketKeys keys as with one.
const MaxTicketKeys = 1024

var ticketMu sync.Mutex // serializes SetTicketKeys and ClearTicketKeys

// SetTicketKeys makes keys the context's session-ticket keys
// (SSL_CTX_set_tlsext_ticket_key_cb(3) on OpenSSL 1.0.2 and 1.1.1,
// SSL_CTX_set_tlsext_ticket_key_evp_cb(3) on 3.x), replacing OpenSSL's own
// per-context keys and any previous ring. New tickets (TLS 1.2 tickets, TLS
// 1.3 stateless tickets) are encrypted under the encrypting key of the
// moment (see TicketRingKey.Encrypt); a ticket under any other key of the
// ring still resumes until that key's Until and is then renewed: the server
// issues a new ticket under the encrypting key. A ticket under a key not in
// the ring, or past its Until, gives a full handshake, never an error.
// Servers that share keys resume each other's tickets when they also share
// the certificate and session ID context. Keys of both kinds (AES-256 and
// AES-128, see TicketKey) may share a ring.
//
// OptionNoTicket: the call that installs the callback (the first one, or
// the first after ClearTicketKeys) clears it, since a ring is given to
// issue tickets; later calls never touch the options, so an operator who
// sets OptionNoTicket afterwards keeps tickets off through every refresh of
// the ring (the ring still decrypts the tickets clients present).
//
// Call it again at any time to publish a new ring, also while the context
// serves handshakes: the switch is atomic for handshakes, and no call
// writes the SSL_CTX's ex_data. The ring needs at least one key with
// Encrypt, at most MaxTicketKeys keys, each name once.
//
// SNI: an SNI callback that switches a connection to another context
// (spacemonkeygo's SetTLSExtServernameCallback and SetSSLCtx) does so after
// OpenSSL has opened the client's ticket, with the first context's
// callback, on every version. Give every context its own ring, the first
// one too: a ticket is encrypted under the ring of the context the
// connection has switched to (the first context's when that one has none),
// and the first context decrypts with its own ring and with the rings of
// the contexts its connections were switched to. It learns those when it
// issues their first ticket (TicketStats.SNILinked): a ticket from another
// server of the fleet for a switched-to context resumes once this process
// has issued one ticket there. On 1.1.1 and later this uses the first
// context's SSL_CTX_set_session_ticket_cb(3) slot; do not set your own
// there. See docs/fleet.md.
func (c *Ctx) SetTicketKeys(keys []TicketRingKey) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if len(keys) == 0 || len(keys) > MaxTicketKeys {
		return fmt.Errorf("%w: a ring holds 1 to %d keys, not %d", ErrTicketKeys, MaxTicketKeys, len(keys))
	}
	enc := false
	names := make(map[[TicketKeyNameSize]byte]struct{}, len(keys))
	for i, k := range keys {
		if k.Key.IsZero() {
			return fmt.Errorf("%w: key %d is the zero TicketKey", ErrTicketKeys, i)
		}
		if _, dup := names[k.Key.name]; dup {
			return fmt.Errorf("%w: two keys named %x", ErrTicketKeys, k.Key.name)
		}
		names[k.Key.name] = struct{}{}
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
		if k.Key.aes128 {
			p.aes128 = 1
		}
	}
	defer runtime.KeepAlive(c)
	ticketMu.Lock()
	defer ticketMu.Unlock()
	var e C.sslsess_err
	var installed C.int
	if C.sslsess_tk_set(c.p, &ck[0], C.int(len(ck)), &installed, &e) != C.SSLSESS_OK {
		return newError("SSL_CTX_set_tlsext_ticket_key_cb", nil, &e)
	}
	if installed != 0 {
		c.Options(0, OptionNoTicket)
	}
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

// ticketStats reads the ticket-key counters; zero before SetTicketKeys.
func (c *Ctx) ticketStats() TicketStats {
	var s C.sslsess_tk_stats
	C.sslsess_tk_stats_get(c.p, &s)
	runtime.KeepAlive(c)
	out := TicketStats{
		Issued: int64(s.issued), DecryptedNext: int64(s.decrypted[0]), Renewed: int64(s.renewed),
		UnknownKey: int64(s.unknown), Expired: int64(s.expired), NoKey: int64(s.no_key), Errors: int64(s.errors),
		SNILinked: int64(s.linked),
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
