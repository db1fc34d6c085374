/*
 * The C floor of the handshake benchmarks: OpenSSL at both ends of a real
 * TCP connection on 127.0.0.1, non-blocking, driven by one thread with
 * poll(2). No Go between the steps: what OpenSSL and the kernel cost.
 */
#ifndef SSLSESSION_CFLOOR_H
#define SSLSESSION_CFLOOR_H

#include <openssl/ssl.h>

typedef struct cfloor cfloor;

/* The groups of both ends from OpenSSL 1.1.1 (X25519 first; P-256 for the
 * ECDSA certificate in TLS 1.2), as crypto/tls is pinned in the benchmark:
 * OpenSSL 3.5's default list would add an X25519MLKEM768 key share. */
#define CFLOOR_GROUPS "X25519:P-256"
/* Sets CFLOOR_GROUPS on ctx (nothing before 1.1.1, where P-256 is set
 * elsewhere); 1 on success. */
int cfloor_pin_groups(SSL_CTX *ctx);

/* version: 0x0303 (TLS 1.2) or 0x0304 (TLS 1.3); both ends use cipher
 * (SSL_CTX_set_cipher_list) and, from 1.1.1, suite (SSL_CTX_set_ciphersuites).
 * Returns NULL and fills err on failure. */
cfloor *cfloor_new(const char *cert_pem, const char *key_pem, int version, const char *cipher, const char *suite,
                   char *err, int errlen);
void cfloor_free(cfloor *f);
/* Runs n handshakes (TCP connect and accept, TLS handshake, close_notify
 * both ways, close), resuming a held session when resume is set. Returns
 * the number of handshakes that resumed, or -1 on failure (err filled). */
int cfloor_run(cfloor *f, int n, int resume, char *err, int errlen);
/* cfloor_run with the client and the server on two threads, each waiting
 * on its own socket with poll(2): the shape of a Go program where two
 * goroutines talk, in C. */
int cfloor_run2(cfloor *f, int n, int resume, char *err, int errlen);
/* Runs n TCP connections alone, no TLS: connect, accept, one byte from the
 * client to the server, close both. Returns n, or -1 on failure. */
int cfloor_tcp(cfloor *f, int n, char *err, int errlen);

#endif
