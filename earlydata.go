package sslsession

// #include "earlydata_cgo.h"
// #include "callbacks_cgo.h"
// #cgo nocallback sslsess_early_supported
// #cgo nocallback sslsess_early_status
// #cgo nocallback sslsess_early_offer_max
import "C"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// TLS 1.3 early data (0-RTT), OpenSSL 1.1.1 and later: docs/early-data.md
// says what it protects and what it cannot.

// ErrEarlyDataPhase: an early data call at the wrong time or on the wrong
// side: ReadEarlyData on a client, WriteEarlyData on a client after its
// handshake began, any of them after the handshake is done, or the
// handshake completed while early data was still being read.
var ErrEarlyDataPhase = errors.New("sslsession: early data call out of place (wrong side, or after the handshake)")

// EarlyDataSupported reports whether the linked OpenSSL has TLS 1.3 early
// data (1.1.1 and later). Without it every early data call returns an error
// wrapping ErrUnsupported.
func EarlyDataSupported() bool { return C.sslsess_early_supported() == 1 }

func errEarlyUnsupported(fn string) error {
	return &Error{Func: fn, Err: fmt.Errorf("%w: TLS 1.3 early data needs OpenSSL 1.1.1 or later", ErrUnsupported)}
}

// OptionNoAntiReplay is SSL_OP_NO_ANTI_REPLAY (1.1.1+; the C build checks
// the value), for Ctx.Options: OpenSSL's single-use tickets off. A server
// that accepts early data with it and without an EarlyDataPolicy replay
// cache accepts replays (docs/early-data.md).
const OptionNoAntiReplay Option = 0x01000000

// EarlyDataStatus is SSL_get_early_data_status(3).
type EarlyDataStatus int

// Early data status values, OpenSSL's SSL_EARLY_DATA_* (the C build checks
// they agree).
const (
	EarlyDataNotSent  EarlyDataStatus = C.SSLSESS_EARLY_NOT_SENT // the client sent none
	EarlyDataRejected EarlyDataStatus = C.SSLSESS_EARLY_REJECTED // the server skipped it
	EarlyDataAccepted EarlyDataStatus = C.SSLSESS_EARLY_ACCEPTED // the server took it
)

// String names the status.
func (s EarlyDataStatus) String() string {
	switch s {
	case EarlyDataNotSent:
		return "not sent"
	case EarlyDataRejected:
		return "rejected"
	case EarlyDataAccepted:
		return "accepted"
	}
	return fmt.Sprintf("EarlyDataStatus(%d)", int(s))
}

// MaxEarlyData is SSL_SESSION_get_max_early_data(3): how many bytes of
// early data a client may send with this session, 0 when the server did
// not allow any. Info.MaxEarlyData holds the same. The error wraps
// ErrUnsupported before OpenSSL 1.1.1.
func (s *Session) MaxEarlyData() (uint32, error) {
	if !EarlyDataSupported() {
		return 0, errEarlyUnsupported("SSL_SESSION_get_max_early_data")
	}
	var n C.uint32_t
	err := s.do("SSL_SESSION_get_max_early_data", func(_ *C.SSL, p *C.SSL_SESSION) C.int {
		n = C.sslsess_early_session_max(p)
		return C.SSLSESS_OK
	})
	return uint32(n), err
}

// SetMaxEarlyData makes the server accept early data: maxEarly is what its
// session tickets allow a client to send (SSL_CTX_set_max_early_data(3)),
// recvMax what it reads at most, accepted or skipped
// (SSL_CTX_set_recv_max_early_data(3)); recvMax below maxEarly is raised to
// maxEarly. Set them before connections are made. OpenSSL's own anti-replay
// protection turns on with a nonzero max (docs/early-data.md); the
// application still sees no early data unless it calls Conn.EarlyData or
// Conn.ReadEarlyData. The error wraps ErrUnsupported before 1.1.1.
func (c *Ctx) SetMaxEarlyData(maxEarly, recvMax uint32) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if !EarlyDataSupported() {
		return errEarlyUnsupported("SSL_CTX_set_max_early_data")
	}
	recvMax = max(recvMax, maxEarly)
	var e C.sslsess_err
	rc := C.sslsess_early_ctx_set_max(c.p, C.uint32_t(maxEarly), C.uint32_t(recvMax), &e)
	runtime.KeepAlive(c)
	if rc != C.SSLSESS_OK {
		return newError("SSL_CTX_set_max_early_data", nil, &e)
	}
	return nil
}

