/*
 * The C half of session-ticket keys (ticketkeys.go). OpenSSL's ticket-key
 * callback runs on every handshake that issues or presents a ticket; it
 * encrypts and decrypts here, in C, without calling Go. Go publishes the key
 * ring as an immutable copy in C memory, indexed when it is set (keys sorted
 * by name, the encrypting key of every time segment precomputed), swapped
 * whole under a process-wide read-write lock that the callback holds as a
 * reader while it sets up the cipher. The per-context state lives in a
 * registry keyed by the SSL_CTX pointer, never in the SSL_CTX's ex_data:
 * writing ex_data while handshakes read it is a data race in OpenSSL. An
 * ex_data index is registered only for its free callback, which OpenSSL
 * runs for every registered index when an SSL_CTX is freed, value set or
 * not. Counters are kept here and read by Go. Every version difference of
 * the callback (HMAC_CTX on 1.0.2 and 1.1.1, EVP_MAC_CTX on 3.x) is in
 * ticketkeys_cgo.c.
 */
#ifndef SSLSESSION_TICKETKEYS_CGO_H
#define SSLSESSION_TICKETKEYS_CGO_H

#include <stdint.h>
#include "session_cgo.h"

#define SSLSESS_TK_NAME 16
#define SSLSESS_TK_AES 32  /* AES-256; AES-128 keys use the first 16 bytes */
#define SSLSESS_TK_HMAC 32 /* idem for the HMAC-SHA256 key */
#define SSLSESS_TK_SHORT 16
#define SSLSESS_TK_MAX 1024
/* Decryptions counted by key age: [0] the next key (published, not yet
 * encrypting), [1] the encrypting key, [1+k] k rotations old, the last
 * bucket for older ones. */
#define SSLSESS_TK_AGES 9

typedef struct {
    unsigned char name[SSLSESS_TK_NAME];
    unsigned char aes[SSLSESS_TK_AES];
    unsigned char hmac[SSLSESS_TK_HMAC];
    int64_t start_ms;  /* encrypts from this time on (with may_encrypt) */
    int64_t until_ms;  /* decrypts until this time; 0: no end */
    int may_encrypt;   /* member of the ring that encrypts */
    int aes128;        /* AES-128-CBC with a 16-byte HMAC key (48-byte keys) */
} sslsess_tk_key;

typedef struct {
    long issued;      /* tickets encrypted */
    long decrypted[SSLSESS_TK_AGES];
    long renewed;     /* decrypted with a key that no longer encrypts: reissued */
    long unknown;     /* key name not in the ring */
    long expired;     /* key known but past its decrypt lifetime */
    long no_key;      /* nothing to encrypt with: no ticket issued */
    long errors;      /* OpenSSL failed to set up the cipher or the HMAC */
    long linked;      /* contexts an SNI callback switched to from this one */
} sslsess_tk_stats;

/* Publishes a copy of keys[0..n) on ctx (1 <= n <= SSLSESS_TK_MAX),
 * installs the ticket-key callback when it is not installed and then sets
 * *installed to 1, and cleanses and frees the previous copy. SSLSESS_OK or
 * SSLSESS_FAIL. */
int sslsess_tk_set(SSL_CTX *ctx, const sslsess_tk_key *keys, int n, int *installed, sslsess_err *e);
/* Takes the callback off and drops the keys (cleansed). */
void sslsess_tk_clear(SSL_CTX *ctx);
/* Whether this package's ticket callback is installed on ctx. */
int sslsess_tk_installed(SSL_CTX *ctx);
/* Reads the counters; returns 0 when ctx has no ticket keys. */
int sslsess_tk_stats_get(SSL_CTX *ctx, sslsess_tk_stats *out);
/* The name of the key that would encrypt at now_ms; 0 when none. */
int sslsess_tk_current(SSL_CTX *ctx, int64_t now_ms, unsigned char name[SSLSESS_TK_NAME]);
/* Wipes n bytes (OPENSSL_cleanse). */
void sslsess_tk_cleanse(void *p, size_t n);

#endif
