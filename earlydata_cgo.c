#include "earlydata_cgo.h"

#include <errno.h>
#include <string.h>

#include "_cgo_export.h"

#if OPENSSL_VERSION_NUMBER >= 0x10101000L
#define SSLSESS_EARLY 1
/* The build fails if OpenSSL's status values are not the header's. */
typedef char sslsess_early_check[(SSL_EARLY_DATA_NOT_SENT == SSLSESS_EARLY_NOT_SENT
                                  && SSL_EARLY_DATA_REJECTED == SSLSESS_EARLY_REJECTED
                                  && SSL_EARLY_DATA_ACCEPTED == SSLSESS_EARLY_ACCEPTED
                                  && SSL_OP_NO_ANTI_REPLAY == 0x01000000) ? 1 : -1];
#endif

int sslsess_early_supported(void)
{
#ifdef SSLSESS_EARLY
    return 1;
#else
    return 0;
#endif
}

uint32_t sslsess_early_session_max(const SSL_SESSION *s)
{
#ifdef SSLSESS_EARLY
    return s != NULL ? SSL_SESSION_get_max_early_data(s) : 0;
#else
    (void)s;
    return 0;
#endif
}

int sslsess_early_ctx_set_max(SSL_CTX *ctx, uint32_t max, uint32_t recv_max, sslsess_err *e)
{
    ERR_clear_error();
#ifdef SSLSESS_EARLY
    if (SSL_CTX_set_max_early_data(ctx, max) != 1 || SSL_CTX_set_recv_max_early_data(ctx, recv_max) != 1) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
#else
    (void)ctx;
    (void)max;
    (void)recv_max;
    (void)e;
    return SSLSESS_FAIL;
#endif
}

uint32_t sslsess_early_ctx_max(const SSL_CTX *ctx)
{
#ifdef SSLSESS_EARLY
    return SSL_CTX_get_max_early_data(ctx);
#else
    (void)ctx;
    return 0;
#endif
}

uint32_t sslsess_early_ctx_recv_max(const SSL_CTX *ctx)
{
#ifdef SSLSESS_EARLY
    return SSL_CTX_get_recv_max_early_data(ctx);
#else
    (void)ctx;
    return 0;
#endif
}

int sslsess_early_ctx_no_anti_replay(SSL_CTX *ctx, int on)
{
#ifdef SSLSESS_EARLY
    if (on)
        SSL_CTX_set_options(ctx, SSL_OP_NO_ANTI_REPLAY);
    else
        SSL_CTX_clear_options(ctx, SSL_OP_NO_ANTI_REPLAY);
    return (SSL_CTX_get_options(ctx) & SSL_OP_NO_ANTI_REPLAY) != 0;
#else
    (void)ctx;
    (void)on;
    return 0;
#endif
}

#ifdef SSLSESS_EARLY
/* Called by OpenSSL once everything else allows the early data: resumed,
 * fresh ticket age, binder verified. The client random identifies this
 * ClientHello: the PSK binder covers it, so only the ticket's holder can
 * make another ClientHello with the same one. */
static int allow_early(SSL *ssl, void *arg)
{
    unsigned char rnd[SSL3_RANDOM_SIZE];
    const char *sni;
    SSL_SESSION *s = SSL_get0_session(ssl);
    if (SSL_get_client_random(ssl, rnd, sizeof(rnd)) != sizeof(rnd))
        return 0;
    sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    return sslsessGoAllowEarly((uintptr_t)arg, (uintptr_t)ssl, rnd, (int)sizeof(rnd), (char *)sni,
                               s != NULL ? (long)SSL_SESSION_get_time(s) : 0) == 1;
}
#endif

int sslsess_early_ctx_set_cb(SSL_CTX *ctx, uintptr_t h)
{
#ifdef SSLSESS_EARLY
    if (h == 0)
        SSL_CTX_set_allow_early_data_cb(ctx, NULL, NULL);
    else
        SSL_CTX_set_allow_early_data_cb(ctx, allow_early, (void *)h);
    return SSLSESS_OK;
#else
    (void)ctx;
    (void)h;
    return SSLSESS_FAIL;
#endif
}

int sslsess_early_status(const SSL *ssl)
{
#ifdef SSLSESS_EARLY
    return SSL_get_early_data_status(ssl);
#else
    (void)ssl;
    return SSLSESS_EARLY_NOT_SENT;
#endif
}

uint32_t sslsess_early_offer_max(const SSL *ssl)
{
#ifdef SSLSESS_EARLY
    SSL_SESSION *s = SSL_get0_session(ssl);
    return s != NULL ? SSL_SESSION_get_max_early_data(s) : 0;
#else
    (void)ssl;
    return 0;
#endif
}

SSL_CTX *sslsess_early_ssl_ctx(const SSL *ssl) { return SSL_get_SSL_CTX(ssl); }
int sslsess_early_is_server(const SSL *ssl) { return SSL_is_server((SSL *)ssl); }
