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

/* One per SSL_CTX with ticket keys, in its ex_data; freed with it. */
typedef struct {
    pthread_mutex_t mu;
    sslsess_tk_key *keys; /* guarded by mu; replaced whole */
    int n;
    int installed;
    sslsess_tk_stats st;  /* atomic counters */
} tk_state;

static int tk_idx = -1;
static pthread_once_t tk_once = PTHREAD_ONCE_INIT;

void sslsess_tk_cleanse(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

static void drop_keys(sslsess_tk_key *keys, int n)
{
    if (keys == NULL)
        return;
    OPENSSL_cleanse(keys, sizeof(*keys) * (size_t)n);
    free(keys);
}

static void tk_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    tk_state *s = ptr;
    (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
    if (s == NULL)
        return;
    drop_keys(s->keys, s->n);
    pthread_mutex_destroy(&s->mu);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

static void tk_init(void)
{
    tk_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tk_free);
}

static tk_state *state_of(SSL_CTX *ctx)
{
    pthread_once(&tk_once, tk_init);
    if (tk_idx < 0 || ctx == NULL)
        return NULL;
    return SSL_CTX_get_ex_data(ctx, tk_idx);
}

/* OpenSSL runs the ticket callback of the SSL's session_ctx, which an SNI
 * callback does not change; 1.1.0+ has no getter for it, so there the SSL's
 * current context is used (install the keys on every SNI context). */
static tk_state *state_of_ssl(SSL *ssl)
{
#ifdef SSLSESS_OSSL102
    tk_state *s = state_of(ssl->session_ctx);
    if (s != NULL)
        return s;
#endif
    return state_of(SSL_get_SSL_CTX(ssl));
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define COUNT(field) __atomic_fetch_add(&(field), 1, __ATOMIC_RELAXED)

/* The key that encrypts at now: of the ring's keys, the latest started one;
 * if none has started (a clock behind the fleet's), the earliest. -1 when
 * the ring has none. Call with s->mu held. */
static int pick_current(const tk_state *s, int64_t now)
{
    int best = -1, first = -1, i;
    for (i = 0; i < s->n; i++) {
        const sslsess_tk_key *k = &s->keys[i];
        if (!k->may_encrypt || (k->until_ms != 0 && k->until_ms <= now))
            continue;
        if (k->start_ms <= now) {
            if (best < 0 || k->start_ms > s->keys[best].start_ms)
                best = i;
        } else if (first < 0 || k->start_ms < s->keys[first].start_ms) {
            first = i;
        }
    }
    return best >= 0 ? best : first;
}

static int mac_init(sslsess_tk_mac *h, const unsigned char *key)
{
#ifdef SSLSESS_TK_EVP_MAC
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key, SSLSESS_TK_HMAC);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(h, params) == 1;
#else
    return HMAC_Init_ex(h, key, SSLSESS_TK_HMAC, EVP_sha256(), NULL) == 1;
#endif
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
        ok = EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 && mac_init(hctx, k.hmac);
    }
    OPENSSL_cleanse(&k, sizeof(k));
    return ok ? 1 : -1;
}
#endif

static int tk_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, sslsess_tk_mac *hctx, int enc)
{
    tk_state *s = state_of_ssl(ssl);
    sslsess_tk_key k;
    int64_t now = now_ms();
    int i, rc = 1, age = 0;

    if (s == NULL)
        return enc ? no_ticket(name, iv, cctx, hctx) : 0;
    pthread_mutex_lock(&s->mu);
    if (enc) {
        i = pick_current(s, now);
        if (i >= 0)
            k = s->keys[i];
    } else {
        int cur = pick_current(s, now), j;
        for (i = 0; i < s->n; i++)
            if (memcmp(s->keys[i].name, name, SSLSESS_TK_NAME) == 0)
                break;
        if (i == s->n) {
            i = -1;
        } else {
            k = s->keys[i];
            if (k.start_ms > now && k.may_encrypt) {
                age = -1; /* the published next key */
            } else {
                for (j = 0; j < s->n; j++)
                    if (s->keys[j].may_encrypt && s->keys[j].start_ms > k.start_ms && s->keys[j].start_ms <= now)
                        age++;
                if (i != cur)
                    rc = 2; /* renew: reissue under the encrypting key */
            }
        }
    }
    pthread_mutex_unlock(&s->mu);

    if (i < 0) {
        if (enc) {
            COUNT(s->st.no_key);
            return no_ticket(name, iv, cctx, hctx);
        }
        COUNT(s->st.unknown);
        return 0;
    }
    if (!enc && k.until_ms != 0 && k.until_ms <= now) {
        OPENSSL_cleanse(&k, sizeof(k));
        COUNT(s->st.expired);
        return 0;
    }
    if (enc) {
        if (RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) != 1)
            goto fail;
        memcpy(name, k.name, SSLSESS_TK_NAME);
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1 || !mac_init(hctx, k.hmac))
            goto fail;
        COUNT(s->st.issued);
    } else {
        if (!mac_init(hctx, k.hmac) || EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            goto fail;
        if (age < 0)
            COUNT(s->st.decrypted[0]);
        else
            COUNT(s->st.decrypted[age + 1 < SSLSESS_TK_AGES ? age + 1 : SSLSESS_TK_AGES - 1]);
        if (rc == 2)
            COUNT(s->st.renewed);
    }
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
fail:
    OPENSSL_cleanse(&k, sizeof(k));
    COUNT(s->st.errors);
    return -1;
}

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
}

