#include "ticketkeys_cgo.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#define SSLSESS_TK_EVP_MAC 1
#include <openssl/core_names.h>
#include <openssl/params.h>
typedef EVP_MAC_CTX sslsess_tk_mac;
#else
typedef HMAC_CTX sslsess_tk_mac;
#endif

/* A ring as published: immutable once built, replaced whole. */
typedef struct {
    int n;
    sslsess_tk_key *keys;
    int *by_name;       /* n indices into keys, sorted by name */
    int ne;
    int64_t *enc_start; /* the Start of every Encrypt key, sorted */
    int nt;
    int64_t *times;     /* every Start and Until of an Encrypt key, sorted, distinct */
    int *cur;           /* nt+1: the encrypting key in [times[j-1], times[j]); -1 none */
} tk_ring;

/* One per SSL_CTX given ticket keys, in the registry until SSL_CTX_free. */
typedef struct tk_state {
    SSL_CTX *ctx;
    struct tk_state *next; /* registry bucket */
    tk_ring *ring;         /* NULL once cleared */
    int installed;
    SSL_CTX **sib;         /* contexts an SNI callback switched to from ctx */
    int nsib, capsib;
    sslsess_tk_stats st;   /* atomic counters */
} tk_state;

#define TK_BUCKETS 256

/* tk_mu guards the registry, every state's ring, installed and sib. The
 * callback holds it as a reader from lookup to the end of the cipher set-up;
 * writers hold it for a pointer swap or a list edit, never for a build. */
static pthread_rwlock_t tk_mu = PTHREAD_RWLOCK_INITIALIZER;
static tk_state *tk_reg[TK_BUCKETS];
static int tk_idx = -1;
static pthread_once_t tk_once = PTHREAD_ONCE_INIT;

#ifndef SSLSESS_OSSL102
/* Set by the session_ctx's generate-ticket callback (1.1.1+) right before
 * OpenSSL asks that same context's ticket-key callback to encrypt: the only
 * way there to learn the context a connection started on once an SNI
 * callback has switched it. */
static __thread SSL *tk_home_ssl;
static __thread SSL_CTX *tk_home_ctx;
#endif

void sslsess_tk_cleanse(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

static void ring_free(tk_ring *r)
{
    if (r == NULL)
        return;
    if (r->keys != NULL) {
        OPENSSL_cleanse(r->keys, sizeof(*r->keys) * (size_t)r->n);
        free(r->keys);
    }
    free(r->by_name);
    free(r->enc_start);
    free(r->times);
    free(r->cur);
    free(r);
}

static size_t bucket(const SSL_CTX *ctx)
{
    uint64_t h = (uint64_t)(uintptr_t)ctx * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h >> 56) % TK_BUCKETS;
}

/* Call with tk_mu held. */
static tk_state *find_state(const SSL_CTX *ctx)
{
    tk_state *s;
    if (ctx == NULL)
        return NULL;
    for (s = tk_reg[bucket(ctx)]; s != NULL; s = s->next)
        if (s->ctx == ctx)
            return s;
    return NULL;
}

/* OpenSSL calls this for every registered SSL_CTX index when an SSL_CTX is
 * freed, whether or not a value was ever set: ptr is always NULL here and
 * parent is the context. */
static void tk_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    SSL_CTX *ctx = parent;
    tk_state **pp, *s = NULL;
    int b, i;
    (void)ptr; (void)ad; (void)idx; (void)argl; (void)argp;
    if (ctx == NULL)
        return;
    pthread_rwlock_wrlock(&tk_mu);
    for (pp = &tk_reg[bucket(ctx)]; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->ctx == ctx) {
            s = *pp;
            *pp = s->next;
            break;
        }
    }
    /* No other context links to a freed one: its address may come back. */
    for (b = 0; b < TK_BUCKETS; b++) {
        tk_state *o;
        for (o = tk_reg[b]; o != NULL; o = o->next)
            for (i = 0; i < o->nsib; i++)
                if (o->sib[i] == ctx)
                    o->sib[i--] = o->sib[--o->nsib];
    }
    pthread_rwlock_unlock(&tk_mu);
    if (s == NULL)
        return;
    ring_free(s->ring);
    free(s->sib);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

static void tk_init(void)
{
    tk_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tk_free);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define COUNT(field) __atomic_fetch_add(&(field), 1, __ATOMIC_RELAXED)

