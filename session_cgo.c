#include "session_cgo.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

/* ---- versions and thread setup ---------------------------------------- */

unsigned long sslsess_build_version(void) { return OPENSSL_VERSION_NUMBER; }

unsigned long sslsess_runtime_version(void)
{
#ifdef SSLSESS_OSSL102
    return SSLeay();
#else
    return OpenSSL_version_num();
#endif
}

const char *sslsess_runtime_version_text(void)
{
#ifdef SSLSESS_OSSL102
    return SSLeay_version(SSLEAY_VERSION);
#else
    return OpenSSL_version(OPENSSL_VERSION);
#endif
}

/* OpenSSL 1.0.2 is only thread-safe once the application installed a locking
 * callback and a thread-id callback; 1.1.0+ does its own locking. */
int sslsess_threads_ok(void)
{
#ifdef SSLSESS_OSSL102
    if (CRYPTO_get_locking_callback() == NULL)
        return 0;
    if (CRYPTO_THREADID_get_callback() == NULL && CRYPTO_get_id_callback() == NULL)
        return 0;
#endif
    return 1;
}

/* ---- errors ------------------------------------------------------------ */

void sslsess_err_capture(sslsess_err *e)
{
    unsigned long code;
    if (e == NULL) {
        ERR_clear_error();
        return;
    }
    while ((code = ERR_get_error()) != 0) {
        if (e->n < SSLSESS_ERR_MAX)
            e->codes[e->n++] = code;
    }
}

void sslsess_err_string(unsigned long code, char *buf, size_t n)
{
    ERR_error_string_n(code, buf, n);
}

const char *sslsess_verify_string(long code) { return X509_verify_cert_error_string(code); }

/* ---- the three calls and the free -------------------------------------- */

SSL_SESSION *sslsess_get1(SSL *ssl) { return SSL_get1_session(ssl); }
void sslsess_free(SSL_SESSION *s) { SSL_SESSION_free(s); }

int sslsess_up_ref(SSL_SESSION *s)
{
#ifdef SSLSESS_OSSL102
    /* The same lock SSL_SESSION_free takes to decrement. */
    CRYPTO_add(&s->references, 1, CRYPTO_LOCK_SSL_SESSION);
    return 1;
#else
    return SSL_SESSION_up_ref(s);
#endif
}

int sslsess_check(const SSL *ssl, SSL_SESSION *s)
{
    if (s == NULL)
        return SSLSESS_NO_SESSION;
    if (ssl != NULL && SSL_get0_session(ssl) != s)
        return SSLSESS_STALE;
    return SSLSESS_OK;
}

/* One lock for every write and read of this package's SSL_SESSION ex_data
 * slots: one session may be shared by SSLs used on different threads, and
 * CRYPTO_set_ex_data may grow the object's ex_data stack. */
static pthread_mutex_t exdata_mu = PTHREAD_MUTEX_INITIALIZER;
static int serial_idx = -1;
static pthread_once_t serial_once = PTHREAD_ONCE_INIT;
static uintptr_t serial_next;

static void serial_init(void)
{
    serial_idx = SSL_SESSION_get_ex_new_index(0, NULL, NULL, sslsess_exdata_nodup, NULL);
    if (serial_idx < 0)
        ERR_clear_error();
}

/* The serial of s, assigned now when it has none. */
static uintptr_t serial_of(SSL_SESSION *s)
{
    uintptr_t v;
    pthread_once(&serial_once, serial_init);
    if (serial_idx < 0)
        return 0;
    pthread_mutex_lock(&exdata_mu);
    v = (uintptr_t)SSL_SESSION_get_ex_data(s, serial_idx);
    if (v == 0) {
        v = ++serial_next;
        if (!SSL_SESSION_set_ex_data(s, serial_idx, (void *)v))
            v = 0;
    }
    pthread_mutex_unlock(&exdata_mu);
    if (v == 0)
        ERR_clear_error(); /* the failed set's entries */
    return v;
}

sslsess_borrowed sslsess_borrow(const SSL *ssl)
{
    sslsess_borrowed b;
    b.p = SSL_get0_session(ssl);
    b.serial = b.p != NULL ? serial_of(b.p) : 0;
    return b;
}

