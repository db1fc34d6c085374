#include "freewatch.h"

#include <pthread.h>
#include <stdlib.h>
#include <openssl/err.h>

typedef struct {
    int freed; /* first: the flag handed out is the struct's address */
    int refs;
} watch_flag;

static int watch_idx = -1;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;

static void watch_put(watch_flag *f)
{
    if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(f);
}

static void watch_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    watch_flag *f = ptr;
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    if (f == NULL)
        return;
    __atomic_store_n(&f->freed, 1, __ATOMIC_RELEASE);
    watch_put(f);
}

/* A copy of a watched session (a TLS 1.3 client dups its session on every
 * ticket) is not watched: the copy's slot starts NULL, so that the flag is
 * not released twice. The callback's signature differs by version. */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static int watch_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx, long argl, void *argp)
{
    (void)to; (void)from; (void)idx; (void)argl; (void)argp;
    *from_d = NULL;
    return 1;
}
#else
#if OPENSSL_VERSION_NUMBER < 0x10100000L
static int watch_dup(CRYPTO_EX_DATA *to, CRYPTO_EX_DATA *from, void *from_d, int idx, long argl, void *argp)
#else
static int watch_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void *from_d, int idx, long argl, void *argp)
#endif
{
    (void)to; (void)from; (void)idx; (void)argl; (void)argp;
    *(void **)from_d = NULL;
    return 1;
}
#endif

static void watch_init(void)
{
    watch_idx = SSL_SESSION_get_ex_new_index(0, NULL, NULL, watch_dup, watch_free);
}

int *freewatch_watch(SSL_SESSION *s)
{
    watch_flag *f, *old;
    pthread_once(&watch_once, watch_init);
    if (watch_idx < 0 || s == NULL)
        return NULL;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->refs = 2; /* the session's and the watch's */
    pthread_mutex_lock(&watch_mu);
    /* Watched already: the watches share the one flag, each with its own
     * reference, so that every watch reports the free. */
    old = SSL_SESSION_get_ex_data(s, watch_idx);
    if (old != NULL) {
        __atomic_add_fetch(&old->refs, 1, __ATOMIC_ACQ_REL);
        pthread_mutex_unlock(&watch_mu);
        free(f);
        return &old->freed;
    }
    if (!SSL_SESSION_set_ex_data(s, watch_idx, f)) {
        pthread_mutex_unlock(&watch_mu);
        ERR_clear_error();
        free(f);
        return NULL;
    }
    pthread_mutex_unlock(&watch_mu);
    return &f->freed;
}

void freewatch_release(int *flag)
{
    if (flag != NULL)
        watch_put((watch_flag *)flag);
}

int freewatch_freed(int *flag)
{
    return flag != NULL && __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}