/* The key that encrypts at now, by the rule itself: of the ring's Encrypt
 * keys not past their Until, the latest started one; if none has started (a
 * clock behind the fleet's), the earliest. -1 when the ring has none. Used
 * only to build the time index. */
static int pick_scan(const sslsess_tk_key *keys, int n, int64_t now)
{
    int best = -1, first = -1, i;
    for (i = 0; i < n; i++) {
        const sslsess_tk_key *k = &keys[i];
        if (!k->may_encrypt || (k->until_ms != 0 && k->until_ms <= now))
            continue;
        if (k->start_ms <= now) {
            if (best < 0 || k->start_ms > keys[best].start_ms)
                best = i;
        } else if (first < 0 || k->start_ms < keys[first].start_ms) {
            first = i;
        }
    }
    return best >= 0 ? best : first;
}

/* The number of v[0..n) <= x (v sorted). */
static int upper_bound(const int64_t *v, int n, int64_t x)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (v[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The encrypting key at now: O(log n). */
static int pick_current(const tk_ring *r, int64_t now)
{
    return r->cur[upper_bound(r->times, r->nt, now)];
}

/* The index of the key named name: O(log n). -1 when absent. */
static int find_name(const tk_ring *r, const unsigned char *name)
{
    int lo = 0, hi = r->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = memcmp(r->keys[r->by_name[mid]].name, name, SSLSESS_TK_NAME);
        if (c == 0)
            return r->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static const sslsess_tk_key *sort_keys; /* qsort has no argument; builds run under build_mu */
static pthread_mutex_t build_mu = PTHREAD_MUTEX_INITIALIZER;

static int by_name_cmp(const void *a, const void *b)
{
    return memcmp(sort_keys[*(const int *)a].name, sort_keys[*(const int *)b].name, SSLSESS_TK_NAME);
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static tk_ring *ring_build(const sslsess_tk_key *keys, int n)
{
    tk_ring *r = calloc(1, sizeof(*r));
    int i, j;
    if (r == NULL)
        return NULL;
    r->n = n;
    r->keys = malloc(sizeof(*r->keys) * (size_t)n);
    r->by_name = malloc(sizeof(int) * (size_t)n);
    r->enc_start = malloc(sizeof(int64_t) * (size_t)n);
    r->times = malloc(sizeof(int64_t) * (size_t)n * 2);
    r->cur = malloc(sizeof(int) * ((size_t)n * 2 + 1));
    if (r->keys == NULL || r->by_name == NULL || r->enc_start == NULL || r->times == NULL || r->cur == NULL) {
        ring_free(r);
        return NULL;
    }
    memcpy(r->keys, keys, sizeof(*keys) * (size_t)n);
    for (i = 0; i < n; i++) {
        r->by_name[i] = i;
        if (keys[i].may_encrypt) {
            r->enc_start[r->ne++] = keys[i].start_ms;
            r->times[r->nt++] = keys[i].start_ms;
            if (keys[i].until_ms != 0)
                r->times[r->nt++] = keys[i].until_ms;
        }
    }
    pthread_mutex_lock(&build_mu);
    sort_keys = r->keys;
    qsort(r->by_name, (size_t)n, sizeof(int), by_name_cmp);
    sort_keys = NULL;
    pthread_mutex_unlock(&build_mu);
    qsort(r->enc_start, (size_t)r->ne, sizeof(int64_t), i64_cmp);
    qsort(r->times, (size_t)r->nt, sizeof(int64_t), i64_cmp);
    for (i = 0, j = 0; i < r->nt; i++)
        if (j == 0 || r->times[i] != r->times[j - 1])
            r->times[j++] = r->times[i];
    r->nt = j;
    /* The answer changes only at these times: evaluate the rule once per
     * segment (O(n) each, at most 2n+1 segments, at set time only). */
    for (j = 0; j <= r->nt; j++) {
        int64_t t = j == 0 ? (r->nt > 0 && r->times[0] > INT64_MIN ? r->times[0] - 1 : INT64_MIN) : r->times[j - 1];
        r->cur[j] = pick_scan(r->keys, n, t);
    }
    return r;
}

static int mac_init(sslsess_tk_mac *h, const unsigned char *key, size_t len)
{
#ifdef SSLSESS_TK_EVP_MAC
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key, len);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(h, params) == 1;
#else
    return HMAC_Init_ex(h, key, (int)len, EVP_sha256(), NULL) == 1;
#endif
}

/* A key's cipher and HMAC key length: nginx's and haproxy's 48-byte keys are
 * AES-128-CBC with a 16-byte HMAC-SHA256 key, the 80-byte ones AES-256-CBC
 * with a 32-byte key. */
static const EVP_CIPHER *key_cipher(const sslsess_tk_key *k)
{
    return k->aes128 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
}

static size_t key_mac_len(const sslsess_tk_key *k)
{
    return k->aes128 ? SSLSESS_TK_SHORT : SSLSESS_TK_HMAC;
}

/* No key to encrypt with (every key's Until has passed, or ClearTicketKeys
 * raced a handshake). 3.0 then sends no ticket when the callback returns 0
 * (an empty one in TLS 1.2, as RFC 5077 allows). Before 3.0 that answer is
 * broken: 1.0.2 goes on to send a ticket under an unset key and fails the
 * handshake, and 1.1.1 sends a TLS 1.3 NewSessionTicket with an empty
 * ticket, which clients reject as malformed (crypto/tls: "error decoding
 * message"). There the ticket is sealed under a throwaway key instead,
 * random and forgotten at once: no server can open it, so it costs its
 * client one full handshake later, never a failed one. */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static int no_ticket(unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, sslsess_tk_mac *hctx)
{
    (void)name, (void)iv, (void)cctx, (void)hctx;
    return 0;
}
#else
static int no_ticket(unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, sslsess_tk_mac *hctx)
{
    sslsess_tk_key k;
    int ok = RAND_bytes(k.name, SSLSESS_TK_NAME) == 1 && RAND_bytes(k.aes, SSLSESS_TK_AES) == 1 &&
             RAND_bytes(k.hmac, SSLSESS_TK_HMAC) == 1 &&
             RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) == 1;
    if (ok) {
        memcpy(name, k.name, SSLSESS_TK_NAME);
        ok = EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 && mac_init(hctx, k.hmac, SSLSESS_TK_HMAC);
    }
    OPENSSL_cleanse(&k, sizeof(k));
    return ok ? 1 : -1;
}
#endif

/* The context whose ticket-key callback OpenSSL runs for ssl (its
 * session_ctx: the one the connection was made with, whatever an SNI
 * callback switched it to), when it can be known; NULL otherwise. */
static SSL_CTX *home_ctx(SSL *ssl)
{
#ifdef SSLSESS_OSSL102
    return ssl->initial_ctx;
#else
    SSL_CTX *c = tk_home_ssl == ssl ? tk_home_ctx : NULL;
    tk_home_ssl = NULL;
    tk_home_ctx = NULL;
    return c;
#endif
}

/* Remembers that an SNI callback switched a connection of home to cur, so
 * that home's callback finds cur's keys when it decrypts, before the switch,
 * the tickets issued after it. The only allocation on a handshake's path,
 * once per pair of contexts. */
static void link_sibling(SSL_CTX *home, SSL_CTX *cur)
{
    tk_state *h;
    int i;
    pthread_rwlock_wrlock(&tk_mu);
    h = find_state(home);
    if (h != NULL && find_state(cur) != NULL) {
        for (i = 0; i < h->nsib && h->sib[i] != cur; i++)
            ;
        if (i == h->nsib) {
            if (h->nsib == h->capsib) {
                int cap = h->capsib ? h->capsib * 2 : 4;
                SSL_CTX **p = realloc(h->sib, sizeof(*p) * (size_t)cap);
                if (p != NULL) {
                    h->sib = p;
                    h->capsib = cap;
                }
            }
            if (h->nsib < h->capsib) {
                h->sib[h->nsib++] = cur;
                COUNT(h->st.linked);
            }
        }
    }
    pthread_rwlock_unlock(&tk_mu);
}

/* Whether home already links to cur. Call with tk_mu held. */
static int linked(const tk_state *h, const SSL_CTX *cur)
{
    int i;
    for (i = 0; i < h->nsib; i++)
        if (h->sib[i] == cur)
            return 1;
    return 0;
}

static int tk_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, sslsess_tk_mac *hctx, int enc)
{
    SSL_CTX *cur = SSL_get_SSL_CTX(ssl), *home = enc ? home_ctx(ssl) : NULL;
    tk_state *s, *h;
    const sslsess_tk_key *k = NULL;
    int64_t now = now_ms();
    int i, rc = 1, age = 0, need_link = 0;

    pthread_rwlock_rdlock(&tk_mu);
    s = find_state(cur);
    if (enc) {
        /* Encrypt under the ring of the context the connection uses now
         * (after any SNI switch); under the first context's when that one
         * has none. */
        h = home != NULL && home != cur ? find_state(home) : NULL;
        if (s == NULL || s->ring == NULL) {
            s = h;
        } else if (h != NULL && !linked(h, cur)) {
            need_link = 1;
        }
        i = s != NULL && s->ring != NULL ? pick_current(s->ring, now) : -1;
        if (i < 0) {
            if (s != NULL)
                COUNT(s->st.no_key);
            pthread_rwlock_unlock(&tk_mu);
            return no_ticket(name, iv, cctx, hctx);
        }
        k = &s->ring->keys[i];
        if (RAND_bytes(iv, EVP_CIPHER_iv_length(key_cipher(k))) != 1)
            goto fail;
        memcpy(name, k->name, SSLSESS_TK_NAME);
        if (EVP_EncryptInit_ex(cctx, key_cipher(k), NULL, k->aes, iv) != 1 || !mac_init(hctx, k->hmac, key_mac_len(k)))
            goto fail;
        COUNT(s->st.issued);
        pthread_rwlock_unlock(&tk_mu);
        if (need_link)
            link_sibling(home, cur);
        return 1;
    }

    /* Decrypt: the key of that name in this context's ring, or in the ring
     * of a context an SNI callback switched this one's connections to (the
     * ticket is opened before the callback runs). */
    if (s == NULL) {
        pthread_rwlock_unlock(&tk_mu);
        return 0;
    }
    {
        tk_state *owner = s;
        int j;
        i = s->ring != NULL ? find_name(s->ring, name) : -1;
        for (j = 0; i < 0 && j < s->nsib; j++) {
            tk_state *o = find_state(s->sib[j]);
            if (o != NULL && o->ring != NULL && (i = find_name(o->ring, name)) >= 0)
                owner = o;
        }
        if (i < 0) {
            COUNT(s->st.unknown);
            pthread_rwlock_unlock(&tk_mu);
            return 0;
        }
        s = owner;
    }
    k = &s->ring->keys[i];
    if (k->until_ms != 0 && k->until_ms <= now) {
        COUNT(s->st.expired);
        pthread_rwlock_unlock(&tk_mu);
        return 0;
    }
    if (k->start_ms > now && k->may_encrypt) {
        age = -1; /* the published next key */
    } else {
        const tk_ring *r = s->ring;
        if (now > k->start_ms)
            age = upper_bound(r->enc_start, r->ne, now) - upper_bound(r->enc_start, r->ne, k->start_ms);
        if (i != pick_current(r, now))
            rc = 2; /* renew: reissue under the encrypting key */
    }
    if (!mac_init(hctx, k->hmac, key_mac_len(k)) || EVP_DecryptInit_ex(cctx, key_cipher(k), NULL, k->aes, iv) != 1)
        goto fail;
    if (age < 0)
        COUNT(s->st.decrypted[0]);
    else
        COUNT(s->st.decrypted[age + 1 < SSLSESS_TK_AGES ? age + 1 : SSLSESS_TK_AGES - 1]);
    if (rc == 2)
        COUNT(s->st.renewed);
    pthread_rwlock_unlock(&tk_mu);
    return rc;
fail:
    COUNT(s->st.errors);
    pthread_rwlock_unlock(&tk_mu);
    return -1;
}

#ifndef SSLSESS_OSSL102
/* 1.1.1+: runs on the session_ctx just before it encrypts a ticket. */
static int gen_cb(SSL *ssl, void *arg)
{
    tk_home_ssl = ssl;
    tk_home_ctx = arg;
    return 1;
}
#endif

static void install(SSL_CTX *ctx, int on)
{
#ifdef SSLSESS_TK_EVP_MAC
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on ? tk_cb : NULL);
#elif defined(SSLSESS_OSSL102)
    /* 1.0.2's macro passes the callback to SSL_CTX_callback_ctrl uncast. */
    SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB, on ? (void (*)(void))tk_cb : NULL);
