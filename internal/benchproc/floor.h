/*
 * The floors of the server benchmark: a Go program that accepts with Go's
 * net and runs OpenSSL on the socket through cgo, without this library.
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

#endif
