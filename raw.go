package sslsession

// #include "session_cgo.h"
import "C"

// The floors for the wrapper benchmarks: the same C calls the wrappers
// make, with no Go wrapping at all. Exposed to tests in export_test.go.

func rawGet0(s *SSL) bool { return C.sslsess_get0(s.p) != nil }

func rawGet1Free(s *SSL) { C.sslsess_get1_free(s.p) }
