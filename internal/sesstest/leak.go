package sesstest

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/sslsession/sslsession"
)

// Main runs the tests and exits, failing when owned sessions are still live
// after GC; cleanup runs after the tests. Use it as TestMain: func TestMain(m *testing.M) { sesstest.Main(m) }.
func Main(m *testing.M, cleanup ...func()) {
	code := m.Run()
	for _, f := range cleanup {
		f()
	}
	if code == 0 {
		if n := SettleLive(); n != 0 {
			fmt.Fprintf(os.Stderr, "leak check: %d owned sessions still live after GC\n", n)
			code = 1
		}
	}
	os.Exit(code)
}

// SettleLive runs the garbage collector until finalizers have given back every
// dropped session, for up to a second, and returns how many are still live.
func SettleLive() int64 {
	for i := 0; i < 100 && sslsession.LiveSessions() != 0; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	return sslsession.LiveSessions()
}
