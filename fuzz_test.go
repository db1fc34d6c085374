package sslsession_test

import (
	"testing"

	"github.com/sslsession/sslsession"
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
