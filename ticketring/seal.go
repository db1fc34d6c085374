package ticketring

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sslsession/sslsession"
)

// The sealed ring:
//
//	version (1 byte, 2) | key ID (4 bytes) | nonce (12 bytes) | AES-GCM(payload)
//
// with the version, the key ID and the Redis key as additional data. The
// payload is the ring's generation (8 bytes), a count (2 bytes) and, per
// key, its start in Unix milliseconds (8 bytes) and its
// sslsession.TicketKeySize bytes. Version 1, written by earlier releases,
// has no generation; it is read as generation 0 and written as version 2.
const (
	version1  = 1
	version   = 2
	keyIDLen  = 4
	headerLen = 1 + keyIDLen
	entryLen  = 8 + sslsession.TicketKeySize
	// formatKeys bounds the keys a sealed ring may hold, whoever wrote it:
	// more than any Options that New accepts give, so that a ring that is
	// merely large is never taken for a forged one.
	formatKeys = 1024
	// maxSealed bounds what a read takes from Redis: the largest sealed
	// ring, with room for a longer nonce or tag.
	maxSealed = headerLen + 32 + 8 + 2 + formatKeys*entryLen + 32
)

func keyID(k []byte) [keyIDLen]byte {
	h := sha256.New()
	h.Write([]byte("sslsession ticketring key id\x00"))
	h.Write(k)
	var id [keyIDLen]byte
	copy(id[:], h.Sum(nil))
	return id
}

func (r *Ring) seal(gen uint64, ring []entry) ([]byte, error) {
	payload := make([]byte, 10, 10+len(ring)*entryLen)
	defer clear(payload)
	binary.BigEndian.PutUint64(payload, gen)
	binary.BigEndian.PutUint16(payload[8:], uint16(len(ring)))
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

// valueState is what a read found under the ring's Redis key.
type valueState int

const (
	stateEmpty    valueState = iota // no key
	stateOK                         // a ring this server opened
	stateForeign                    // its header names a sealing key this server does not have
	stateTampered                   // not a ring: does not open, does not parse, too large, not a string
)

// open reads a sealed ring. The header is not authenticated until the
// payload opens: a value that names an unknown sealing key is only
// reported as such, never trusted for it.
func (r *Ring) open(raw []byte) (valueState, uint64, []entry) {
	if len(raw) < headerLen || (raw[0] != version && raw[0] != version1) {
		return stateTampered, 0, nil
	}
	for i, aead := range r.aeads {
		if !bytes.Equal(raw[1:headerLen], r.ids[i][:]) {
			continue
		}
		n := aead.NonceSize()
		if len(raw) < headerLen+n+aead.Overhead() {
			return stateTampered, 0, nil
		}
		payload, err := aead.Open(nil, raw[headerLen:headerLen+n], raw[headerLen+n:], r.additional(raw[:headerLen]))
		if err != nil {
			return stateTampered, 0, nil
		}
		defer clear(payload)
		var gen uint64
		if raw[0] == version {
			if len(payload) < 8 {
				return stateTampered, 0, nil
			}
			gen, payload = binary.BigEndian.Uint64(payload), payload[8:]
		}
		ring, ok := parse(payload)
		if !ok {
			return stateTampered, 0, nil
		}
		return stateOK, gen, ring
	}
	return stateForeign, 0, nil
}

func parse(p []byte) ([]entry, bool) {
	if len(p) < 2 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if n == 0 || n > formatKeys || len(p) != n*entryLen {
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

// What a read found, as the CAS script checks it again before a write.
const (
	modeNone   = "none" // no key
	modeString = "str"  // a string of at most maxSealed bytes: compared whole
	modeBig    = "big"  // a string over maxSealed bytes: never read whole
	modeType   = "type" // a key of another type
)

// readScript returns Redis's clock and the ring's value, or what it is
// instead of a ring of bounded size: one round trip, one key (Redis
// Cluster), and never more than maxSealed bytes of value.
var readScript = redis.NewScript(`
local now = redis.call('TIME')
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return {now[1], now[2], 'none'} end
if t ~= 'string' then return {now[1], now[2], 'type'} end
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return {now[1], now[2], 'big'} end
return {now[1], now[2], 'str', redis.call('GET', KEYS[1])}
`)

// casScript sets KEYS[1] to ARGV[3] (TTL ARGV[4] ms) only if it still is
// what the read found: ARGV[1] is the read's mode, ARGV[2] the string it
// read (mode "str"), ARGV[5] the size bound.
var casScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
local m = ARGV[1]
local same = false
if m == 'none' then same = (t == 'none')
elseif m == 'type' then same = (t ~= 'none' and t ~= 'string')
elseif m == 'big' then same = (t == 'string' and redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[5]))
elseif m == 'str' then same = (t == 'string' and redis.call('GET', KEYS[1]) == ARGV[2])
end
if not same then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
`)

// readResult is one read of the ring's key.
type readResult struct {
	mode     string
	raw      []byte
	redisNow time.Time // Redis's clock during the read
	hostNow  time.Time // this host's clock in the middle of the read
}

func (r *Ring) read(ctx context.Context) (readResult, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	t0 := r.clock()
	v, err := readScript.Run(cctx, r.client, []string{r.rkey}, maxSealed).Slice()
	t1 := r.clock()
	if err != nil {
		return readResult{}, err
	}
	if len(v) < 3 {
		return readResult{}, errors.New("short reply to the read script")
	}
	sec, err1 := toInt(v[0])
	usec, err2 := toInt(v[1])
	mode, _ := v[2].(string)
	if err1 != nil || err2 != nil || mode == "" {
		return readResult{}, errors.New("malformed reply to the read script")
	}
	res := readResult{mode: mode, redisNow: time.Unix(sec, usec*1000), hostNow: t0.Add(t1.Sub(t0) / 2)}
	if r.redisClock != nil {
		res.redisNow = r.redisClock()
	}
	if mode == modeString {
		var s string
		ok := len(v) >= 4
		if ok {
			s, ok = v[3].(string)
		}
		if !ok || len(s) > maxSealed {
			return readResult{}, errors.New("malformed reply to the read script")
		}
		res.raw = []byte(s)
	}
	return res, nil
}

// toInt reads an integer the script returned as a Redis integer or a bulk
// string (TIME's fields are strings).
func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("not an integer: %T", v)
}

// write replaces what rd found with sealed; false when another server
// changed it first.
func (r *Ring) write(ctx context.Context, rd readResult, sealed []byte, ttl time.Duration) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	won, err := casScript.Run(cctx, r.client, []string{r.rkey}, rd.mode, string(rd.raw), sealed,
		max(ttl, time.Second).Milliseconds(), maxSealed).Int()
	return won == 1, err
}
