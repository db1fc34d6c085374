/*
 * OpenSSL's new, remove and get session callbacks, installed on an SSL_CTX
 * for a store (bridge.go) or a client cache (clientcache.go), call Go
 * through the functions callbacks.go exports. The Go side is found through an integer handle
 * kept in the SSL_CTX's ex_data, never a Go pointer. Every version
 * difference of these callbacks sits in callbacks_cgo.c.
 */
#ifndef SSLSESSION_CALLBACKS_CGO_H
#define SSLSESSION_CALLBACKS_CGO_H

#include <stdint.h>
#include <stdlib.h>
#include "session_cgo.h"

/* Which callbacks sslsess_cache_set_callbacks sets. */
#define SSLSESS_CB_NEW 1
#define SSLSESS_CB_GET 2
#define SSLSESS_CB_REMOVE 4

/* The handle of ctx's Go hooks, 0 when none. */
uintptr_t sslsess_cache_handle(SSL_CTX *ctx);
/* Stores h in ctx's ex_data (SSLSESS_OK, or SSLSESS_FAIL). */
int sslsess_cache_set_handle(SSL_CTX *ctx, uintptr_t h, sslsess_err *e);
/* Sets the callbacks named in cbs and clears the others. */
void sslsess_cache_set_callbacks(SSL_CTX *ctx, int cbs);
/* Which of this package's callbacks are set on ctx (SSLSESS_CB_* bits). */
int sslsess_cache_callbacks(SSL_CTX *ctx);

/* The client-cache key of a connection, copied into the SSL's ex_data and
 * freed with the SSL. */
int sslsess_cache_set_ssl_key(SSL *ssl, const char *key, sslsess_err *e);

/* Whether this thread is inside one of the callbacks: on 1.0.2 the remove
 * callback runs under CRYPTO_LOCK_SSL_CTX (one lock for every SSL_CTX), on
 * 1.1.1+ under the SSL_CTX's own lock, so cache calls made from here would
 * deadlock. */
int sslsess_cache_in_callback(void);
/* Mark this thread as running a store method on behalf of a callback (the
 * bridge's store goroutines, locked to their thread), so that the same
 * guard refuses cache calls made from store methods. */
void sslsess_cache_enter(void);
void sslsess_cache_leave(void);

#endif
