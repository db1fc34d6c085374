//go:build memory

package sslsession_test

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
)

// peakRSS is the process's high-water resident set (VmHWM), in bytes.
func peakRSS(t *testing.T) int64 {
	f, err := os.Open("/proc/self/status")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestMemoryMillionSessions drops 1,000,000 owned sessions without Close
// (make test-memory): the finalizers keep up, peak RSS stays under 100 MB,
// and no session is live after GC.
func TestMemoryMillionSessions(t *testing.T) {
	ssl := getFixture(t).ssl
	for i := 0; i < 1_000_000; i++ {
		if _, err := ssl.Session1(); err != nil {
			t.Fatal(err)
		}
	}
	assert.Equal(t, int64(0), settle())
	runtime.GC()
	peak := peakRSS(t)
	t.Logf("peak RSS %.1f MB, finalized %d", float64(peak)/(1<<20), sslsession.FinalizedSessions())
	assert.Less(t, peak, int64(100<<20))
}
