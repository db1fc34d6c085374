#include "callbacks_cgo.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"

/* ex_data slots: the SSL_CTX's hooks handle, and a client connection's
 * cache key. */
static int ctx_idx = -1;
static int ssl_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

/* Depth of this package's callbacks on this thread. */
static __thread int in_callback;

/* The SSL_CTX is freed: SSL_CTX_free has already flushed its cache (and run
 * the remove callbacks); now the Go hooks can go. */
static void ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    if (ptr != NULL)
        sslsessGoRelease((uintptr_t)ptr);
}

static void key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    free(ptr);
}

static void idx_init(void)
{
    ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_free);
    ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, sslsess_exdata_nodup, key_free);
}

uintptr_t sslsess_cache_handle(SSL_CTX *ctx)
{
    pthread_once(&idx_once, idx_init);
    if (ctx_idx < 0 || ctx == NULL)
        return 0;
    return (uintptr_t)SSL_CTX_get_ex_data(ctx, ctx_idx);
}

int sslsess_cache_set_handle(SSL_CTX *ctx, uintptr_t h, sslsess_err *e)
{
    pthread_once(&idx_once, idx_init);
    ERR_clear_error();
    if (ctx_idx < 0 || !SSL_CTX_set_ex_data(ctx, ctx_idx, (void *)h)) {
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
}

int sslsess_cache_set_ssl_key(SSL *ssl, const char *key, sslsess_err *e)
{
    char *dup;
    pthread_once(&idx_once, idx_init);
    ERR_clear_error();
    if (ssl_idx < 0)
        return SSLSESS_FAIL;
    dup = strdup(key);
    if (dup == NULL)
        return SSLSESS_FAIL;
    free(SSL_get_ex_data(ssl, ssl_idx));
    if (!SSL_set_ex_data(ssl, ssl_idx, dup)) {
        free(dup);
        sslsess_err_capture(e);
        return SSLSESS_FAIL;
    }
    return SSLSESS_OK;
}

int sslsess_cache_in_callback(void) { return in_callback > 0; }
void sslsess_cache_enter(void) { in_callback++; }
void sslsess_cache_leave(void) { in_callback--; }

/* The context whose callbacks OpenSSL runs for ssl. OpenSSL calls the
 * session_ctx's callbacks, which stays the first context when an SNI callback
 * switches the SSL to another one; 1.1.0+ has no getter for it, so there the
 * SSL's current context is used (install the store on every SNI context). */
static SSL_CTX *callback_ctx(SSL *ssl)
{
#ifdef SSLSESS_OSSL102
    return ssl->session_ctx;
#else
    return SSL_get_SSL_CTX(ssl);
#endif
}

/* New session: always return 0, so OpenSSL keeps its reference; the Go side
 * encodes (server) or up-refs (client) the session before returning. */
static int new_cb(SSL *ssl, SSL_SESSION *sess)
{
    uintptr_t h = sslsess_cache_handle(callback_ctx(ssl));
    int server = SSL_is_server(ssl);
    char *key = NULL;
    if (h == 0)
        return 0;
    if (!server) {
        key = SSL_get_ex_data(ssl, ssl_idx);
        if (key == NULL)
            return 0;
    }
    in_callback++;
    sslsessGoNew(h, server, key, sess, SSL_get_SSL_CTX(ssl));
    in_callback--;
    return 0;
}

/* Get session: the session returned carries the one reference that
 * d2i_SSL_SESSION gave it; *copy = 0 hands that reference to OpenSSL
 * instead of letting it take another. 1.0.2 passes the ID as unsigned
 * char *, 1.1.0+ as const unsigned char *. */
#ifdef SSLSESS_OSSL102
static SSL_SESSION *get_cb(SSL *ssl, unsigned char *id, int len, int *copy)
#else
static SSL_SESSION *get_cb(SSL *ssl, const unsigned char *id, int len, int *copy)
#endif
{
    SSL_SESSION *s;
    uintptr_t h = sslsess_cache_handle(callback_ctx(ssl));
    *copy = 0;
    if (h == 0 || len <= 0 || !SSL_is_server(ssl))
        return NULL;
    in_callback++;
    s = sslsessGoGet(h, (unsigned char *)id, len);
    in_callback--;
    return s;
}

/* Remove session: OpenSSL may hold the cache lock here (flushes and
 * evictions on every version; on 1.0.2 that lock is CRYPTO_LOCK_SSL_CTX,
 * shared by all contexts). The Go side only queues work. */
static void remove_cb(SSL_CTX *ctx, SSL_SESSION *sess)
{
    unsigned int len = 0;
    const unsigned char *id;
    uintptr_t h = sslsess_cache_handle(ctx);
    if (h == 0)
        return;
    id = SSL_SESSION_get_id(sess, &len);
    if (len == 0)
        return;
    in_callback++;
    sslsessGoRemove(h, (unsigned char *)id, (int)len, SSL_SESSION_get_time(sess), SSL_SESSION_get_timeout(sess));
    in_callback--;
}

void sslsess_cache_set_callbacks(SSL_CTX *ctx, int cbs)
{
    if (cbs & SSLSESS_CB_NEW)
        SSL_CTX_sess_set_new_cb(ctx, new_cb);
    else if (SSL_CTX_sess_get_new_cb(ctx) == new_cb)
        SSL_CTX_sess_set_new_cb(ctx, NULL);

    if (cbs & SSLSESS_CB_GET)
        SSL_CTX_sess_set_get_cb(ctx, get_cb);
    else if (SSL_CTX_sess_get_get_cb(ctx) == get_cb)
        SSL_CTX_sess_set_get_cb(ctx, NULL);

    if (cbs & SSLSESS_CB_REMOVE)
        SSL_CTX_sess_set_remove_cb(ctx, remove_cb);
    else if (SSL_CTX_sess_get_remove_cb(ctx) == remove_cb)
        SSL_CTX_sess_set_remove_cb(ctx, NULL);
}

int sslsess_cache_callbacks(SSL_CTX *ctx)
{
    int cbs = 0;
    if (SSL_CTX_sess_get_new_cb(ctx) == new_cb)
        cbs |= SSLSESS_CB_NEW;
    if (SSL_CTX_sess_get_get_cb(ctx) == get_cb)
        cbs |= SSLSESS_CB_GET;
    if (SSL_CTX_sess_get_remove_cb(ctx) == remove_cb)
        cbs |= SSLSESS_CB_REMOVE;
    return cbs;
}
