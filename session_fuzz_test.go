package sslsession_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// seedDER is a real session's DER, the fuzzers' starting point.
func seedDER(f *testing.F) []byte {
	s := ownedSession(f)
	defer s.Close()
	der, err := s.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	return der
}

// FuzzParseDER: any input either fails with a typed error or gives a
// session that every method can read and that encodes again.
func FuzzParseDER(f *testing.F) {
	der := seedDER(f)
	f.Add(der)
	f.Add(der[:len(der)/2])
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := sslsession.ParseDER(in)
		if err != nil {
			var oe *sslsession.Error
			if s != nil || !asError(err, &oe) {
				t.Fatalf("untyped error or session with error: %v", err)
			}
			return
		}
		defer s.Close()
		exercise(t, s)
	})
}

// FuzzParsePEM: likewise for PEM text.
func FuzzParsePEM(f *testing.F) {
	s := ownedSession(f)
	p, err := s.MarshalPEM()
	s.Close()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Add([]byte("-----BEGIN SSL SESSION PARAMETERS-----\n-----END SSL SESSION PARAMETERS-----\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := sslsession.ParsePEM(in)
		if err != nil {
			return
		}
		defer s.Close()
		exercise(t, s)
	})
}

func exercise(t *testing.T, s *sslsession.Session) {
	if _, err := s.Info(); err != nil {
		t.Fatal(err)
	}
	_ = s.String()
	if _, err := s.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	_, _ = s.PeerCertificate()
	if _, err := s.MasterKey(); err != nil {
		t.Fatal(err)
	}
	o, err := s.Owned()
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
}

// FuzzParse: Parse decides DER or PEM by structure; any input gives a
// typed error or a readable session.
func FuzzParse(f *testing.F) {
	der := seedDER(f)
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: sslsession.PEMType, Bytes: der}))
	f.Add(append([]byte("text\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), pem.EncodeToMemory(&pem.Block{Type: sslsession.PEMType, Bytes: der})...))
	f.Add([]byte("-----BEGIN"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := sslsession.Parse(in)
		if err != nil {
			if s != nil || !errors.Is(err, sslsession.ErrMalformed) {
				t.Fatalf("error without ErrMalformed, or a session with an error: %v", err)
			}
			return
		}
		defer s.Close()
		exercise(t, s)
	})
}

// fuzzStore returns, for every Get, what the fuzzer chose: bytes, an
// error, a panic, or the real value.
type fuzzStore struct {
	*sslsession.MemoryStore
	mu   sync.Mutex
	mode byte
	val  []byte
}

func (s *fuzzStore) set(mode byte, val []byte) {
	s.mu.Lock()
	s.mode, s.val = mode, val
	s.mu.Unlock()
}

func (s *fuzzStore) Get(ctx context.Context, id []byte) ([]byte, error) {
	s.mu.Lock()
	mode, val := s.mode, s.val
	s.mu.Unlock()
	real, err := s.MemoryStore.Get(ctx, id)
	switch mode % 8 {
	case 0:
		return val, nil
	case 1: // the real value with the fuzzer's bytes spliced in
		if err != nil || len(real) == 0 {
			return val, nil
		}
		out := append([]byte(nil), real...)
		at := int(mode) % len(out)
		copy(out[at:], val)
		return out, nil
	case 2:
		return nil, errors.New(string(val))
	case 3:
		return val, fmt.Errorf("wrapped: %w", sslsession.ErrNotFound)
	case 4:
		panic(string(val))
	case 5:
		var e *sslsession.Error
		return val, e
	case 6:
		return real, err
	}
	return nil, sslsession.ErrInvalidValue
}

// FuzzStoreLookup: whatever a store's Get returns, in a real handshake,
// the handshake completes (resumed or full) and the server never fails.
func FuzzStoreLookup(f *testing.F) {
	v := sslsession.TLS12
	oc, sc := sesstest.StatefulServerCtx(f, v, "fuzz")
	sc.SetCacheMode(sslsession.CacheServer | sslsession.CacheNoInternal)
	store := &fuzzStore{MemoryStore: sslsession.NewMemoryStore(0), mode: 6}
	if err := sc.SetStore(store, sslsession.StoreOptions{Timeout: time.Second}); err != nil {
		f.Fatal(err)
	}
	srv := sesstest.Serve(f, oc)
	cctx := sesstest.ClientCtx(f, v)
	_, s1 := sesstest.Roundtrip(f, srv.Addr, cctx, nil)
	der := mustDER(f, s1)
	f.Cleanup(func() { s1.Close() })
	f.Add(byte(0), der)
	f.Add(byte(1), []byte{0x30, 0x82})
	f.Add(byte(2), []byte("store down"))
	f.Add(byte(4), []byte("boom"))
	f.Add(byte(6), []byte(nil))
	f.Fuzz(func(t *testing.T, mode byte, val []byte) {
		store.set(mode, val)
		_, s, err := sesstest.TryRoundtrip(srv.Addr, cctx, s1)
		if err != nil {
			t.Fatalf("handshake failed with store mode %d: %v", mode, err)
		}
		s.Close()
		if n := srv.Failed(); n != 0 {
			t.Fatalf("%d server handshakes failed", n)
		}
	})
}