int sslsess_check_serial(const SSL *ssl, SSL_SESSION *s, uintptr_t serial)
{
    uintptr_t v;
    int rc = sslsess_check(ssl, s);
    if (rc != SSLSESS_OK || ssl == NULL)
        return rc;
    pthread_once(&serial_once, serial_init);
    if (serial_idx < 0 || serial == 0)
        return SSLSESS_STALE;
    pthread_mutex_lock(&exdata_mu);
    v = (uintptr_t)SSL_SESSION_get_ex_data(s, serial_idx);
    pthread_mutex_unlock(&exdata_mu);
    return v == serial ? SSLSESS_OK : SSLSESS_STALE;
}

int sslsess_up_ref_checked(const SSL *ssl, SSL_SESSION *s)
{
    int rc = sslsess_check(ssl, s);
    if (rc != SSLSESS_OK)
        return rc;
    return sslsess_up_ref(s) == 1 ? SSLSESS_OK : SSLSESS_FAIL;
}

/* ---- inspection -------------------------------------------------------- */

#ifdef SSLSESS_OSSL102
/* 1.0.2's d2i_SSL_SESSION leaves s->cipher NULL and only sets cipher_id; the
 * cipher is resolved when a handshake uses the session. Look it up in the
 * method's own table so that decoded sessions show their cipher too. */
static const SSL_CIPHER *cipher_by_id(unsigned long id)
{
    const SSL_METHOD *m = SSLv23_method();
    int i, n = m->num_ciphers();
    for (i = 0; i < n; i++) {
        const SSL_CIPHER *c = m->get_cipher((unsigned)i);
        if (c != NULL && c->id == id)
            return c;
    }
    return NULL;
}
#endif

int sslsess_info_get(const SSL *ssl, SSL_SESSION *s, sslsess_info *out)
{
    const unsigned char *id;
    const SSL_CIPHER *cipher;
    unsigned int len = 0;
    int rc = sslsess_check(ssl, s);
    if (rc != SSLSESS_OK)
        return rc;

    memset(out, 0, sizeof(*out));
    id = SSL_SESSION_get_id(s, &len);
    if (len > sizeof(out->id))
        len = sizeof(out->id);
    memcpy(out->id, id, len);
    out->id_len = len;
    out->time = SSL_SESSION_get_time(s);
    out->timeout = SSL_SESSION_get_timeout(s);
    out->has_peer = SSL_SESSION_get0_peer(s) != NULL;

#ifdef SSLSESS_OSSL102
    len = s->sid_ctx_length;
    if (len > sizeof(out->sid_ctx))
        len = sizeof(out->sid_ctx);
    memcpy(out->sid_ctx, s->sid_ctx, len);
    out->sid_ctx_len = len;
    out->protocol = s->ssl_version;
    cipher = s->cipher != NULL ? s->cipher : cipher_by_id(s->cipher_id);
    out->cipher_id = s->cipher != NULL ? s->cipher->id : s->cipher_id;
    out->has_ticket = s->tlsext_tick != NULL && s->tlsext_ticklen > 0;
    out->ticket_len = s->tlsext_ticklen;
    out->ticket_lifetime_hint = (unsigned long)s->tlsext_tick_lifetime_hint;
    out->resumable = !s->not_resumable && (s->session_id_length > 0 || s->tlsext_ticklen > 0);
#else
    {
        const unsigned char *ctx = SSL_SESSION_get0_id_context(s, &len);
        if (len > sizeof(out->sid_ctx))
            len = sizeof(out->sid_ctx);
        memcpy(out->sid_ctx, ctx, len);
        out->sid_ctx_len = len;
    }
    out->protocol = SSL_SESSION_get_protocol_version(s);
    cipher = SSL_SESSION_get0_cipher(s);
    out->cipher_id = cipher != NULL ? SSL_CIPHER_get_id(cipher) : 0;
    out->ticket_lifetime_hint = SSL_SESSION_get_ticket_lifetime_hint(s);
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
    {
        const unsigned char *tick = NULL;
        size_t ticklen = 0;
        SSL_SESSION_get0_ticket(s, &tick, &ticklen);
        out->ticket_len = ticklen;
        out->has_ticket = SSL_SESSION_has_ticket(s);
        out->resumable = SSL_SESSION_is_resumable(s);
        out->max_early_data = SSL_SESSION_get_max_early_data(s);
    }
#else
    out->has_ticket = -1;
    out->resumable = -1;
#endif
#endif
    if (cipher != NULL) {
        const char *name = SSL_CIPHER_get_name(cipher);
        if (name != NULL) {
            strncpy(out->cipher_name, name, sizeof(out->cipher_name) - 1);
        }
    }
    return SSLSESS_OK;
}