#else
    /* 1.1.1's macro casts its argument unparenthesised: pass a plain name. */
    if (on)
        SSL_CTX_set_tlsext_ticket_key_cb(ctx, tk_cb);
    else
        SSL_CTX_set_tlsext_ticket_key_cb(ctx, NULL);
#endif
#ifndef SSLSESS_OSSL102
    SSL_CTX_set_session_ticket_cb(ctx, on ? gen_cb : NULL, NULL, on ? ctx : NULL);
#endif
}

int sslsess_tk_set(SSL_CTX *ctx, const sslsess_tk_key *keys, int n, int *installed, sslsess_err *e)
{
    tk_state *s, *fresh = NULL;
    tk_ring *r, *old;

    (void)e;
    *installed = 0;
    pthread_once(&tk_once, tk_init);
    if (ctx == NULL || n <= 0 || n > SSLSESS_TK_MAX || tk_idx < 0)
        return SSLSESS_FAIL;
    r = ring_build(keys, n);
    if (r == NULL)
        return SSLSESS_FAIL;
    fresh = calloc(1, sizeof(*fresh));
    if (fresh == NULL) {
        ring_free(r);
        return SSLSESS_FAIL;
    }
    pthread_rwlock_wrlock(&tk_mu);
    s = find_state(ctx);
    if (s == NULL) {
        s = fresh;
        fresh = NULL;
        s->ctx = ctx;
        s->next = tk_reg[bucket(ctx)];
        tk_reg[bucket(ctx)] = s;
    }
    old = s->ring;
    s->ring = r;
    if (!s->installed) {
        install(ctx, 1);
        s->installed = 1;
        *installed = 1;
    }
    pthread_rwlock_unlock(&tk_mu);
    free(fresh);
    ring_free(old);
    return SSLSESS_OK;
}

