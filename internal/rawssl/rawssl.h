/*
 * The C of package rawssl: an SSL object driven over a socket descriptor
 * with OpenSSL's blocking calls, each capturing the error queue in the same
 * call, and the floors of the wrapper benchmarks.
 */
#ifndef SSLSESSION_RAWSSL_H
#define SSLSESSION_RAWSSL_H

#include <openssl/ssl.h>

#define RAWSSL_ERR_MAX 16
typedef struct {
    unsigned long codes[RAWSSL_ERR_MAX];
    int n;
    int ssl_error; /* SSL_get_error result for I/O calls, else 0 */
    int sys_errno;
} rawssl_err;

/* Operations of rawssl_io. */
#define RAWSSL_CONNECT 0
#define RAWSSL_ACCEPT 1
#define RAWSSL_SHUTDOWN 2
#define RAWSSL_READ 3
#define RAWSSL_WRITE 4

SSL *rawssl_new(SSL_CTX *ctx, rawssl_err *e);
void rawssl_free(SSL *ssl);
int rawssl_clear(SSL *ssl, rawssl_err *e);  /* 1 on success */
int rawssl_set_fd(SSL *ssl, int fd, rawssl_err *e); /* 1 on success */
/* The OpenSSL call's result; on <= 0 the error kind and queue are captured. */
int rawssl_io(SSL *ssl, int op, void *buf, int n, rawssl_err *e);
void rawssl_err_string(unsigned long code, char *buf, size_t n);

/* The floors: SSL_get0_session, and SSL_get1_session with its free. */
int rawssl_get0(const SSL *ssl);
void rawssl_get1_free(SSL *ssl);
/* The same two calls apart, as a wrapper makes them. */
SSL_SESSION *rawssl_get1(SSL *ssl);
void rawssl_session_free(SSL_SESSION *s);

#endif