int sslsess_set_timeout(const SSL *ssl, SSL_SESSION *s, long t)
{
    int rc = sslsess_check(ssl, s);
    if (rc != SSLSESS_OK)
        return rc;
    return SSL_SESSION_set_timeout(s, t) == 1 ? SSLSESS_OK : SSLSESS_FAIL;
}

int sslsess_set_time(const SSL *ssl, SSL_SESSION *s, long t)
{
    int rc = sslsess_check(ssl, s);
    if (rc != SSLSESS_OK)
        return rc;
    return SSL_SESSION_set_time(s, t) != 0 ? SSLSESS_OK : SSLSESS_FAIL;
}

int sslsess_master_key(const SSL *ssl, SSL_SESSION *s, unsigned char *out, size_t cap, size_t *n)
{
    int rc = sslsess_check(ssl, s);
    if (rc != SSLSESS_OK)
        return rc;
#ifdef SSLSESS_OSSL102
    *n = (size_t)s->master_key_length;
    if (out != NULL && cap >= *n)
        memcpy(out, s->master_key, *n);
#else
    *n = SSL_SESSION_get_master_key(s, NULL, 0);
    if (out != NULL && cap >= *n)
        SSL_SESSION_get_master_key(s, out, cap);
#endif
    return SSLSESS_OK;
}

int sslsess_peer_der(const SSL *ssl, SSL_SESSION *s, unsigned char *out, int cap, int *n)
{
    X509 *peer;
    int rc = sslsess_check(ssl, s);
    if (rc != SSLSESS_OK)
        return rc;
    peer = SSL_SESSION_get0_peer(s);
    *n = 0;
    if (peer == NULL)
        return SSLSESS_OK;
    *n = i2d_X509(peer, NULL);
    if (*n <= 0)
        return SSLSESS_FAIL;
    if (out != NULL && cap >= *n) {
        unsigned char *p = out;
        i2d_X509(peer, &p);
    }
    return SSLSESS_OK;
}

/* ---- DER --------------------------------------------------------------- */

int sslsess_i2d(const SSL *ssl, SSL_SESSION *s, unsigned char *out, int cap, int *n, sslsess_err *e)
{
    int rc = sslsess_check(ssl, s);
    if (rc != SSLSESS_OK)
        return rc;
    ERR_clear_error();
    *n = i2d_SSL_SESSION(s, NULL);
    if (*n <= 0 || (out != NULL && cap < *n)) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    if (out != NULL) {
        unsigned char *p = out;
        if (i2d_SSL_SESSION(s, &p) != *n) {
            sslsess_err_capture(e);
            return SSLSESS_FAIL;
        }
    }
    return SSLSESS_OK;
}

SSL_SESSION *sslsess_d2i(const unsigned char *in, long len, long *used, sslsess_err *e)
{
    const unsigned char *p = in;
    SSL_SESSION *s;
    ERR_clear_error();
    s = d2i_SSL_SESSION(NULL, &p, len);
    if (s == NULL) {
        sslsess_err_capture(e);
        return NULL;
    }
    *used = (long)(p - in);
    return s;
}

/* ---- connection side ---------------------------------------------------- */

int sslsess_set_session_check(const SSL *ssl, int role_known)
{
    if (role_known && SSL_is_server((SSL *)ssl))
        return SSLSESS_SERVER_SIDE;
    if (!SSL_in_before((SSL *)ssl))
        return SSLSESS_BEGUN;
    return SSLSESS_OK;
}

