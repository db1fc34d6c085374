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
    int rv = -1;
    ERR_clear_error();
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
    if (rv <= 0) {
        e->ssl_error = SSL_get_error(ssl, rv);
        e->sys_errno = errno;
        capture(e);
    }
    return rv;
}

void rawssl_err_string(unsigned long code, char *buf, size_t n) { ERR_error_string_n(code, buf, n); }

int rawssl_get0(const SSL *ssl) { return SSL_get0_session(ssl) != NULL; }

void rawssl_get1_free(SSL *ssl)
{
    SSL_SESSION *s = SSL_get1_session(ssl);
    if (s != NULL)
        SSL_SESSION_free(s);
}