// MaxEarlyData returns the context's early data limits
// (SSL_CTX_get_max_early_data(3), SSL_CTX_get_recv_max_early_data(3));
// 0, 0 before 1.1.1.
func (c *Ctx) MaxEarlyData() (maxEarly, recvMax uint32) {
	if c.nilCtx() {
		return 0, 0
	}
	defer runtime.KeepAlive(c)
	return uint32(C.sslsess_early_ctx_max(c.p)), uint32(C.sslsess_early_ctx_recv_max(c.p))
}

// EarlyDataRequest is what the server knows of a connection when it decides
// on its early data: the ticket was valid and fresh and the binder checked.
type EarlyDataRequest struct {
	ServerName     string    // SNI, "" when none
	RemoteAddr     net.Addr  // the client's address; nil when unknown
	SessionCreated time.Time // when the resumed session was first made
}

// ReplayCache records the ClientHellos whose early data a server accepted,
// shared by every server that can decrypt the same tickets, so that a fleet
// accepts each one's early data at most once (RFC 8446 §8.2).
// redisstore.ReplayCache is one on Redis; NewMemoryReplayCache one for a
// single process.
type ReplayCache interface {
	// Add records key until ttl has passed and reports whether this call
	// recorded it: false when it was there already (a replay). It must be
	// atomic across the fleet (Redis SET NX). An error, or no answer within
	// the policy's Timeout, refuses the early data.
	Add(ctx context.Context, key []byte, ttl time.Duration) (added bool, err error)
}

// EarlyDataPolicy decides, per connection, whether a server takes early
// data that OpenSSL would accept (SSL_CTX_set_allow_early_data_cb(3)).
type EarlyDataPolicy struct {
	// Allow, when set, is asked first; false refuses. A panic in it is
	// recovered and refuses (EarlyDataStats.Panics).
	Allow func(EarlyDataRequest) bool
	// ReplayCache, when set, is asked next with the ClientHello's random
	// (authenticated by the PSK binder): a key seen before refuses, and so
	// does an error or a timeout (EarlyDataStats.StoreFailures). Setting it
	// turns OpenSSL's single-host anti-replay off (SSL_OP_NO_ANTI_REPLAY),
	// which would refuse every ticket another host issued; the cache
	// replaces it across the fleet.
	ReplayCache ReplayCache
	// ReplayWindow is how long the cache keeps a key: default
	// DefaultReplayWindow. OpenSSL accepts early data only while the
	// client's ticket age is within 10 s of the server's, so the window
	// must exceed 11 s plus the clock skew between the servers.
	ReplayWindow time.Duration
	// Timeout bounds each cache call: default 100ms.
	Timeout time.Duration
}

// DefaultReplayWindow is EarlyDataPolicy.ReplayWindow's default: OpenSSL's
// 10 s ticket age allowance, one second of rounding, and 49 s of clock
// skew between servers.
const DefaultReplayWindow = 60 * time.Second

// minReplayWindow is the shortest window SetEarlyDataPolicy accepts.
const minReplayWindow = 11 * time.Second

// EarlyDataStats counts a context's early data. The server counts
// connections that read early data (ReadEarlyData or EarlyData); the
// client counts Dial's.
type EarlyDataStats struct {
	Offered        int64 `json:"offered"`         // the client sent early data
	Accepted       int64 `json:"accepted"`        // the server took it
	Rejected       int64 `json:"rejected"`        // the server skipped it
	Refused        int64 `json:"refused"`         // server: EarlyDataPolicy.Allow said no
	ReplaysRefused int64 `json:"replays_refused"` // server: the replay cache had seen the ClientHello
	StoreFailures  int64 `json:"store_failures"`  // server: the replay cache failed or timed out; refused
	Panics         int64 `json:"panics"`          // server: Allow or the cache panicked; refused
}

