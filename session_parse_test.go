package sslsession_test

import (
	"bytes"
	"crypto/rand"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"math"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
)

// sessionFields splits a session's DER (an ASN.1 SEQUENCE) into its
// elements; joinFields puts them back.
func sessionFields(t *testing.T, der []byte) []asn1.RawValue {
	t.Helper()
	var outer asn1.RawValue
	rest, err := asn1.Unmarshal(der, &outer)
	require.NoError(t, err)
	require.Empty(t, rest)
	var out []asn1.RawValue
	for b := outer.Bytes; len(b) > 0; {
		var v asn1.RawValue
		b, err = asn1.Unmarshal(b, &v)
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}

func joinFields(t *testing.T, fields []asn1.RawValue) []byte {
	t.Helper()
	var body []byte
	for _, f := range fields {
		body = append(body, f.FullBytes...)
	}
	der, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
	require.NoError(t, err)
	return der
}

func rawOf(t *testing.T, v any, params string) asn1.RawValue {
	t.Helper()
	b, err := asn1.MarshalWithParams(v, params)
	require.NoError(t, err)
	var r asn1.RawValue
	_, err = asn1.Unmarshal(b, &r)
	require.NoError(t, err)
	return r
}

// setTagged replaces (or adds, keeping tag order) the explicit [tag]
// INTEGER field of a session's DER.
func setTagged(t *testing.T, der []byte, tag int, v *big.Int) []byte {
	t.Helper()
	fields := sessionFields(t, der)
	nv := rawOf(t, v, "explicit,tag:"+itoa(tag))
	for i, f := range fields {
		if f.Class == asn1.ClassContextSpecific && f.Tag == tag {
			fields[i] = nv
			return joinFields(t, fields)
		}
		if f.Class == asn1.ClassContextSpecific && f.Tag > tag {
			fields = append(fields[:i], append([]asn1.RawValue{nv}, fields[i:]...)...)
			return joinFields(t, fields)
		}
	}
	return joinFields(t, append(fields, nv))
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

// MasterKey returns the real bytes of any master key a decoded session
// holds (49 to 65 bytes were zeros on 3.0), or the DER is refused.
func TestMasterKeyAnyLength(t *testing.T) {
	s := ownedSession(t)
	der := mustDER(t, s)
	s.Close()
	accepted := 0
	lengths := []int{255, 256, 257, 511, 512, 513, 1024, 1025}
	for n := 1; n <= 80; n++ {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		key := make([]byte, n)
		_, _ = rand.Read(key)
		fields := sessionFields(t, der)
		// SSLSessionASN1: version, ssl_version, cipher, session_id, master_key.
		fields[4] = rawOf(t, key, "")
		d, err := sslsession.ParseDER(joinFields(t, fields))
		if err != nil {
			require.ErrorIs(t, err, sslsession.ErrMalformed, "%d-byte key", n)
			continue
		}
		accepted++
		got, err := d.MasterKey()
		require.NoError(t, err, "%d-byte key", n)
		require.Equal(t, key, got, "%d-byte key", n)
		d.Close()
	}
	t.Logf("%d of %d master key lengths decode", accepted, len(lengths))
	require.GreaterOrEqual(t, accepted, 48)
}

// Info saturates: huge timeouts and lifetime hints never become negative
// durations, and any creation time marshals to JSON.
func TestInfoSaturates(t *testing.T) {
	s := ownedSession(t)
	der := mustDER(t, s)
	s.Close()
	huge := new(big.Int).Lsh(big.NewInt(1), 40)
	// [2] timeout, [9] ticket lifetime hint (SSLSessionASN1).
	for _, tag := range []int{2, 9} {
		d, err := sslsession.ParseDER(setTagged(t, der, tag, huge))
		if err != nil {
			require.ErrorIs(t, err, sslsession.ErrMalformed)
			continue
		}
		info, err := d.Info()
		require.NoError(t, err)
		require.GreaterOrEqual(t, info.Timeout, time.Duration(0))
		require.GreaterOrEqual(t, info.TicketLifetimeHint, time.Duration(0))
		if tag == 2 {
			require.Equal(t, time.Duration(math.MaxInt64), info.Timeout)
		}
		_, err = json.Marshal(info)
		require.NoError(t, err)
		d.Close()
	}
	d, err := sslsession.ParseDER(der)
	require.NoError(t, err)
	defer d.Close()
	for _, c := range []int64{1 << 62, -(1 << 62), math.MaxInt32 * 1000, -1} {
		require.NoError(t, d.SetCreated(time.Unix(c, 0)))
		info, err := d.Info()
		require.NoError(t, err)
		_, err = json.Marshal(info)
		require.NoError(t, err, "created %d", c)
		require.NotEmpty(t, info.String())
		require.Equal(t, 4, len(strings.SplitN(info.Created.UTC().Format(time.RFC3339), "-", 2)[0]))
	}
}

// Parse decides by structure: DER whose certificate mentions "-----BEGIN"
// is DER; PEM with any amount of text before its block is PEM.
func TestParseByStructure(t *testing.T) {
	cert, err := loopback.SelfSignedNamed("-----BEGIN SSL SESSION PARAMETERS-----")
	require.NoError(t, err)
	sctx, err := loopback.ServerCtx(cert, loopback.Config{Max: sslsession.TLS12})
	require.NoError(t, err)
	srv, err := loopback.Serve(sctx, cert)
	require.NoError(t, err)
	defer srv.Close()
	cctx, err := loopback.ClientCtx(cert, 0, sslsession.TLS12)
	require.NoError(t, err)
	c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, InsecureSkipVerify: true})
	require.NoError(t, err)
	s, err := c.Session1()
	require.NoError(t, err)
	c.Close()
	defer s.Close()
	der := mustDER(t, s)
	require.True(t, bytes.Contains(der, []byte("-----BEGIN")), "the certificate's subject is in the DER")
	p, err := sslsession.Parse(der)
	require.NoError(t, err)
	p.Close()

	pemData, err := s.MarshalPEM()
	require.NoError(t, err)
	long := append(bytes.Repeat([]byte("comment line\n"), 1000), pemData...)
	p, err = sslsession.Parse(long)
	require.NoError(t, err)
	p.Close()

	_, err = sslsession.Parse([]byte("neither"))
	require.ErrorIs(t, err, sslsession.ErrMalformed)
	_, err = sslsession.Parse(nil)
	require.ErrorIs(t, err, sslsession.ErrMalformed)
}

