package main

// #cgo pkg-config: libssl libcrypto
// #cgo CFLAGS: -Wno-deprecated-declarations
// #include <stdlib.h>
// #include "floor.h"
import "C"

import (
	"errors"
	"net"
	"syscall"
	"time"
	"unsafe"
)

// The floors of the server benchmark: what any Go server that runs OpenSSL
// through cgo on Go's net pays, without this library. Both accept with
// net.Listen and handle each connection in its own goroutine, as the
// library's server does, and run the C server's own code on the socket
// (floor.c includes csrc/benchc.c):
//
//   - "Go+C" waits in Go's netpoller between OpenSSL's steps (one cgo call
//     per try, non-blocking socket): the shape of the library's
//     connections, none of its code;
//   - "Go+C blocking" hands the socket to one blocking cgo call for the
//     whole connection: no netpoller, an OS thread held per connection,
//     which a library cannot do, but it shows what Go's net and one cgo
//     call cost alone.
func floorServer(certFile, keyFile string, version int, blocking bool) error {
	cf, kf := C.CString(certFile), C.CString(keyFile)
	ctx := C.floor_ctx(C.int(version), cf, kf)
	C.free(unsafe.Pointer(cf))
	C.free(unsafe.Pointer(kf))
	if ctx == nil {
		return errors.New("floor: the server context failed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	handle := floorConn
	if blocking {
		handle = floorBlocking
	}
	return serveUntilStdinEnds(ln, func(raw net.Conn) { handle(ctx, raw) })
}

// rawConn is the socket of a TCP connection, for the C code.
func rawConn(raw net.Conn) (syscall.RawConn, bool) {
	tc, ok := raw.(*net.TCPConn)
	if !ok {
		return nil, false
	}
	rc, err := tc.SyscallConn()
	return rc, err == nil
}

// floorConn runs the handshake, the read to close_notify and the shutdown
// on the non-blocking socket, waiting in the netpoller when OpenSSL wants
// to read or write.
func floorConn(ctx *C.SSL_CTX, raw net.Conn) {
	defer raw.Close()
	rc, ok := rawConn(raw)
	if !ok {
		return
	}
	var s *C.SSL
	if err := rc.Control(func(fd uintptr) { s = C.floor_new(ctx, C.int(fd)) }); err != nil || s == nil {
		return
	}
	defer C.SSL_free(s)
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	for op := C.int(0); op < 3; op++ {
		var r C.int
		try := func(want C.int) func(uintptr) bool {
			return func(uintptr) bool {
				r = C.floor_step(s, op)
				return r != want
			}
		}
		for {
			if rc.Read(try(1)) != nil {
				return
			}
			if r != 2 {
				break
			}
			if rc.Write(try(2)) != nil {
				return
			}
			if r != 1 {
				break
			}
		}
		if r != 0 {
			return
		}
	}
}

// floorBlocking gives a duplicate of the socket to the C server's code,
// which serves the connection blocking and closes it.
func floorBlocking(ctx *C.SSL_CTX, raw net.Conn) {
	defer raw.Close()
	rc, ok := rawConn(raw)
	if !ok {
		return
	}
	dup, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { dup, derr = syscall.Dup(int(fd)) }); err != nil || derr != nil {
		return
	}
	C.floor_serve_blocking(ctx, C.int(dup))
}