// earlyState is a context's early data policy and counters, in its hooks.
type earlyState struct {
	policy                                    atomic.Pointer[EarlyDataPolicy]
	offered, accepted, rejected, refused      atomic.Int64
	replaysRefused, storeFailures, panicCount atomic.Int64
}

func (s *earlyState) stats() EarlyDataStats {
	if s == nil {
		return EarlyDataStats{}
	}
	return EarlyDataStats{
		Offered: s.offered.Load(), Accepted: s.accepted.Load(), Rejected: s.rejected.Load(),
		Refused: s.refused.Load(), ReplaysRefused: s.replaysRefused.Load(),
		StoreFailures: s.storeFailures.Load(), Panics: s.panicCount.Load(),
	}
}

func (s *earlyState) count(st EarlyDataStatus) {
	if s == nil {
		return
	}
	switch st {
	case EarlyDataAccepted:
		s.offered.Add(1)
		s.accepted.Add(1)
	case EarlyDataRejected:
		s.offered.Add(1)
		s.rejected.Add(1)
	}
}

// earlyOf returns the early data state of an SSL_CTX, made on first use.
func earlyOf(p *C.SSL_CTX) (hk *hooks, st *earlyState, err error) {
	if hk, _ = hooksOf(p, false); hk != nil {
		if st = hk.early.Load(); st != nil {
			return hk, st, nil
		}
	}
	hooksMu.Lock()
	defer hooksMu.Unlock()
	if hk, err = hooksOf(p, true); err != nil {
		return nil, nil, err
	}
	hk.early.CompareAndSwap(nil, &earlyState{})
	return hk, hk.early.Load(), nil
}

// earlyStats reads the early data counters; zero before any early data.
func (c *Ctx) earlyStats() EarlyDataStats {
	hk, _ := hooksOf(c.p, false)
	runtime.KeepAlive(c)
	if hk == nil {
		return EarlyDataStats{}
	}
	return hk.early.Load().stats()
}

// SetEarlyDataPolicy installs p as the server's per-connection decision on
// early data (SSL_CTX_set_allow_early_data_cb(3)); it applies to
// connections made afterwards. OpenSSL asks only when it would accept the
// early data itself. See EarlyDataPolicy for the replay cache, which turns
// OpenSSL's single-host anti-replay off. The error wraps ErrUnsupported
// before 1.1.1, ErrInvalidArgument for a window under 11 s.
func (c *Ctx) SetEarlyDataPolicy(p EarlyDataPolicy) error {
	if c.nilCtx() {
		return errNilCtx
	}
	if !EarlyDataSupported() {
		return errEarlyUnsupported("SSL_CTX_set_allow_early_data_cb")
	}
	if p.ReplayWindow == 0 {
		p.ReplayWindow = DefaultReplayWindow
	}
	if p.ReplayWindow < minReplayWindow {
		return &Error{Func: "SetEarlyDataPolicy", Err: fmt.Errorf("%w: ReplayWindow %s is under %s", ErrInvalidArgument, p.ReplayWindow, minReplayWindow)}
	}
	if p.Timeout <= 0 {
		p.Timeout = 100 * time.Millisecond
	}
	defer runtime.KeepAlive(c)
	_, st, err := earlyOf(c.p)
	if err != nil {
		return err
	}
	st.policy.Store(&p)
	h := uintptr(C.sslsess_cache_handle(c.p))
	C.sslsess_early_ctx_set_cb(c.p, C.uintptr_t(h))
	C.sslsess_early_ctx_no_anti_replay(c.p, boolInt(p.ReplayCache != nil))
	return nil
}

