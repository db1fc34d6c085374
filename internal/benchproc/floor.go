package main

// #cgo pkg-config: libssl libcrypto
// #cgo CFLAGS: -Wno-deprecated-declarations
// #include <stdlib.h>
// #include "floor.h"
import "C"

import (
	"errors"
	"fmt"
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

// drive runs step, one try of one OpenSSL call per cgo call, until it no
// longer wants to read (1) or write (2), waiting in the netpoller in
// between; it returns step's last answer, or the wait's error (a deadline,
// a closed connection).
func drive(rc syscall.RawConn, step func() C.int) (C.int, error) {
	var r C.int
	try := func(want C.int) func(uintptr) bool {
		return func(uintptr) bool {
			r = step()
			return r != want
		}
	}
	for {
		if err := rc.Read(try(1)); err != nil {
			return r, err
		}
		if r != 2 {
			return r, nil
		}
		if err := rc.Write(try(2)); err != nil {
			return r, err
		}
		if r != 1 {
			return r, nil
		}
	}
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
		if r, err := drive(rc, func() C.int { return C.floor_step(s, op) }); err != nil || r != 0 {
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

// The floors of the client benchmark: what any Go client that runs OpenSSL
// through cgo on Go's net pays, without this library. Both make the TCP
// connection as the library's Dial does (a net.Dialer, its defaults), and
// run the C client's own code (csrc/benchc.c) on it with its session
// handling: the session held from the seed connection, the server's
// certificate and name checked, the suite, group and resumption tallied,
// close_notify both ways, close.
//
//   - "Go+C" waits in Go's netpoller between OpenSSL's steps (one cgo call
//     per try, non-blocking socket): the shape of the library's Dial, none
//     of its code;
//   - "Go+C blocking" hands the socket to one blocking cgo call for the
//     whole connection (the C client's code as it is, socket timeouts
//     included).
type floorClient struct {
	f        *C.struct_floor_client
	blocking bool
	addr     string
	tally    [512]C.char
}

func newFloorClient(caFile string, version int, blocking bool) (*floorClient, error) {
	cf := C.CString(caFile)
	f := C.floor_client(C.int(version), cf)
	C.free(unsafe.Pointer(cf))
	if f == nil {
		return nil, errors.New("floor: the client contexts failed")
	}
	return &floorClient{f: f, blocking: blocking}, nil
}

func (c *floorClient) seed(addr, mode string) error {
	c.addr = addr
	tickets := C.int(1)
	if mode == "id" {
		tickets = 0
	}
	C.floor_client_mode(c.f, tickets)
	if mode == "full" {
		return nil
	}
	if _, err := c.conn(true); err != nil {
		return err
	}
	c.tallies() // the seed connection is not part of a round
	ticket := C.int(0)
	if mode == "ticket" {
		ticket = 1
	}
	if C.floor_client_held(c.f, ticket) != 1 {
		return fmt.Errorf("the held session is not one for resumption by %s", mode)
	}
	return nil
}

func (c *floorClient) one() (bool, error) {
	return c.conn(false)
}

// conn makes one connection; with keep set, the client holds its session
// afterwards.
func (c *floorClient) conn(keep bool) (resumed bool, err error) {
	var d net.Dialer // as Dial makes its own, with DialConfig.Timeout
	raw, err := d.Dial("tcp", c.addr)
	if err != nil {
		return false, err
	}
	defer raw.Close()
	rc, ok := rawConn(raw)
	if !ok {
		return false, errors.New("floor: not a TCP connection")
	}
	k := C.int(0)
	if keep {
		k = 1
	}
	if c.blocking {
		dup, derr := -1, error(nil)
		if err := rc.Control(func(fd uintptr) { dup, derr = syscall.Dup(int(fd)) }); err != nil {
			return false, err
		} else if derr != nil {
			return false, derr
		}
		r := C.floor_client_blocking(c.f, C.int(dup), k)
		if r < 0 {
			return false, c.failed()
		}
		return r == 1, nil
	}
	var s *C.SSL
	if err := rc.Control(func(fd uintptr) { s = C.floor_client_ssl(c.f, C.int(fd)) }); err != nil {
		return false, err
	}
	if s == nil {
		return false, c.failed()
	}
	defer C.SSL_free(s)
	for op := C.int(0); op < 3; op++ {
		r, err := drive(rc, func() C.int { return C.floor_client_step(c.f, s, op, k) })
		if err != nil {
			return false, err
		}
		if r < 0 {
			return false, c.failed()
		}
		if op == 0 {
			resumed = r == 3
		}
	}
	return resumed, nil
}

// failed is the C code's reason for the last failure.
func (c *floorClient) failed() error {
	return fmt.Errorf("floor: %s", C.GoString(C.floor_client_error(c.f)))
}

// tallies returns the suites and groups of the handshakes since its last
// call, as the C client reports them ("suites=.. groups=..").
func (c *floorClient) tallies() string {
	C.floor_client_tally(c.f, &c.tally[0], C.int(len(c.tally)))
	return C.GoString(&c.tally[0])
}