int sslsess_set_session(SSL *ssl, SSL_SESSION *s, uintptr_t want, sslsess_err *e)
{
    if (want != 0 && want != (uintptr_t)SSL_get_SSL_CTX(ssl))
        return SSLSESS_WRONG_CTX;
    ERR_clear_error();
    if (SSL_set_session(ssl, s) != 1) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
}

int sslsess_session_reused(SSL *ssl) { return SSL_session_reused(ssl) ? 1 : 0; }

SSL_CTX *sslsess_ssl_ctx(const SSL *ssl) { return SSL_get_SSL_CTX(ssl); }

int sslsess_current_resumable(const SSL *ssl)
{
    sslsess_info info;
    SSL_SESSION *s = SSL_get0_session(ssl);
    if (s == NULL)
        return 0;
    if (sslsess_info_get(NULL, s, &info) != SSLSESS_OK)
        return 0;
    return info.resumable == 1;
}

/* ---- the SSL object ------------------------------------------------------ */

void sslsess_ssl_free(SSL *ssl) { SSL_free(ssl); }

int sslsess_ssl_set_host(SSL *ssl, const char *name, sslsess_err *e)
{
    ERR_clear_error();
    if (SSL_set_tlsext_host_name(ssl, name) != 1) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
}

/* ---- ex_data ------------------------------------------------------------ */

/* A copy of an object with ex_data (a TLS 1.3 client dups its session on
 * every ticket; SSL_dup) must not share the slot's value, which would be
 * freed twice: the copy starts with NULL. */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
int sslsess_exdata_nodup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx, long argl, void *argp)
{
    (void)to; (void)from; (void)idx; (void)argl; (void)argp;
    *from_d = NULL;
    return 1;
}
#else
int sslsess_exdata_nodup(CRYPTO_EX_DATA *to, SSLSESS_EXDATA_FROM_CONST CRYPTO_EX_DATA *from, void *from_d, int idx, long argl, void *argp)
{
    (void)to; (void)from; (void)idx; (void)argl; (void)argp;
    *(void **)from_d = NULL;
    return 1;
}
#endif

/* ---- SSL_CTX session cache ------------------------------------------------ */

long sslsess_ctx_set_cache_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_session_cache_mode(ctx, mode); }
long sslsess_ctx_get_cache_mode(SSL_CTX *ctx) { return SSL_CTX_get_session_cache_mode(ctx); }
long sslsess_ctx_set_cache_size(SSL_CTX *ctx, long n) { return SSL_CTX_sess_set_cache_size(ctx, n); }
long sslsess_ctx_get_cache_size(SSL_CTX *ctx) { return SSL_CTX_sess_get_cache_size(ctx); }
long sslsess_ctx_set_timeout(SSL_CTX *ctx, long t) { return SSL_CTX_set_timeout(ctx, t); }
long sslsess_ctx_get_timeout(SSL_CTX *ctx) { return SSL_CTX_get_timeout(ctx); }

int sslsess_ctx_set_sid_ctx(SSL_CTX *ctx, const unsigned char *p, unsigned int n, sslsess_err *e)
{
    ERR_clear_error();
    if (SSL_CTX_set_session_id_context(ctx, p, n) != 1) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
}

void sslsess_ctx_flush(SSL_CTX *ctx, long t) { SSL_CTX_flush_sessions(ctx, t); }
int sslsess_ctx_add(SSL_CTX *ctx, SSL_SESSION *s) { return SSL_CTX_add_session(ctx, s); }
int sslsess_ctx_remove(SSL_CTX *ctx, SSL_SESSION *s) { return SSL_CTX_remove_session(ctx, s); }

long sslsess_ctx_options(SSL_CTX *ctx, long set, long clear)
{
    if (clear != 0)
        SSL_CTX_clear_options(ctx, clear);
    if (set != 0)
        SSL_CTX_set_options(ctx, set);
    return SSL_CTX_get_options(ctx);
}