// ClearEarlyDataPolicy removes the policy: OpenSSL alone decides again,
// with its anti-replay protection back on, for connections made afterwards.
func (c *Ctx) ClearEarlyDataPolicy() {
	if c.nilCtx() || !EarlyDataSupported() {
		return
	}
	defer runtime.KeepAlive(c)
	C.sslsess_early_ctx_set_cb(c.p, 0)
	C.sslsess_early_ctx_no_anti_replay(c.p, 0)
	if hk, _ := hooksOf(c.p, false); hk != nil {
		if st := hk.early.Load(); st != nil {
			st.policy.Store(nil)
		}
	}
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// earlyConns finds the Conn of an SSL while its server reads early data,
// for EarlyDataRequest.RemoteAddr: uintptr(*C.SSL) -> *Conn.
var earlyConns sync.Map

// sslsessGoAllowEarly is the allow_early_data callback: the policy's Allow,
// then its replay cache. It runs inside the handshake with the SSL's lock
// held: it calls nothing on the connection.
//
//export sslsessGoAllowEarly
func sslsessGoAllowEarly(h C.uintptr_t, ssl C.uintptr_t, rnd *C.uchar, n C.int, sni *C.char, created C.long) C.int {
	hk := lookupHooks(h)
	if hk == nil {
		return 0
	}
	st := hk.early.Load()
	if st == nil {
		return 0
	}
	p := st.policy.Load()
	if p == nil {
		return 0 // cleared while this connection was being made
	}
	if p.Allow != nil {
		req := EarlyDataRequest{SessionCreated: time.Unix(int64(created), 0)}
		if sni != nil {
			req.ServerName = C.GoString(sni)
		}
		if v, ok := earlyConns.Load(uintptr(ssl)); ok {
			req.RemoteAddr = v.(*Conn).RemoteAddr()
		}
		ok, panicked := callAllow(p.Allow, req)
		if panicked {
			st.panicCount.Add(1)
			return 0
		}
		if !ok {
			st.refused.Add(1)
			return 0
		}
	}
	if p.ReplayCache != nil {
		key := C.GoBytes(unsafe.Pointer(rnd), n)
		added, err := cacheAdd(p, key)
		switch {
		case errors.Is(err, errCachePanic):
			st.panicCount.Add(1)
			st.storeFailures.Add(1)
			return 0
		case err != nil:
			st.storeFailures.Add(1)
			return 0
		case !added:
			st.replaysRefused.Add(1)
			return 0
		}
	}
	return 1
}

func callAllow(f func(EarlyDataRequest) bool, req EarlyDataRequest) (ok, panicked bool) {
	defer func() {
		if recover() != nil {
			ok, panicked = false, true
		}
	}()
	return f(req), false
}

var (
	errCachePanic   = errors.New("sslsession: the replay cache panicked")
	errCacheTimeout = errors.New("sslsession: the replay cache did not answer in time")
)

// cacheAdd runs the cache's Add on its own goroutine, bounded by the
// policy's Timeout even when the cache ignores its context.
func cacheAdd(p *EarlyDataPolicy, key []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
	defer cancel()
	type result struct {
		added bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if recover() != nil {
				r = result{err: errCachePanic}
			}
			done <- r
		}()
		r.added, r.err = p.ReplayCache.Add(ctx, key, p.ReplayWindow)
	}()
	select {
	case r := <-done:
		return r.added, r.err
	case <-ctx.Done():
		return false, errCacheTimeout
	}
}

// earlyConn is a Conn's early data state: all of it is used before the
// handshake, from one goroutine.
type earlyConn struct {
	mu       sync.Mutex
	started  bool // a server's first ReadEarlyData ran
	finished bool // a server read SSL_READ_EARLY_DATA_FINISH
	counted  bool // the context's counters have this connection
	sent     int  // a client's bytes sent as early data
}

func (c *Conn) earlyState() *earlyConn {
	if e := c.early.Load(); e != nil {
		return e
	}
	c.early.CompareAndSwap(nil, &earlyConn{})
	return c.early.Load()
}

// isServer reports a server-side socket connection (SSL_is_server(3)).
func (c *Conn) isServer() bool {
	if c.ssl.lock() != nil {
		return false
	}
	defer c.ssl.unlock()
	return C.sslsess_early_is_server(c.ssl.p) == 1
}

