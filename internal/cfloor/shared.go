package cfloor

import (
	"fmt"
	"sort"

	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
)

// PinSuites makes ctx use the benchmarks' cipher suites (TLS12Cipher, and
// TLS13Suite where the linked OpenSSL has TLS 1.3).
func PinSuites(ctx *openssl.Ctx) error {
	if err := ctx.SetCipherList(TLS12Cipher); err != nil {
		return err
	}
	if sslsession.MaxSupportedVersion() < sslsession.TLS13 {
		return nil
	}
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		return err
	}
	return sc.SetCipherSuites(TLS13Suite)
}

// Median is the median of xs (0 for none); xs is left as it was.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ratio prints a/b as "1.23×", or "–" when either is missing.
func Ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
