#include "cbprobe.h"

#include "_cgo_export.h"

typedef int (*new_fn)(SSL *, SSL_SESSION *);
typedef void (*remove_fn)(SSL_CTX *, SSL_SESSION *);
/* 1.0.2 passes the session ID as unsigned char *, 1.1.0+ as const. */
#if OPENSSL_VERSION_NUMBER < 0x10100000L
#define ID_CONST
#else
#define ID_CONST const
#endif
typedef SSL_SESSION *(*get_fn)(SSL *, ID_CONST unsigned char *, int, int *);

static new_fn orig_new;
static get_fn orig_get;
static remove_fn orig_remove;

static int probe_new(SSL *ssl, SSL_SESSION *sess)
{
    int rv = orig_new != NULL ? orig_new(ssl, sess) : 0;
    cbprobeNew(sess);
    return rv;
}

static SSL_SESSION *probe_get(SSL *ssl, ID_CONST unsigned char *id, int len, int *copy)
{
    SSL_SESSION *s = orig_get != NULL ? orig_get(ssl, id, len, copy) : NULL;
    if (s != NULL)
        cbprobeGot(s);
    return s;
}

static void probe_remove(SSL_CTX *ctx, SSL_SESSION *sess)
{
    unsigned int len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &len);
    cbprobeRemove((unsigned char *)id, (int)len);
    if (orig_remove != NULL)
        orig_remove(ctx, sess);
}

void cbprobe_install(SSL_CTX *ctx, int which)
{
    if (which & CBPROBE_NEW) {
        orig_new = SSL_CTX_sess_get_new_cb(ctx);
        SSL_CTX_sess_set_new_cb(ctx, probe_new);
    }
    if (which & CBPROBE_GET) {
        orig_get = SSL_CTX_sess_get_get_cb(ctx);
        SSL_CTX_sess_set_get_cb(ctx, probe_get);
    }
    if (which & CBPROBE_REMOVE) {
        orig_remove = SSL_CTX_sess_get_remove_cb(ctx);
        SSL_CTX_sess_set_remove_cb(ctx, probe_remove);
    }
}

void cbprobe_restore(SSL_CTX *ctx)
{
    if (SSL_CTX_sess_get_new_cb(ctx) == probe_new)
        SSL_CTX_sess_set_new_cb(ctx, orig_new);
    if (SSL_CTX_sess_get_get_cb(ctx) == probe_get)
        SSL_CTX_sess_set_get_cb(ctx, orig_get);
    if (SSL_CTX_sess_get_remove_cb(ctx) == probe_remove)
        SSL_CTX_sess_set_remove_cb(ctx, orig_remove);
}