// earlyCheck is what every early data call checks first.
func (c *Conn) earlyCheck(fn string) error {
	if c.zero() {
		return ErrNilSSL
	}
	if !EarlyDataSupported() {
		return errEarlyUnsupported(fn)
	}
	if c.t.spacemonkey() != nil {
		return &Error{Func: fn, Err: fmt.Errorf("%w: early data needs the socket connection (Client, Server, Dial on a TCP or Unix socket)", ErrUnsupported)}
	}
	if c.handshakeDone.Load() {
		return &Error{Func: fn, Err: fmt.Errorf("%w: the handshake is done", ErrEarlyDataPhase)}
	}
	return nil
}

// ReadEarlyData reads early data on a server before the handshake
// (SSL_read_early_data(3)): n > 0 bytes of early data, or 0 and io.EOF once
// there is no more (none sent, rejected, or the client's EndOfEarlyData
// came). Until then the connection must not Read, Write or Handshake;
// afterwards they complete the handshake as usual. Early data is not
// protected against replay the way the rest of the connection is: answer
// only requests that are safe to repeat (docs/early-data.md). It does not
// arrive unless the context allows it (Ctx.SetMaxEarlyData): without a
// call to ReadEarlyData or EarlyData, OpenSSL rejects early data. Between
// two reads the server may answer with WriteEarlyData, before the client
// has finished its handshake. The error wraps ErrUnsupported before 1.1.1
// or on a connection over memory BIOs (not a socket), ErrEarlyDataPhase on a client
// or after the handshake.
func (c *Conn) ReadEarlyData(b []byte) (int, error) {
	const fn = "SSL_read_early_data"
	if err := c.earlyCheck(fn); err != nil {
		return 0, err
	}
	if !c.isServer() {
		return 0, &Error{Func: fn, Err: fmt.Errorf("%w: only a server reads early data", ErrEarlyDataPhase)}
	}
	e := c.earlyState()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.finished {
		return 0, io.EOF
	}
	if len(b) == 0 {
		return 0, nil
	}
	if !e.started {
		e.started = true
		earlyConns.Store(uintptr(unsafe.Pointer(c.ssl.p)), c)
		defer earlyConns.Delete(uintptr(unsafe.Pointer(c.ssl.p)))
	}
	for {
		r, err := c.earlyIO(C.SSLSESS_OP_READ_EARLY, b)
		if err != nil {
			return 0, err
		}
		switch {
		case r.st == C.SSLSESS_IO_EARLY_FINISH:
			e.finished = true
			c.countEarly(e)
			return 0, io.EOF
		case r.st == C.SSLSESS_IO_DONE && r.n > 0:
			c.countEarly(e)
			return int(r.n), nil
		case r.st == C.SSLSESS_IO_DONE:
			continue
		}
		return 0, c.result(&step{c: c, op: C.SSLSESS_OP_READ, r: r}, fn)
	}
}

