// Package sslsession gives Go programs OpenSSL's real TLS session API —
// SSL_get_session(3), SSL_get0_session, SSL_get1_session and
// SSL_SESSION_free — with Go-safe lifetimes, for programs that already link
// OpenSSL through github.com/spacemonkeygo/openssl. OpenSSL 1.0.2u is the
// reference; 1.1.1 and 3.x are supported.
//
// On OpenSSL 3.x spacemonkeygo needs a compat header (this module's
// compat/spacemonkey_ossl3.h); build with
//
//	export CGO_CFLAGS="-O2 -g -include $PWD/compat/spacemonkey_ossl3.h"
//
// from the module's root (its Makefile does this by itself).
//
// # Sessions, owned and borrowed
//
// A [Session] is an SSL_SESSION held one of two ways:
//
//   - Borrowed, from [SSL.Session] (SSL_get_session, which OpenSSL also
//     names SSL_get0_session): no reference is taken, as the man page says. The
//     session is usable while it is its connection's session; once a new
//     handshake, SSL_clear or SSL_free ends it, every method returns
//     [ErrStale] instead of reading freed memory.
//   - Owned, from [SSL.Session1] (SSL_get1_session), [Session.Owned],
//     [ParseDER] or [ParsePEM]: one reference, given back by
//     [Session.Close] exactly once, or by the garbage collector if Close is
//     never called. Use after Close returns [ErrClosed].
//
// A connection without a session (the man page's NULL) gives
// [ErrNoSession]. A session belongs to one SSL_CTX: [SSL.SetSession]
// refuses another context's session with [ErrWrongContext].
//
// # Resuming
//
// [Dial] connects, offering [DialConfig].Session for resumption;
// [Conn.SessionReused] tells whether it resumed. With TLS 1.3 the server's
// tickets arrive after the handshake: [Conn.AwaitSession] reads until one
// has, and returns a resumable session (what [SSL.Session1] returns right
// after a TLS 1.3 handshake is not resumable yet). Keep sessions as objects
// to resume fastest; [Session.MarshalBinary] (DER) and
// [Session.MarshalPEM] (the format of `openssl sess_id`) store them, as
// secrets: they hold the master key.
//
// Example_saveAndResume runs the whole cycle.
//
// # Connections
//
// [Client], [Server] and [Dial] make a [Conn] on which OpenSSL reads and
// writes the socket itself (SSL_set_fd) while Go's netpoller waits for
// readiness: no OS thread blocks, deadlines apply, Read and Write may run
// concurrently, and nothing is allocated per Read or Write. Over a
// net.Conn that is not a socket (a pipe, a proxy's stream) Go moves the
// records through spacemonkeygo's memory BIOs instead, with the same
// behaviour; each method says where the two differ. [FromConn] adds the
// session calls to an existing spacemonkeygo *openssl.Conn instead (the
// drop-in path). ExampleServer serves with [Server].
//
// # Early data (TLS 1.3 0-RTT)
//
// A session's [Info].MaxEarlyData says whether it allows early data;
// [DialConfig].EarlyData sends a request with the ClientHello and
// [Conn.EarlyDataStatus] tells whether the server took it (if not, Dial
// sends it again after the handshake, or hands it back). A server allows it
// with [Ctx.SetMaxEarlyData], reads it apart from ordinary data with
// [Conn.ReadEarlyData], and decides per connection and across a fleet
// with [Ctx.SetEarlyDataPolicy]: a [ReplayCache] shared by the fleet
// (package redisstore has one) accepts each ClientHello's early data at
// most once. Early data can be replayed by anyone who saw it: answer only
// requests that are safe to repeat (docs/early-data.md).
//
// # Inspecting
//
// [Session.Info] reads the session ID, creation time, timeout, protocol,
// cipher, whether it is resumable, its ticket and whether it has a peer
// certificate, in one C call. [Session.String] shows the same. Nothing in
// the package prints, logs or marshals the master key.
//
// # The server's session cache and stores
//
// [NewCtx] gives the session side of a spacemonkeygo context: cache mode,
// size, timeout, session ID context, [Ctx.AddSession], [Ctx.RemoveSession]
// and [Ctx.Flush] (SSL_CTX_flush_sessions). [Ctx.SetStore] bridges
// OpenSSL's new, get and remove session callbacks to a [SessionStore]:
// [MemoryStore] in one process, package redisstore for a fleet of servers.
// A store that fails, stalls or panics costs a full handshake, never a
// crash ([StoreOptions] bounds it). [NewClientCache] is the client side:
// sessions kept per server, which [Dial] offers and refills.
//
// # Ticket keys
//
// [Ctx.SetTicketKeys] gives a context a ring of [TicketKey]s that take
// turns encrypting ([TicketRingKey]) and all decrypt, so tickets resume
// across servers that share the ring and through rotations; package
// ticketring keeps such a ring in Redis for a fleet, package keyfile reads
// and writes nginx's and haproxy's key files. Keys never appear in String,
// logs, JSON or errors.
//
// # Metrics
//
// [Ctx.Metrics] returns a context's [Metrics]: OpenSSL's cache counters
// ([Stats]), the store bridge's ([StoreStats]) and the ticket keys'
// ([TicketStats]); [PublishExpvar] publishes them, package prommetrics
// exports them to Prometheus. [LiveSessions] and [FinalizedSessions]
// count owned sessions, to find leaks.
//
// # Errors and versions
//
// Every error is or wraps a sentinel (test with errors.Is); a failed
// OpenSSL call is an [*Error] with the function's name and OpenSSL's error
// queue, read on the thread that failed. [CheckSetup] reports, and every
// constructor returns, an error wrapping [ErrSetup] when the loaded OpenSSL
// differs in major or minor version from the headers the package was built
// with, or when OpenSSL 1.0.2 lacks its thread callbacks. [BuildVersion]
// and [RuntimeVersion] give both versions.
//
// # Concurrency
//
// Sessions, SSL objects and contexts are safe for concurrent use. A
// borrowed session's methods take its connection's own lock — for a
// spacemonkeygo Conn the mutex its Read, Write and Handshake hold around
// their OpenSSL calls, for a [Conn] of [Client], [Server] or [Dial] the lock
// around every OpenSSL call on its SSL — so a concurrent handshake cannot
// free the session under them.
package sslsession
