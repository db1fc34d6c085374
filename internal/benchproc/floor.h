/*
 * The floors of the benchmarks: a Go program that makes its connections
 * with Go's net and runs OpenSSL on the socket through cgo, without this
 * library, with the C programs' own code (csrc/benchc.c).
 */
#ifndef BENCHPROC_FLOOR_H
#define BENCHPROC_FLOOR_H

#include <openssl/ssl.h>

/* The C server's context (version 0x0303 or 0x0304); NULL on failure. */
SSL_CTX *floor_ctx(int version, const char *certfile, const char *keyfile);
/* An SSL in accept state on a non-blocking fd, read-ahead on. */
SSL *floor_new(SSL_CTX *ctx, int fd);
/* One try of op (0 handshake, 1 read to close_notify, 2 shutdown): 0 done,
 * 1 wants to read, 2 wants to write, -1 failed. */
int floor_step(SSL *s, int op);
/* The C server's whole connection on fd, blocking, in one call; closes fd. */
void floor_serve_blocking(SSL_CTX *ctx, int fd);

/* The C client's state: its two contexts (tickets on and off), the
 * session it holds, its tally of suites and groups, the last error. */
struct floor_client;
/* The C client's state for version (0x0303 or 0x0304) and the CA file;
 * NULL on failure. */
struct floor_client *floor_client(int version, const char *cafile);
/* Drops the held session and picks the context: tickets on, or off
 * (resumption by session ID). */
void floor_client_mode(struct floor_client *f, int tickets);
/* 1 when a session is held and has a ticket exactly when ticket is set. */
int floor_client_held(struct floor_client *f, int ticket);
/* An SSL in connect state on a non-blocking fd as the C client sets it up
 * (the name "localhost", the held session, read-ahead); NULL on failure,
 * the reason in floor_client_error. */
SSL *floor_client_ssl(struct floor_client *f, int fd);
/* One try of op: 0 the handshake, then the C client's checks of the
 * server and its tally; 1 close_notify; 2 read to the server's
 * close_notify (TLS 1.3 tickets on the way), then with keep set hold the
 * session. 0 done (3: the handshake done, resumed), 1 wants to read, 2
 * wants to write, -1 failed (the reason in floor_client_error). */
int floor_client_step(struct floor_client *f, SSL *s, int op, int keep);
/* The C client's whole connection on fd, blocking, in one call; closes
 * fd. 0 done, 1 done and resumed, -1 failed (floor_client_error). */
int floor_client_blocking(struct floor_client *f, int fd, int keep);
/* The last failure's reason. */
const char *floor_client_error(struct floor_client *f);
/* Writes the tally since the last call as "suites=.. groups=.." into buf
 * and starts a new one. */
void floor_client_tally(struct floor_client *f, char *buf, int len);

#endif
