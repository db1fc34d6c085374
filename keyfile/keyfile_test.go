package keyfile_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/keyfile"
)

func newKey(t testing.TB, size int) sslsession.TicketKey {
	t.Helper()
	k, err := sslsession.NewTicketKey()
	require.NoError(t, err)
	if size == sslsession.TicketKeySize {
		return k
	}
	k2, err := sslsession.ParseTicketKey(k.Bytes()[:size])
	require.NoError(t, err)
	return k2
}

// secretsOf are the hex and raw forms of a key's secret parts.
func secretsOf(k sslsession.TicketKey) []string {
	b := k.Bytes()[sslsession.TicketKeyNameSize:]
	return []string{hex.EncodeToString(b[:8]), hex.EncodeToString(b[len(b)-8:]), string(b[:8]),
		base64.StdEncoding.EncodeToString(b)[:12]}
}

func TestReadersRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t, sslsession.TicketKeySize)
	line, err := keyfile.HAProxyLine(k)
	require.NoError(t, err)
	k48 := newKey(t, sslsession.TicketKeySize128)
	line48, err := keyfile.HAProxyLine(k48)
	require.NoError(t, err)
	for name, content := range map[string][]byte{
		"empty":       nil,
		"79 bytes":    k.Bytes()[:79],
		"81 bytes":    append(k.Bytes(), 1),
		"zero key":    make([]byte, 80),
		"huge":        bytes.Repeat(k.Bytes(), keyfile.MaxFileSize/80+2),
		"base64 text": []byte(line + "\n"),
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		require.NoError(t, os.WriteFile(p, content, 0o600))
		_, err := keyfile.ReadNginx(p)
		require.ErrorIs(t, err, keyfile.ErrFormat, name)
		for _, s := range secretsOf(k) {
			assert.NotContains(t, err.Error(), s, name)
		}
	}
	for name, content := range map[string]string{
		"two keys":   line + "\n" + line + "\n",
		"not base64": "!!!!\n" + line + "\n" + line + "\n",
		"short key":  base64.StdEncoding.EncodeToString(k.Bytes()[:47]) + "\n" + line + "\n" + line + "\n",
		"long line":  strings.Repeat("A", 200) + "\n" + line + "\n" + line + "\n",
		"mixed":      line + "\n" + line48 + "\n" + line + "\n",
		"huge":       strings.Repeat(line+"\n", keyfile.MaxFileSize/len(line)+2),
	} {
		p := filepath.Join(dir, "hp_"+strings.ReplaceAll(name, " ", "_"))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		_, err := keyfile.ReadHAProxy(p)
		require.ErrorIs(t, err, keyfile.ErrFormat, name)
		for _, s := range append(secretsOf(k), line[:24]) {
			assert.NotContains(t, err.Error(), s, name)
		}
	}
	_, err = keyfile.ReadNginx(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestHAProxyLineRoundTrip(t *testing.T) {
	for _, size := range []int{sslsession.TicketKeySize128, sslsession.TicketKeySize} {
		k := newKey(t, size)
		line, err := keyfile.HAProxyLine(k)
		require.NoError(t, err)
		raw, err := base64.StdEncoding.DecodeString(line)
		require.NoError(t, err)
		require.Len(t, raw, size)
		b := k.Bytes()
		require.Equal(t, b[:16], raw[:16], "the name first")
		if size == sslsession.TicketKeySize {
			assert.Equal(t, b[48:], raw[16:48], "haproxy: the AES key before the HMAC key")
			assert.Equal(t, b[16:48], raw[48:])
		} else {
			assert.Equal(t, b, raw, "48-byte keys: the same layout as nginx's")
		}
		back, err := keyfile.ParseHAProxyLine(line)
		require.NoError(t, err)
		assert.True(t, back.Equal(k))
	}
	_, err := keyfile.HAProxyLine(sslsession.TicketKey{})
	require.ErrorIs(t, err, keyfile.ErrFormat)
}

func TestOrders(t *testing.T) {
	now := time.Now()
	k := make([]sslsession.TicketKey, 5)
	for i := range k {
		k[i] = newKey(t, sslsession.TicketKeySize)
	}
	ring := []sslsession.TicketRingKey{
		{Key: k[0], Encrypt: true, Start: now.Add(-3 * time.Hour), Until: now.Add(-time.Minute)}, // gone
		{Key: k[1], Encrypt: true, Start: now.Add(-2 * time.Hour)},
		{Key: k[2], Encrypt: true, Start: now.Add(-time.Hour)}, // encrypts
		{Key: k[3], Encrypt: true, Start: now.Add(time.Hour)},  // next
		{Key: k[4], Start: now.Add(-90 * time.Minute)},         // decrypt-only
	}
	names := func(keys []sslsession.TicketKey) []sslsession.TicketKey { return keys }
	got, err := keyfile.Order(now, ring)
	require.NoError(t, err)
	assert.Equal(t, names([]sslsession.TicketKey{k[2], k[3], k[4], k[1]}), got, "encrypting, then newest first, expired left out")
	hp, err := keyfile.HAProxyOrder(now, ring)
	require.NoError(t, err)
	assert.Equal(t, []sslsession.TicketKey{k[1], k[4], k[2], k[3]}, hp, "older, newest other, encrypting, next")
	assert.Equal(t, k[2], hp[keyfile.HAProxyEncrypting(hp)])

	// Without a next key: the oldest other key goes last.
	hp, err = keyfile.HAProxyOrder(now, ring[:3])
	require.NoError(t, err)
	assert.Equal(t, []sslsession.TicketKey{k[2], k[1]}, hp[1:])
	assert.Equal(t, k[2], hp[keyfile.HAProxyEncrypting(hp)])
	require.GreaterOrEqual(t, len(hp), keyfile.HAProxyKeys)
	// One key: repeated to haproxy's minimum.
	hp, err = keyfile.HAProxyOrder(now, ring[2:3])
	require.NoError(t, err)
	assert.Equal(t, []sslsession.TicketKey{k[2], k[2], k[2]}, hp)

	_, err = keyfile.Order(now, ring[:1])
	require.ErrorIs(t, err, keyfile.ErrFormat, "no key encrypts")
	mixed := append([]sslsession.TicketRingKey{{Key: newKey(t, sslsession.TicketKeySize128)}}, ring[1:3]...)
	_, err = keyfile.HAProxyOrder(now, mixed)
	require.ErrorIs(t, err, keyfile.ErrFormat, "haproxy takes one size")
}

func TestPublish(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	k1, k2 := newKey(t, sslsession.TicketKeySize), newKey(t, sslsession.TicketKeySize128)
	ring := []sslsession.TicketRingKey{{Key: k1, Encrypt: true, Start: now.Add(-time.Hour)}, {Key: k2, Encrypt: true, Start: now.Add(time.Hour)}}
	nf := &keyfile.NginxFiles{Paths: []string{filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key"), filepath.Join(dir, "c.key")}}
	var changes int
	var failures []error
	hook := nf.Hook(func() { changes++ }, func(err error) { failures = append(failures, err) })
	hook(now, ring)
	hook(now, ring)
	assert.Equal(t, 1, changes, "the second publication of the same ring changes nothing")
	assert.Empty(t, failures)
	got, err := keyfile.ReadNginx(nf.Paths...)
	require.NoError(t, err)
	assert.Equal(t, []sslsession.TicketKey{k1, k2, k1}, got, "two keys in three files: the encrypting key repeats")
	for _, p := range nf.Paths {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 3, "no temporary file left behind")
	hook(now.Add(2*time.Hour), ring) // k2 encrypts now
	assert.Equal(t, 2, changes)
	got, err = keyfile.ReadNginx(nf.Paths[0])
	require.NoError(t, err)
	assert.Equal(t, k2, got[0])
	hook(now, nil)
	require.Len(t, failures, 1)
	assert.ErrorIs(t, failures[0], keyfile.ErrFormat)

	hf := &keyfile.HAProxyFile{Path: filepath.Join(dir, "tickets")}
	same := []sslsession.TicketRingKey{{Key: k1, Encrypt: true, Start: now.Add(-time.Hour)}}
	changed, err := hf.Publish(now, same)
	require.NoError(t, err)
	require.True(t, changed)
	changed, err = hf.Publish(now, same)
	require.NoError(t, err)
	require.False(t, changed)
	keys, err := keyfile.ReadHAProxy(hf.Path)
	require.NoError(t, err)
	assert.Equal(t, k1, keys[keyfile.HAProxyEncrypting(keys)])
	_, err = (&keyfile.HAProxyFile{}).Publish(now, same)
	assert.True(t, errors.Is(err, keyfile.ErrFormat))
}