// EarlyData reads all of a server's early data (ReadEarlyData until
// io.EOF), at most limit bytes: past that the error wraps
// ErrInvalidArgument. OpenSSL itself aborts a connection whose client
// sends more than the context's receive limit (Ctx.SetMaxEarlyData), so
// limit need only be that. It returns nil and no error when there was
// none or it was rejected (EarlyDataStatus tells which). It returns when the client ends its early
// data, which takes a round trip: a server that answers at once uses
// ReadEarlyData and WriteEarlyData.
func (c *Conn) EarlyData(limit int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 16384)
	for {
		n, err := c.ReadEarlyData(buf)
		if len(out)+n > limit {
			return nil, &Error{Func: "SSL_read_early_data", Err: fmt.Errorf("%w: more than %d bytes of early data", ErrInvalidArgument, limit)}
		}
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// WriteEarlyData is SSL_write_early_data(3). On a client, before the
// handshake, it sends b as early data with the session offered (Client's
// sess): the first call sends the ClientHello; b must fit the session's
// MaxEarlyData; Handshake then completes the handshake and EarlyDataStatus
// says whether the server took b; if it did not, b was not processed and
// the client sends it again (or not) with Write. Dial does all of this with
// DialConfig.EarlyData. On a server, after ReadEarlyData returned data, it
// answers before the client has finished its handshake (the client is not
// yet authenticated). The error wraps ErrUnsupported before 1.1.1 or on a
// connection over memory BIOs (not a socket), ErrEarlyDataPhase after the
// handshake or on a server that has read no early data.
func (c *Conn) WriteEarlyData(b []byte) (int, error) {
	const fn = "SSL_write_early_data"
	if err := c.earlyCheck(fn); err != nil {
		return 0, err
	}
	e := c.earlyState()
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.isServer() && !e.started {
		return 0, &Error{Func: fn, Err: fmt.Errorf("%w: a server writes early data only after reading some", ErrEarlyDataPhase)}
	}
	n := 0
	for n < len(b) || (n == 0 && len(b) == 0) {
		r, err := c.earlyIO(C.SSLSESS_OP_WRITE_EARLY, b[n:min(len(b), n+maxIO)])
		if err != nil {
			return n, err
		}
		if r.st != C.SSLSESS_IO_DONE {
			return n, c.result(&step{c: c, op: C.SSLSESS_OP_WRITE, r: r}, fn)
		}
		n += int(r.n)
		if len(b) == 0 {
			break
		}
	}
	if !c.isServer() {
		e.sent += n
	}
	return n, nil
}

// EarlyDataStatus is SSL_get_early_data_status(3): after the handshake,
// whether the client's early data was accepted. EarlyDataNotSent before
// 1.1.1 or on a connection over memory BIOs (not a socket).
func (c *Conn) EarlyDataStatus() EarlyDataStatus {
	if c.zero() || c.ssl.lock() != nil {
		return EarlyDataNotSent
	}
	defer c.ssl.unlock()
	return EarlyDataStatus(C.sslsess_early_status(c.ssl.p))
}

// countEarly adds the connection's early data status to its context's
// counters, once.
func (c *Conn) countEarly(e *earlyConn) {
	if e.counted {
		return
	}
	st := c.EarlyDataStatus()
	if st == EarlyDataNotSent {
		return
	}
	e.counted = true
	if c.ssl.lock() != nil {
		return
	}
	p := C.sslsess_early_ssl_ctx(c.ssl.p)
	c.ssl.unlock()
	if _, s, err := earlyOf(p); err == nil {
		s.count(st)
	}
	runtime.KeepAlive(c)
}

// earlyIO runs one early data operation to its end, waiting for readiness
// in between, under the handshake lock.
func (c *Conn) earlyIO(op C.int, b []byte) (C.sslsess_io, error) {
	c.hsMu.Lock()
	defer c.hsMu.Unlock()
	if c.hsErr != nil {
		return C.sslsess_io{}, c.hsErr
	}
	if c.handshakeDone.Load() {
		return C.sslsess_io{}, &Error{Func: "SSL_read_early_data", Err: ErrEarlyDataPhase}
	}
	var s step
	s.init(c, op)
	s.buf = b
	err := c.t.run(&s)
	return s.r, err
}

// dialEarly sends DialConfig.EarlyData before Dial's handshake: as much as
// the session allows as early data, none when it allows none.
func (c *Conn) dialEarly(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if err := c.earlyCheck("SSL_write_early_data"); err != nil {
		return err
	}
	if err := c.ssl.lock(); err != nil {
		return err
	}
	allowed := int(C.sslsess_early_offer_max(c.ssl.p))
	c.ssl.unlock()
	if allowed == 0 {
		return nil
	}
	_, err := c.WriteEarlyData(data[:min(len(data), allowed)])
	return err
}

// dialEarlyDone runs after Dial's handshake: it counts the early data and
// writes what the server has not taken, unless keep and it was rejected.
func (c *Conn) dialEarlyDone(data []byte, keep bool) error {
	if len(data) == 0 {
		return nil
	}
	e := c.earlyState()
	st := c.EarlyDataStatus()
	if e.sent > 0 {
		c.countEarly(e)
	}
	rest := data
	switch {
	case st == EarlyDataAccepted:
		rest = data[e.sent:]
	case st == EarlyDataRejected && keep:
		rest = nil
	}
	if len(rest) == 0 {
		return nil
	}
	_, err := c.Write(rest)
	return err
}
