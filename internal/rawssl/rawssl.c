#include "rawssl.h"

#include <errno.h>
#include <openssl/err.h>

static void capture(rawssl_err *e)
{
    unsigned long code;
    while ((code = ERR_get_error()) != 0) {
        if (e->n < RAWSSL_ERR_MAX)
            e->codes[e->n++] = code;
    }
}

SSL *rawssl_new(SSL_CTX *ctx, rawssl_err *e)
{
    SSL *ssl;
    ERR_clear_error();
    if ((ssl = SSL_new(ctx)) == NULL)
        capture(e);
    return ssl;
}

void rawssl_free(SSL *ssl) { SSL_free(ssl); }

int rawssl_clear(SSL *ssl, rawssl_err *e)
{
    ERR_clear_error();
    if (SSL_clear(ssl) != 1) {
        capture(e);
        return 0;
    }
    return 1;
}

int rawssl_set_fd(SSL *ssl, int fd, rawssl_err *e)
{
    ERR_clear_error();
    if (SSL_set_fd(ssl, fd) != 1) {
        capture(e);
        return 0;
    }
    return 1;
}

int rawssl_io(SSL *ssl, int op, void *buf, int n, rawssl_err *e)
{
    for (;;) {
        int rv = -1, err, saved;
        ERR_clear_error();
        errno = 0;
        switch (op) {
        case RAWSSL_CONNECT:
            rv = SSL_connect(ssl);
            break;
        case RAWSSL_ACCEPT:
            rv = SSL_accept(ssl);
            break;
        case RAWSSL_SHUTDOWN:
            rv = SSL_shutdown(ssl);
            break;
        case RAWSSL_READ:
            rv = SSL_read(ssl, buf, n);
            break;
        case RAWSSL_WRITE:
            rv = SSL_write(ssl, buf, n);
            break;
        }
        if (rv > 0)
            return rv;
        saved = errno;
        err = SSL_get_error(ssl, rv);
        /* A signal interrupted the blocking socket call: Go preempts
         * goroutines with SIGURG, and a socket with SO_RCVTIMEO or
         * SO_SNDTIMEO is not restarted after a handler (signal(7)), so
         * OpenSSL sees EINTR and reports WANT_READ or WANT_WRITE. Retry;
         * a real timeout is EAGAIN and is reported. */
        if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && saved == EINTR)
            continue;
        e->ssl_error = err;
        e->sys_errno = saved;
        capture(e);
        return rv;
    }
}

void rawssl_err_string(unsigned long code, char *buf, size_t n) { ERR_error_string_n(code, buf, n); }

int rawssl_get0(const SSL *ssl) { return SSL_get0_session(ssl) != NULL; }

void rawssl_get1_free(SSL *ssl)
{
    SSL_SESSION *s = SSL_get1_session(ssl);
    if (s != NULL)
        SSL_SESSION_free(s);
}

SSL_SESSION *rawssl_get1(SSL *ssl) { return SSL_get1_session(ssl); }
void rawssl_session_free(SSL_SESSION *s) { SSL_SESSION_free(s); }
