#include "conn_cgo.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <openssl/x509v3.h>

#ifdef SSLSESS_OSSL102
/* 1.0.2 has no SSL_OP_NO_RENEGOTIATION. A client ignores HelloRequest when
 * SSL3_FLAGS_NO_RENEGOTIATE_CIPHERS is set (after each handshake, since
 * SSL_clear resets it); a server notices a new handshake in the info
 * callback and the connection fails, as nginx and haproxy do. */
static int reneg_idx = -1;
static pthread_once_t reneg_once = PTHREAD_ONCE_INIT;
static void reneg_init(void) { reneg_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

#define RENEG_ESTABLISHED ((void *)1)
#define RENEG_STARTED ((void *)2)

static void reneg_info_cb(const SSL *ssl, int where, int ret)
{
    (void)ret;
    if ((where & SSL_CB_HANDSHAKE_START) && SSL_get_ex_data(ssl, reneg_idx) == RENEG_ESTABLISHED)
        SSL_set_ex_data((SSL *)ssl, reneg_idx, RENEG_STARTED);
}
#endif

/* What every connection's SSL gets, whichever transport moves its bytes. */
static int conn_setup(SSL *ssl, sslsess_err *e)
{
#ifdef SSLSESS_OSSL102
    pthread_once(&reneg_once, reneg_init);
    if (reneg_idx < 0) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
#else
    (void)e;
#endif
    SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read as much as the socket (or the read BIO) has, not a record
     * header and then its body: half the reads. */
    SSL_set_read_ahead(ssl, 1);
#ifdef SSL_OP_NO_RENEGOTIATION
    SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
#endif
#ifdef SSLSESS_OSSL102
    SSL_set_info_callback(ssl, reneg_info_cb);
#endif
    return SSLSESS_OK;
}

SSL *sslsess_conn_new(SSL_CTX *ctx, int fd, int server, sslsess_err *e)
{
    SSL *ssl;
    ERR_clear_error();
    ssl = SSL_new(ctx);
    if (ssl == NULL) {
        sslsess_err_capture(e);
        return NULL;
    }
    if (SSL_set_fd(ssl, fd) != 1) {
        sslsess_err_capture(e);
        SSL_free(ssl);
        return NULL;
    }
    if (conn_setup(ssl, e) != SSLSESS_OK) {
        SSL_free(ssl);
        return NULL;
    }
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    return ssl;
}

int sslsess_conn_adopt(SSL *ssl, sslsess_err *e)
{
    ERR_clear_error();
    return conn_setup(ssl, e);
}

void sslsess_conn_established(SSL *ssl)
{
#ifdef SSLSESS_OSSL102
    ssl->s3->flags |= SSL3_FLAGS_NO_RENEGOTIATE_CIPHERS;
    SSL_set_ex_data(ssl, reneg_idx, RENEG_ESTABLISHED);
#else
    (void)ssl;
#endif
}

/* The last error's reason, without taking it off the queue. */
static int unexpected_eof(const sslsess_err *e)
{
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    int i;
    for (i = 0; i < e->n; i++) {
        if (ERR_GET_LIB(e->codes[i]) == ERR_LIB_SSL && ERR_GET_REASON(e->codes[i]) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            return 1;
    }
#else
    (void)e;
#endif
    return 0;
}

static int conn_io(SSL *ssl, int op, void *buf, int n, sslsess_io *r)
{
    int rv, err;
    r->n = 0;
    r->e.n = 0;
    r->e.ssl_error = 0;
    r->e.sys_errno = 0;
    ERR_clear_error();
    errno = 0;
    switch (op) {
    case SSLSESS_OP_HANDSHAKE:
        rv = SSL_do_handshake(ssl);
        break;
    case SSLSESS_OP_READ:
        rv = SSL_read(ssl, buf, n);
        break;
    case SSLSESS_OP_WRITE:
        rv = SSL_write(ssl, buf, n);
        break;
    case SSLSESS_OP_SHUTDOWN:
        /* 0: our close_notify is sent, the peer's not seen; 1: both. */
        rv = SSL_shutdown(ssl);
        if (rv >= 0) {
            r->n = rv;
            return SSLSESS_IO_DONE;
        }
        break;
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
    case SSLSESS_OP_READ_EARLY: {
        size_t done = 0;
        rv = SSL_read_early_data(ssl, buf, (size_t)n, &done);
        if (rv == SSL_READ_EARLY_DATA_FINISH)
            return SSLSESS_IO_EARLY_FINISH;
        if (rv == SSL_READ_EARLY_DATA_SUCCESS) {
            r->n = (int)done;
            return SSLSESS_IO_DONE;
        }
        rv = 0;
        break;
    }
    case SSLSESS_OP_WRITE_EARLY: {
        size_t done = 0;
        rv = SSL_write_early_data(ssl, buf, (size_t)n, &done);
        if (rv == 1) {
            r->n = (int)done;
            return SSLSESS_IO_DONE;
        }
        break;
    }
#endif
    default:
        return SSLSESS_IO_FAIL;
    }
    r->e.sys_errno = errno;
#ifdef SSLSESS_OSSL102
    if (SSL_get_ex_data(ssl, reneg_idx) == RENEG_STARTED) {
        sslsess_err_capture(NULL);
        return SSLSESS_IO_RENEGOTIATION;
    }
#endif
    if (rv > 0) {
        r->n = rv;
        return SSLSESS_IO_DONE;
    }
    err = SSL_get_error(ssl, rv);
    r->e.ssl_error = err;
    switch (err) {
    case SSL_ERROR_WANT_READ:
        return SSLSESS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return SSLSESS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return SSLSESS_IO_CLOSED;
    }
    sslsess_err_capture(&r->e);
    if (err == SSL_ERROR_SYSCALL && r->e.n == 0 && r->e.sys_errno == 0)
        return SSLSESS_IO_EOF; /* 1.0.2 and 1.1.1: EOF against the protocol */
    if (err == SSL_ERROR_SSL && unexpected_eof(&r->e))
        return SSLSESS_IO_EOF; /* 3.x says the same with a reason code */
    return SSLSESS_IO_FAIL;
}

sslsess_io sslsess_conn_io(SSL *ssl, int op, void *buf, int n)
{
    sslsess_io r = {0};
    BIO *w = SSL_get_wbio(ssl);
    /* A plain counter of the BIO: no call into the BIO itself. */
    unsigned long long written = w == NULL ? 0 : (unsigned long long)BIO_number_written(w);
    r.st = conn_io(ssl, op, buf, n, &r);
    r.wrote = w != NULL && (unsigned long long)BIO_number_written(w) != written;
    return r;
}

long sslsess_conn_verify_result(const SSL *ssl) { return SSL_get_verify_result(ssl); }

int sslsess_conn_check_host(SSL *ssl, const char *name, int is_ip)
{
    int rc;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    X509 *cert = SSL_get1_peer_certificate(ssl);
#else
    X509 *cert = SSL_get_peer_certificate(ssl);
#endif
    if (cert == NULL)
        return SSLSESS_NO_SESSION;
    if (is_ip)
        rc = X509_check_ip_asc(cert, name, 0);
    else
        rc = X509_check_host(cert, name, strlen(name), 0, NULL);
    X509_free(cert);
    ERR_clear_error();
    return rc == 1 ? 1 : 0;
}

int sslsess_conn_key_update(SSL *ssl, int request_peer, sslsess_err *e)
{
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
    ERR_clear_error();
    if (SSL_key_update(ssl, request_peer ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) != 1) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
#else
    (void)ssl;
    (void)request_peer;
    (void)e;
    return SSLSESS_FAIL;
#endif
}