int sslsess_ctx_set_num_tickets(SSL_CTX *ctx, size_t n, sslsess_err *e)
{
#ifdef SSLSESS_OSSL102
    (void)ctx;
    (void)n;
    (void)e;
    return SSLSESS_FAIL;
#else
    ERR_clear_error();
    if (SSL_CTX_set_num_tickets(ctx, n) != 1) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
#endif
}

int sslsess_ctx_set_ciphersuites(SSL_CTX *ctx, const char *list, sslsess_err *e)
{
#ifdef SSLSESS_OSSL102
    (void)ctx;
    (void)list;
    (void)e;
    return SSLSESS_FAIL;
#else
    ERR_clear_error();
    if (SSL_CTX_set_ciphersuites(ctx, list) != 1) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
#endif
}

long sslsess_ctx_get_num_tickets(SSL_CTX *ctx)
{
#ifdef SSLSESS_OSSL102
    (void)ctx;
    return -1;
#else
    return (long)SSL_CTX_get_num_tickets(ctx);
#endif
}

void sslsess_ctx_stats(SSL_CTX *ctx, sslsess_stats *out)
{
    out->number = SSL_CTX_sess_number(ctx);
    out->connect = SSL_CTX_sess_connect(ctx);
    out->connect_good = SSL_CTX_sess_connect_good(ctx);
    out->connect_renegotiate = SSL_CTX_sess_connect_renegotiate(ctx);
    out->accept = SSL_CTX_sess_accept(ctx);
    out->accept_good = SSL_CTX_sess_accept_good(ctx);
    out->accept_renegotiate = SSL_CTX_sess_accept_renegotiate(ctx);
    out->hits = SSL_CTX_sess_hits(ctx);
    out->cb_hits = SSL_CTX_sess_cb_hits(ctx);
    out->misses = SSL_CTX_sess_misses(ctx);
    out->timeouts = SSL_CTX_sess_timeouts(ctx);
    out->cache_full = SSL_CTX_sess_cache_full(ctx);
}

int sslsess_max_supported_proto(void)
{
#ifdef TLS1_3_VERSION
    return TLS1_3_VERSION;
#else
    return TLS1_2_VERSION;
#endif
}

int sslsess_ctx_set_proto_range(SSL_CTX *ctx, int min, int max, sslsess_err *e)
{
    if (min != 0 && min > sslsess_max_supported_proto())
        return SSLSESS_FAIL;
#ifdef SSLSESS_OSSL102
    {
        long op = 0;
        if (min > SSL3_VERSION || (max != 0 && max < SSL3_VERSION))
            op |= SSL_OP_NO_SSLv3;
        if (min > TLS1_VERSION || (max != 0 && max < TLS1_VERSION))
            op |= SSL_OP_NO_TLSv1;
        if (min > TLS1_1_VERSION || (max != 0 && max < TLS1_1_VERSION))
            op |= SSL_OP_NO_TLSv1_1;
        if (max != 0 && max < TLS1_2_VERSION)
            op |= SSL_OP_NO_TLSv1_2;
        /* The range replaces the last one, as SSL_CTX_set_min/max_proto_version
         * do on 1.1.0 and later: TLS versions inside it are enabled again
         * (SSLv3 only when min asks for it). */
        {
            long on = SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_TLSv1_2;
            if (min != 0 && min <= SSL3_VERSION)
                on |= SSL_OP_NO_SSLv3;
            SSL_CTX_clear_options(ctx, on & ~op);
        }
        SSL_CTX_set_options(ctx, op);
        return SSLSESS_OK;
    }
#else
    ERR_clear_error();
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1 || SSL_CTX_set_max_proto_version(ctx, max) != 1) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
#endif
}

int sslsess_ctx_default_verify_paths(SSL_CTX *ctx, sslsess_err *e)
{
    ERR_clear_error();
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
}

int sslsess_ssl_version(const SSL *ssl) { return SSL_version(ssl); }

int sslsess_ssl_cipher(const SSL *ssl, char *out, size_t n)
{
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    const char *name = c != NULL ? SSL_CIPHER_get_name(c) : NULL;
    if (name == NULL || n == 0)
        return 0;
    strncpy(out, name, n - 1);
    out[n - 1] = 0;
    return 1;
}
