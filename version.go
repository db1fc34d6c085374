package sslsession

// #include "session_cgo.h"
import "C"

import (
	"fmt"
)

// OpenSSLVersion is an OPENSSL_VERSION_NUMBER: 0xMNNFFPPS.
type OpenSSLVersion uint32

// Major returns the major version (1 for 1.0.2, 3 for 3.0).
func (v OpenSSLVersion) Major() int { return int(v >> 28) }

// Minor returns the minor version (0 for 1.0.2, 1 for 1.1.1).
func (v OpenSSLVersion) Minor() int { return int(v>>20) & 0xff }

// Fix returns the fix version (2 for 1.0.2u).
func (v OpenSSLVersion) Fix() int { return int(v>>12) & 0xff }

// String formats the number as OpenSSL does ("1.0.2u", "3.0.19").
func (v OpenSSLVersion) String() string {
	if v.Major() >= 3 {
		// 3.x: 0xMNN00PP0 with the patch level in PP.
		return fmt.Sprintf("%d.%d.%d", v.Major(), v.Minor(), int(v>>4)&0xff)
	}
	s := fmt.Sprintf("%d.%d.%d", v.Major(), v.Minor(), v.Fix())
	if p := int(v>>4) & 0xff; p > 0 && p <= 26 {
		s += string(rune('a' + p - 1))
	}
	return s
}

// BuildVersion is the OpenSSL version whose headers this package was
// compiled against (OPENSSL_VERSION_NUMBER).
func BuildVersion() OpenSSLVersion { return OpenSSLVersion(C.sslsess_build_version()) }

// RuntimeVersion is the OpenSSL library loaded at run time
// (OpenSSL_version_num(3), SSLeay() on 1.0.2).
func RuntimeVersion() OpenSSLVersion { return OpenSSLVersion(C.sslsess_runtime_version()) }

// RuntimeVersionText is the loaded library's own version line, e.g.
// "OpenSSL 1.0.2u  20 Dec 2019".
func RuntimeVersionText() string { return C.GoString(C.sslsess_runtime_version_text()) }

// setupErr is checked once at start-up; every constructor returns it.
var setupErr = checkSetup(BuildVersion(), RuntimeVersion(), C.sslsess_threads_ok() == 1)

func checkSetup(build, run OpenSSLVersion, threadsOK bool) error {
	if build.Major() != run.Major() || build.Minor() != run.Minor() {
		return fmt.Errorf("%w: built against OpenSSL %s but running with %s; rebuild against the loaded library",
			ErrSetup, build, run)
	}
	if !threadsOK {
		return fmt.Errorf("%w: OpenSSL %s has no locking or thread-id callbacks; it would crash under threads", ErrSetup, run)
	}
	return nil
}

// CheckSetup reports whether the loaded OpenSSL can be used: its major and
// minor version match the headers the package was built with, and (1.0.2)
// the locking and thread-id callbacks that spacemonkeygo installs are set.
// Every constructor in the package returns this error when it is not nil.
func CheckSetup() error { return setupErr }