void sslsess_tk_clear(SSL_CTX *ctx)
{
    tk_state *s;
    tk_ring *old = NULL;
    pthread_once(&tk_once, tk_init);
    pthread_rwlock_wrlock(&tk_mu);
    s = find_state(ctx);
    if (s != NULL) {
        if (s->installed)
            install(ctx, 0);
        s->installed = 0;
        old = s->ring;
        s->ring = NULL;
    }
    pthread_rwlock_unlock(&tk_mu);
    ring_free(old);
}

int sslsess_tk_installed(SSL_CTX *ctx)
{
    tk_state *s;
    int on;
    pthread_rwlock_rdlock(&tk_mu);
    s = find_state(ctx);
    on = s != NULL && s->installed;
    pthread_rwlock_unlock(&tk_mu);
    return on;
}

int sslsess_tk_stats_get(SSL_CTX *ctx, sslsess_tk_stats *out)
{
    tk_state *s;
    int i;
    memset(out, 0, sizeof(*out));
    pthread_rwlock_rdlock(&tk_mu);
    s = find_state(ctx);
    if (s != NULL) {
        out->issued = __atomic_load_n(&s->st.issued, __ATOMIC_RELAXED);
        for (i = 0; i < SSLSESS_TK_AGES; i++)
            out->decrypted[i] = __atomic_load_n(&s->st.decrypted[i], __ATOMIC_RELAXED);
        out->renewed = __atomic_load_n(&s->st.renewed, __ATOMIC_RELAXED);
        out->unknown = __atomic_load_n(&s->st.unknown, __ATOMIC_RELAXED);
        out->expired = __atomic_load_n(&s->st.expired, __ATOMIC_RELAXED);
        out->no_key = __atomic_load_n(&s->st.no_key, __ATOMIC_RELAXED);
        out->errors = __atomic_load_n(&s->st.errors, __ATOMIC_RELAXED);
        out->linked = __atomic_load_n(&s->st.linked, __ATOMIC_RELAXED);
    }
    pthread_rwlock_unlock(&tk_mu);
    return s != NULL;
}

int sslsess_tk_current(SSL_CTX *ctx, int64_t now, unsigned char name[SSLSESS_TK_NAME])
{
    tk_state *s;
    int i = -1;
    pthread_rwlock_rdlock(&tk_mu);
    s = find_state(ctx);
    if (s != NULL && s->ring != NULL) {
        i = pick_current(s->ring, now);
        if (i >= 0)
            memcpy(name, s->ring->keys[i].name, SSLSESS_TK_NAME);
    }
    pthread_rwlock_unlock(&tk_mu);
    return i >= 0;
}
