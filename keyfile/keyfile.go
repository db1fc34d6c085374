// Package keyfile reads and writes the session-ticket key files of nginx
// and haproxy, so that a fleet of sslsession servers and nginx or haproxy
// servers on one name resume each other's tickets.
//
// nginx: one key per file (ssl_session_ticket_key), 80 raw bytes (name 16,
// HMAC-SHA256 key 32, AES-256-CBC key 32) or 48 (name 16, AES-128-CBC key
// 16, HMAC key 16: the AES key comes first in the short kind): the layouts
// of sslsession.TicketKey.Bytes. A server
// block lists several files; the first listed key encrypts new tickets, all
// of them decrypt. NginxFiles writes such a set of files from a ring.
//
// haproxy: one file (tls-ticket-keys), one key per line in base64, all of
// one size: 80 bytes (name 16, AES-256 key 32, HMAC key 32: the AES and
// HMAC keys are in the other order than nginx's 80-byte files) or 48 (name
// 16, AES-128 key 16, HMAC key 16, as nginx's). haproxy keeps the last HAProxyKeys lines of the
// file (its TLS_TICKETS_NO build option, 3 by default and in Debian), all
// of which decrypt; the line before the last encrypts. HAProxyFile writes
// such a file from a ring, and HAProxyLine gives the base64 of one key for
// haproxy's runtime API (set ssl tls-key, which makes that key the last).
//
// Readers treat a file as hostile: they read at most MaxFileSize bytes,
// take keys of the exact sizes only, and return errors that wrap ErrFormat
// and never carry key bytes. Writers replace a file atomically (a
// temporary file in the same directory, fsync, rename, fsync of the
// directory), with mode 0600, and only when its content changes, and
// report whether it did: reload nginx, or update haproxy, only then.
//
// A ring (ticketring) calls a hook func(now time.Time, keys
// []sslsession.TicketRingKey) on every change; NginxFiles.Hook and
// HAProxyFile.Hook adapt Publish to it.
package keyfile

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sslsession/sslsession"
)

// ErrFormat is wrapped by every error about a file's content or about keys
// that a file cannot hold. Such errors never carry key material.
var ErrFormat = errors.New("keyfile: bad ticket key file")

// MaxFileSize bounds what the readers read from a file: 64 KiB, more than a
// haproxy file of a few hundred keys; an nginx key file is 48 or 80 bytes.
const MaxFileSize = 64 << 10

// HAProxyKeys is the number of keys haproxy keeps from its tls-ticket-keys
// file (the last ones), its TLS_TICKETS_NO build option: 3 by default and
// in Debian's build.
const HAProxyKeys = 3

// readBounded reads at most MaxFileSize bytes of path; larger is ErrFormat.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		clear(b)
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrFormat, path, MaxFileSize)
	}
	return b, nil
}

