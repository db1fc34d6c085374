package sslsession

import "unsafe"

var (
	RawGet0     = rawGet0
	RawGet1Free = rawGet1Free
	CheckSetupF = checkSetup
)

// SessionAddr is the address of the SSL_SESSION s holds (or forwards to).
func SessionAddr(s *Session) uintptr { return uintptr(unsafe.Pointer(s.target().p)) }