// ParsePEM skips blocks of other types before the session's, as `openssl
// sess_id -cert` writes (a CERTIFICATE, then the session).
func TestParsePEMAfterCertificate(t *testing.T) {
	s := ownedSession(t)
	defer s.Close()
	pemData, err := s.MarshalPEM()
	require.NoError(t, err)
	cert, err := s.PeerCertificate()
	require.NoError(t, err)
	both := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), pemData...)
	p, err := sslsession.ParsePEM(both)
	require.NoError(t, err)
	p.Close()
	p, err = sslsession.Parse(both)
	require.NoError(t, err)
	p.Close()
	_, err = sslsession.ParsePEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	require.ErrorIs(t, err, sslsession.ErrMalformed)
}

// newerSessionFiles are sessions OpenSSL 3 wrote (openssl s_client
// -sess_out), which the command's tests share.
var newerSessionFiles = []string{"cmd/sslsession/testdata/session-openssl3-tls12.pem", "cmd/sslsession/testdata/session-openssl3-tls13.pem"}

// A session a newer OpenSSL wrote is ErrNewerFormat (and ErrMalformed) on
// the versions that cannot read it, and a session on those that can;
// damaged bytes are never blamed on a newer OpenSSL.
func TestParseNewerFormat(t *testing.T) {
	v := sslsession.RuntimeVersion()
	for _, path := range newerSessionFiles {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		s, err := sslsession.Parse(data)
		if v.Major() >= 3 {
			require.NoError(t, err, path)
			s.Close()
			continue
		}
		require.Nil(t, s)
		require.ErrorIs(t, err, sslsession.ErrNewerFormat, path)
		require.ErrorIs(t, err, sslsession.ErrMalformed, path)
	}
	s := ownedSession(t)
	der := mustDER(t, s)
	s.Close()
	// A field no version knows, in a session whose protocol is not TLS:
	// the decoder's complaint is a newer format's, the structure is not.
	fields := sessionFields(t, der)
	fields[1] = rawOf(t, 0x9999, "")
	fields = append(fields, rawOf(t, 1, "explicit,tag:30"))
	for name, bad := range map[string][]byte{
		"truncated":              der[:len(der)/2],
		"unknown field, not TLS": joinFields(t, fields),
		"not a session":          {0x30, 0x06, 0x02, 0x01, 0x01, 0x04, 0x01, 0x00},
		"trailing garbage":       append(append([]byte(nil), der...), 0x30, 0x00),
	} {
		_, err := sslsession.ParseDER(bad)
		require.ErrorIs(t, err, sslsession.ErrMalformed, name)
		assert.NotErrorIs(t, err, sslsession.ErrNewerFormat, name)
	}
}

// Fields of the wrong type, size or place are ErrMalformed on every
// version, and cost no memory: OpenSSL 1.0.2's decoder does not free its
// working buffer on these error paths, so the library screens 1.0.2's
// format before calling it (make test-asan checks that nothing leaks).
func TestParseMalformedFields(t *testing.T) {
	s := ownedSession(t)
	der := mustDER(t, s)
	s.Close()
	fields := sessionFields(t, der)
	with := func(i int, f asn1.RawValue) []byte {
		fs := append([]asn1.RawValue(nil), fields...)
		fs[i] = f
		return joinFields(t, fs)
	}
	plus := func(fs ...asn1.RawValue) []byte {
		return joinFields(t, append(append([]asn1.RawValue(nil), fields...), fs...))
	}
	for name, bad := range map[string][]byte{
		"unknown protocol":              with(1, rawOf(t, 0x9999, "")),
		"3-byte cipher":                 with(2, rawOf(t, []byte{0, 0xc0, 0x2b}, "")),
		"session ID is an INTEGER":      with(3, rawOf(t, 7, "")),
		"master key is an INTEGER":      with(4, rawOf(t, 7, "")),
		"format version is a string":    with(0, rawOf(t, []byte{1}, "")),
		"time again, out of order":      plus(rawOf(t, 1, "explicit,tag:1")),
		"certificate is an INTEGER":     plus(rawOf(t, 1, "explicit,tag:3")),
		"ticket is an INTEGER":          plus(rawOf(t, 1, "explicit,tag:10")),
		"a universal field after these": plus(rawOf(t, 1, "")),
	} {
		_, err := sslsession.ParseDER(bad)
		require.ErrorIs(t, err, sslsession.ErrMalformed, name)
		assert.NotErrorIs(t, err, sslsession.ErrNewerFormat, name)
	}
}