// ParseNginx reads one nginx ssl_session_ticket_key file's content: exactly
// 48 or 80 bytes.
func ParseNginx(b []byte) (sslsession.TicketKey, error) {
	if len(b) != sslsession.TicketKeySize && len(b) != sslsession.TicketKeySize128 {
		return sslsession.TicketKey{}, fmt.Errorf("%w: an nginx ticket key is %d or %d bytes, not %d",
			ErrFormat, sslsession.TicketKeySize128, sslsession.TicketKeySize, len(b))
	}
	k, err := sslsession.ParseTicketKey(b)
	if err != nil {
		return k, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if k.IsZero() {
		return k, fmt.Errorf("%w: an all-zero key", ErrFormat)
	}
	return k, nil
}

// ReadNginx reads nginx's key files in the order of its configuration: the
// first key is the one nginx encrypts with.
func ReadNginx(paths ...string) ([]sslsession.TicketKey, error) {
	keys := make([]sslsession.TicketKey, 0, len(paths))
	for _, p := range paths {
		b, err := readBounded(p)
		if err != nil {
			return nil, err
		}
		k, err := ParseNginx(b)
		clear(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Order puts a ring's keys in the order nginx wants them: the key that
// encrypts at now first, then the others newest first (by Start: a
// published next key comes second). Keys past their Until at now are left
// out. It fails (ErrFormat) when no key encrypts at now.
func Order(now time.Time, keys []sslsession.TicketRingKey) ([]sslsession.TicketKey, error) {
	enc := encrypting(now, keys)
	if enc < 0 {
		return nil, fmt.Errorf("%w: no key of the ring encrypts at %s", ErrFormat, now.UTC().Format(time.RFC3339))
	}
	rest := make([]int, 0, len(keys))
	for i, k := range keys {
		if i != enc && (k.Until.IsZero() || k.Until.After(now)) {
			rest = append(rest, i)
		}
	}
	slices.SortStableFunc(rest, func(a, b int) int { return keys[b].Start.Compare(keys[a].Start) })
	out := []sslsession.TicketKey{keys[enc].Key}
	for _, i := range rest {
		out = append(out, keys[i].Key)
	}
	return out, nil
}

// encrypting is the index of the key that encrypts at now, by the rule of
// sslsession.TicketRingKey: of the Encrypt keys not past their Until, the
// latest started one, or the earliest when none has started; -1 if none.
func encrypting(now time.Time, keys []sslsession.TicketRingKey) int {
	best, first := -1, -1
	for i, k := range keys {
		if !k.Encrypt || k.Key.IsZero() || (!k.Until.IsZero() && !k.Until.After(now)) {
			continue
		}
		if !k.Start.After(now) {
			if best < 0 || k.Start.After(keys[best].Start) {
				best = i
			}
		} else if first < 0 || k.Start.Before(keys[first].Start) {
			first = i
		}
	}
	if best >= 0 {
		return best
	}
	return first
}

// NginxFiles is the set of files an nginx server block lists with
// ssl_session_ticket_key, in the order of the configuration: Paths[0] holds
// the key nginx encrypts with. nginx needs every listed file to exist.
type NginxFiles struct {
	Paths []string
}

// Publish writes the ring's keys valid at now into the files, in Order:
// the encrypting key into Paths[0], then the others newest first. With
// more keys than files the oldest are left out; with fewer, the remaining
// files repeat the encrypting key (nginx looks a ticket's key up by name,
// the first match wins, so a repeat decrypts nothing more). Each file is
// replaced atomically and only when its content changes; changed reports
// whether any file did: reload nginx (SIGHUP) only then. Keys keep their
// kind (48 or 80 bytes), which nginx reads per file.
func (f *NginxFiles) Publish(now time.Time, keys []sslsession.TicketRingKey) (changed bool, err error) {
	if len(f.Paths) == 0 {
		return false, fmt.Errorf("%w: NginxFiles has no paths", ErrFormat)
	}
	ordered, err := Order(now, keys)
	if err != nil {
		return false, err
	}
	for i, p := range f.Paths {
		k := ordered[0]
		if i < len(ordered) {
			k = ordered[i]
		}
		b := k.Bytes()
		c, err := writeAtomic(p, b)
		clear(b)
		if err != nil {
			return changed, err
		}
		changed = changed || c
	}
	return changed, nil
}

// Hook adapts Publish to a ring's change hook, func(now, keys). onChange
// (may be nil) runs after a Publish that changed a file: reload nginx
// there. onError (may be nil) gets Publish's errors.
func (f *NginxFiles) Hook(onChange func(), onError func(error)) func(time.Time, []sslsession.TicketRingKey) {
	return hook(f.Publish, onChange, onError)
}

func hook(publish func(time.Time, []sslsession.TicketRingKey) (bool, error), onChange func(), onError func(error)) func(time.Time, []sslsession.TicketRingKey) {
	return func(now time.Time, keys []sslsession.TicketRingKey) {
		changed, err := publish(now, keys)
		if err != nil {
			if onError != nil {
				onError(err)
			}
			return
		}
		if changed && onChange != nil {
			onChange()
		}
	}
}

// HAProxyLine is the base64 of one key in haproxy's layout (name, AES key,
// HMAC key), as a tls-ticket-keys line holds it and as haproxy's runtime
// API takes it: set ssl tls-key <id> <line>.
func HAProxyLine(k sslsession.TicketKey) (string, error) {
	if k.IsZero() {
		return "", fmt.Errorf("%w: the zero TicketKey", ErrFormat)
	}
	b := haproxyBytes(k)
	defer clear(b)
	return base64.StdEncoding.EncodeToString(b), nil
}

// haproxyBytes turns TicketKey.Bytes into haproxy's layout: name, AES key,
// HMAC key. The 48-byte kind is already so; the 80-byte one is name, HMAC,
// AES.
func haproxyBytes(k sslsession.TicketKey) []byte {
	b := k.Bytes()
	if len(b) != sslsession.TicketKeySize {
		return b
	}
	defer clear(b)
	return swapParts(b)
}

// swapParts swaps the two 32-byte secret parts of an 80-byte key: the
// conversion between nginx's and haproxy's layouts, both ways.
func swapParts(b []byte) []byte {
	const n, p = sslsession.TicketKeyNameSize, 32
	out := make([]byte, 0, len(b))
	out = append(out, b[:n]...)
	out = append(out, b[n+p:]...)
	return append(out, b[n:n+p]...)
}

// ParseHAProxyLine reads one key from its base64 in haproxy's layout.
func ParseHAProxyLine(line string) (sslsession.TicketKey, error) {
	line = strings.TrimSpace(line)
	if len(line) > base64.StdEncoding.EncodedLen(sslsession.TicketKeySize) {
		return sslsession.TicketKey{}, fmt.Errorf("%w: a haproxy ticket key line is at most %d characters, not %d",
			ErrFormat, base64.StdEncoding.EncodedLen(sslsession.TicketKeySize), len(line))
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return sslsession.TicketKey{}, fmt.Errorf("%w: a haproxy ticket key line is not base64", ErrFormat)
	}
	defer clear(b)
	switch len(b) {
	case sslsession.TicketKeySize128:
		return ParseNginx(b)
	case sslsession.TicketKeySize:
		nb := swapParts(b)
		defer clear(nb)
		return ParseNginx(nb)
	}
	return sslsession.TicketKey{}, fmt.Errorf("%w: a haproxy ticket key is %d or %d bytes, not %d",
		ErrFormat, sslsession.TicketKeySize128, sslsession.TicketKeySize, len(b))
}

// ParseHAProxy reads a tls-ticket-keys file's content: one base64 key per
// line (blank lines and lines starting with # are skipped, as haproxy
// does), all of one size, at least HAProxyKeys of them. The keys come back
// in file order; haproxy keeps the last HAProxyKeys and encrypts with the
// one before the last (HAProxyEncrypting).
func ParseHAProxy(b []byte) ([]sslsession.TicketKey, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrFormat, MaxFileSize)
	}
	var keys []sslsession.TicketKey
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseHAProxyLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if len(keys) > 0 && k.Size() != keys[0].Size() {
			return nil, fmt.Errorf("line %d: %w: haproxy takes keys of one size (%d bytes, then %d)", n+1, ErrFormat, keys[0].Size(), k.Size())
		}
		keys = append(keys, k)
	}
	if len(keys) < HAProxyKeys {
		return nil, fmt.Errorf("%w: haproxy needs at least %d keys, the file has %d", ErrFormat, HAProxyKeys, len(keys))
	}
	return keys, nil
}

// ReadHAProxy reads a tls-ticket-keys file (see ParseHAProxy).
func ReadHAProxy(path string) ([]sslsession.TicketKey, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	keys, err := ParseHAProxy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// HAProxyEncrypting is the index, in a tls-ticket-keys file's keys, of the
// key haproxy encrypts with: the one before the last.
func HAProxyEncrypting(keys []sslsession.TicketKey) int { return len(keys) - 2 }

// HAProxyOrder puts a ring's keys valid at now in the order of a
// tls-ticket-keys file that makes haproxy encrypt with the ring's
// encrypting key: older keys, the newest other one, the encrypting key,
// and last the published next key (Start after now) or, without one,
// another decrypt-only key. haproxy keeps the last HAProxyKeys lines: the
// encrypting key and its two neighbours. With fewer than HAProxyKeys keys
// the encrypting key is repeated. Keys must be of one size (ErrFormat).
func HAProxyOrder(now time.Time, keys []sslsession.TicketRingKey) ([]sslsession.TicketKey, error) {
	ordered, err := Order(now, keys) // encrypting, then newest first
	if err != nil {
		return nil, err
	}
	for _, k := range ordered[1:] {
		if k.Size() != ordered[0].Size() {
			return nil, fmt.Errorf("%w: haproxy takes keys of one size; the ring mixes %d- and %d-byte keys", ErrFormat, ordered[0].Size(), k.Size())
		}
	}
	enc, others := ordered[0], ordered[1:]
	var next *sslsession.TicketKey
	for i, rk := range keys {
		if rk.Encrypt && rk.Start.After(now) && !rk.Key.Equal(enc) && (rk.Until.IsZero() || rk.Until.After(now)) {
			if next == nil || rk.Start.Before(findStart(keys, *next)) {
				next = &keys[i].Key
			}
		}
	}
	var last sslsession.TicketKey
	if next != nil {
		last = *next
		others = slices.DeleteFunc(slices.Clone(others), func(k sslsession.TicketKey) bool { return k.Equal(last) })
	} else if len(others) > 0 {
		last, others = others[len(others)-1], others[:len(others)-1] // the oldest: it matters least
	} else {
		last = enc
	}
	// others is newest first: the file lists them oldest first, so the
	// newest ends up next to the encrypting key, inside haproxy's window.
	out := make([]sslsession.TicketKey, 0, len(others)+3)
	for i := len(others) - 1; i >= 0; i-- {
		out = append(out, others[i])
	}
	for len(out) < HAProxyKeys-2 {
		out = append(out, enc)
	}
	return append(out, enc, last), nil
}

func findStart(keys []sslsession.TicketRingKey, k sslsession.TicketKey) time.Time {
	for _, rk := range keys {
		if rk.Key.Equal(k) {
			return rk.Start
		}
	}
	return time.Time{}
}

// FormatHAProxy is the content of a tls-ticket-keys file for keys, in
// their order: one base64 line each.
func FormatHAProxy(keys []sslsession.TicketKey) ([]byte, error) {
	var buf bytes.Buffer
	for i, k := range keys {
		line, err := HAProxyLine(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// HAProxyFile is a haproxy tls-ticket-keys file.
type HAProxyFile struct {
	Path string
}

// Publish writes the ring's keys valid at now into the file in
// HAProxyOrder, atomically and only when its content changes; changed
// reports whether it did: reload haproxy only then (or push the new last
// key with its runtime API: set ssl tls-key, HAProxyLine).
func (f *HAProxyFile) Publish(now time.Time, keys []sslsession.TicketRingKey) (changed bool, err error) {
	if f.Path == "" {
		return false, fmt.Errorf("%w: HAProxyFile has no path", ErrFormat)
	}
	ordered, err := HAProxyOrder(now, keys)
	if err != nil {
		return false, err
	}
	b, err := FormatHAProxy(ordered)
	if err != nil {
		return false, err
	}
	defer clear(b)
	return writeAtomic(f.Path, b)
}

// Hook adapts Publish to a ring's change hook, func(now, keys), as
// NginxFiles.Hook does.
func (f *HAProxyFile) Hook(onChange func(), onError func(error)) func(time.Time, []sslsession.TicketRingKey) {
	return hook(f.Publish, onChange, onError)
}

// writeAtomic replaces path with b (mode 0600) unless it already holds b.
func writeAtomic(path string, b []byte) (bool, error) {
	if old, err := readBounded(path); err == nil {
		same := bytes.Equal(old, b)
		clear(old)
		if same {
			if err := os.Chmod(path, 0o600); err != nil {
				return false, err
			}
			return false, nil
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return false, err
	}
	name := tmp.Name()
	fail := func(err error) (bool, error) {
		tmp.Close()
		os.Remove(name)
		return false, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return false, err
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return false, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}