int sslsess_tk_set(SSL_CTX *ctx, const sslsess_tk_key *keys, int n, sslsess_err *e)
{
    tk_state *s;
    sslsess_tk_key *copy = NULL, *old;
    int oldn;

    ERR_clear_error();
    if (ctx == NULL || n < 0)
        return SSLSESS_FAIL;
    s = state_of(ctx);
    if (s == NULL) {
        if (tk_idx < 0)
            return SSLSESS_FAIL;
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return SSLSESS_FAIL;
        pthread_mutex_init(&s->mu, NULL);
        if (!SSL_CTX_set_ex_data(ctx, tk_idx, s)) {
            sslsess_err_capture(e);
            pthread_mutex_destroy(&s->mu);
            free(s);
            return SSLSESS_FAIL;
        }
    }
    if (n > 0) {
        copy = malloc(sizeof(*copy) * (size_t)n);
        if (copy == NULL)
            return SSLSESS_FAIL;
        memcpy(copy, keys, sizeof(*copy) * (size_t)n);
    }
    pthread_mutex_lock(&s->mu);
    old = s->keys;
    oldn = s->n;
    s->keys = copy;
    s->n = n;
    pthread_mutex_unlock(&s->mu);
    drop_keys(old, oldn);
    if (!s->installed) {
        install(ctx, 1);
        s->installed = 1;
    }
    return SSLSESS_OK;
}

void sslsess_tk_clear(SSL_CTX *ctx)
{
    tk_state *s = state_of(ctx);
    sslsess_tk_key *old;
    int oldn;
    if (s == NULL)
        return;
    install(ctx, 0);
    s->installed = 0;
    pthread_mutex_lock(&s->mu);
    old = s->keys;
    oldn = s->n;
    s->keys = NULL;
    s->n = 0;
    pthread_mutex_unlock(&s->mu);
    drop_keys(old, oldn);
}

int sslsess_tk_installed(SSL_CTX *ctx)
{
    tk_state *s = state_of(ctx);
    return s != NULL && s->installed;
}

int sslsess_tk_stats_get(SSL_CTX *ctx, sslsess_tk_stats *out)
{
    tk_state *s = state_of(ctx);
    int i;
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return 0;
    out->issued = __atomic_load_n(&s->st.issued, __ATOMIC_RELAXED);
    for (i = 0; i < SSLSESS_TK_AGES; i++)
        out->decrypted[i] = __atomic_load_n(&s->st.decrypted[i], __ATOMIC_RELAXED);
    out->renewed = __atomic_load_n(&s->st.renewed, __ATOMIC_RELAXED);
    out->unknown = __atomic_load_n(&s->st.unknown, __ATOMIC_RELAXED);
    out->expired = __atomic_load_n(&s->st.expired, __ATOMIC_RELAXED);
    out->no_key = __atomic_load_n(&s->st.no_key, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&s->st.errors, __ATOMIC_RELAXED);
    return 1;
}

int sslsess_tk_current(SSL_CTX *ctx, int64_t now, unsigned char name[SSLSESS_TK_NAME])
{
    tk_state *s = state_of(ctx);
    int i;
    if (s == NULL)
        return 0;
    pthread_mutex_lock(&s->mu);
    i = pick_current(s, now);
    if (i >= 0)
        memcpy(name, s->keys[i].name, SSLSESS_TK_NAME);
    pthread_mutex_unlock(&s->mu);
    return i >= 0;
}
