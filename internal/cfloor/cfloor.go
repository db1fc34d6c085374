// Package cfloor is the C floor of the handshake benchmarks (make
// bench-handshake): OpenSSL at both ends of a real TCP connection on
// 127.0.0.1, non-blocking, driven by one thread in C (Run), or with the
// server on a second thread (Run2). Each handshake includes the TCP
// connect and accept, certificate and host name checks, close_notify both
// ways and the close, as a Go Dial and Close do. TCP measures connections
// alone.
package cfloor

// #cgo pkg-config: libssl libcrypto
// #cgo CFLAGS: -Wno-deprecated-declarations
// #cgo LDFLAGS: -lpthread
// #include <stdlib.h>
// #include "cfloor.h"
import "C"

import (
	"errors"
	"runtime"
	"unsafe"

	"github.com/spacemonkeygo/openssl"
	"github.com/sslsession/sslsession"
)

// The cipher suites every implementation of the benchmark uses, so that
// they encrypt alike: crypto/tls's first choice on machines with AES
// instructions. OpenSSL's default would be AES-256-GCM with SHA-384.
const (
	TLS12Cipher = "ECDHE-ECDSA-AES128-GCM-SHA256" // OpenSSL's name
	TLS13Suite  = "TLS_AES_128_GCM_SHA256"
)

// PinGroups gives a context of this library the floor's groups
// (CFLOOR_GROUPS in cfloor.h), so both do the same key exchange.
func PinGroups(ctx *openssl.Ctx) error {
	sc, err := sslsession.NewCtx(ctx)
	if err != nil {
		return err
	}
	if C.cfloor_pin_groups((*C.SSL_CTX)(sc.Pointer())) != 1 {
		return errors.New("cfloor: setting the groups failed")
	}
	return nil
}

// Floor is a server and a client context over one listening socket.
type Floor struct{ f *C.cfloor }

// New makes the contexts from a PEM certificate and key, pinned to one
// protocol version (0x0303 for TLS 1.2, 0x0304 for TLS 1.3), with
// TLS12Cipher and TLS13Suite at both ends.
func New(certPEM, keyPEM []byte, version int) (*Floor, error) {
	cc, ck := C.CString(string(certPEM)), C.CString(string(keyPEM))
	defer C.free(unsafe.Pointer(cc))
	defer C.free(unsafe.Pointer(ck))
	c12, c13 := C.CString(TLS12Cipher), C.CString(TLS13Suite)
	defer C.free(unsafe.Pointer(c12))
	defer C.free(unsafe.Pointer(c13))
	var buf [512]C.char
	f := C.cfloor_new(cc, ck, C.int(version), c12, c13, &buf[0], C.int(len(buf)))
	if f == nil {
		return nil, errors.New("cfloor: " + C.GoString(&buf[0]))
	}
	fl := &Floor{f}
	runtime.SetFinalizer(fl, (*Floor).Close)
	return fl, nil
}

// Run makes n handshakes, resumed ones when resume is set, in the calling
// goroutine's thread, and returns how many resumed.
func (f *Floor) Run(n int, resume bool) (int, error) { return f.run(n, resume, false) }

// Run2 is Run with the client in the calling goroutine's thread and the
// server on a thread of its own, each waiting on its socket with poll(2):
// two parties talking, as in a Go program, with no Go between the steps.
func (f *Floor) Run2(n int, resume bool) (int, error) { return f.run(n, resume, true) }

func (f *Floor) run(n int, resume, twoThreads bool) (int, error) {
	r := C.int(0)
	if resume {
		r = 1
	}
	var buf [512]C.char
	var got C.int
	if twoThreads {
		got = C.cfloor_run2(f.f, C.int(n), r, &buf[0], C.int(len(buf)))
	} else {
		got = C.cfloor_run(f.f, C.int(n), r, &buf[0], C.int(len(buf)))
	}
	runtime.KeepAlive(f)
	if got < 0 {
		return 0, errors.New("cfloor: " + C.GoString(&buf[0]))
	}
	return int(got), nil
}

// TCP makes n TCP connections with no TLS (connect, accept, one byte from
// client to server, close), in the calling goroutine's thread: what the
// handshakes of Run spend on connections alone.
func (f *Floor) TCP(n int) error {
	var buf [512]C.char
	got := C.cfloor_tcp(f.f, C.int(n), &buf[0], C.int(len(buf)))
	runtime.KeepAlive(f)
	if got < 0 {
		return errors.New("cfloor: " + C.GoString(&buf[0]))
	}
	return nil
}

// Close frees the contexts and closes the listening socket.
func (f *Floor) Close() {
	if f.f != nil {
		C.cfloor_free(f.f)
		f.f = nil
		runtime.SetFinalizer(f, nil)
	}
}
