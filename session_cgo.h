/*
 * The C shim of sslsession's session calls, and the header every other C
 * file of the package includes (callbacks_cgo.* the session callbacks, conn_cgo.*
 * the socket connection, ticketkeys_cgo.* the ticket keys). OpenSSL macros
 * and differences between versions sit behind functions of these files, so
 * the Go files never see a version number; SSLSESS_OSSL102, defined here
 * only, is the one switch for 1.0.2. Functions that can fail drain OpenSSL's
 * per-thread error queue into an sslsess_err inside the same call.
 */
#ifndef SSLSESSION_SESSION_CGO_H
#define SSLSESSION_SESSION_CGO_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#if OPENSSL_VERSION_NUMBER < 0x10002000L
#error "sslsession needs OpenSSL 1.0.2 or later"
#endif

/* OpenSSL 1.0.2: opaque structures, no TLS 1.3, other callback signatures. */
#if OPENSSL_VERSION_NUMBER < 0x10100000L
#define SSLSESS_OSSL102 1
#endif

/* Status codes the Go side reads as C.SSLSESS_*; statusError (errors.go)
 * turns them into errors. */
#define SSLSESS_OK 0
#define SSLSESS_FAIL -1      /* OpenSSL failed; see the sslsess_err */
#define SSLSESS_STALE -2     /* borrowed pointer is no longer the SSL's session */
#define SSLSESS_WRONG_CTX -3 /* session belongs to another SSL_CTX */
#define SSLSESS_NO_SESSION -4
#define SSLSESS_BEGUN -5       /* SSL_set_session after the handshake began */
#define SSLSESS_SERVER_SIDE -6 /* SSL_set_session on a server-side SSL */

#define SSLSESS_ERR_MAX 16
typedef struct {
    unsigned long codes[SSLSESS_ERR_MAX];
    int n;
    int ssl_error; /* SSL_get_error result for I/O calls, else 0 */
    int sys_errno;
} sslsess_err;

typedef struct {
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned int id_len;
    unsigned char sid_ctx[SSL_MAX_SID_CTX_LENGTH];
    unsigned int sid_ctx_len;
    long time;
    long timeout;
    int protocol;
    unsigned long cipher_id;
    char cipher_name[64];
    int resumable;
    int has_ticket;
    unsigned long ticket_lifetime_hint;
    size_t ticket_len;
    int has_peer;
    uint32_t max_early_data; /* SSL_SESSION_get_max_early_data, 1.1.1+; 0 before */
} sslsess_info;

/* Library versions and thread setup. */
unsigned long sslsess_build_version(void);
unsigned long sslsess_runtime_version(void);
const char *sslsess_runtime_version_text(void);
int sslsess_threads_ok(void);

/* The calls of SSL_get_session(3), and the matching free.
 *
 * sslsess_borrow is SSL_get0_session (SSL_get_session is the same function:
 * ssl.h defines one as the other in every version) with the identity of a
 * borrowed session: a serial number kept in the SSL_SESSION's ex_data,
 * assigned the first time the session is borrowed (0 when it cannot be). A
 * session freed and another allocated at the same address has another
 * serial (or none), so a borrowed handle never reads a session it was not
 * taken from. One call for both, returned by value: no Go pointer crosses.
 * Call it with ssl's lock held. */
typedef struct {
    SSL_SESSION *p; /* NULL: ssl has no session */
    uintptr_t serial;
} sslsess_borrowed;
sslsess_borrowed sslsess_borrow(const SSL *ssl);
SSL_SESSION *sslsess_get1(SSL *ssl);
void sslsess_free(SSL_SESSION *s);
int sslsess_up_ref(SSL_SESSION *s);

/* Accessors. With ssl != NULL the session is borrowed from ssl and is only
 * used if it is still ssl's current session (else SSLSESS_STALE). */
int sslsess_check(const SSL *ssl, SSL_SESSION *s);
/* sslsess_check, and s still carries serial (see sslsess_borrow). */
int sslsess_check_serial(const SSL *ssl, SSL_SESSION *s, uintptr_t serial);
int sslsess_info_get(const SSL *ssl, SSL_SESSION *s, sslsess_info *out);
int sslsess_set_timeout(const SSL *ssl, SSL_SESSION *s, long t);
int sslsess_set_time(const SSL *ssl, SSL_SESSION *s, long t);
int sslsess_master_key(const SSL *ssl, SSL_SESSION *s, unsigned char *out, size_t cap, size_t *n);
int sslsess_peer_der(const SSL *ssl, SSL_SESSION *s, unsigned char *out, int cap, int *n);
/* With out NULL, the DER's length in *n; else the DER into out (cap bytes). */
int sslsess_i2d(const SSL *ssl, SSL_SESSION *s, unsigned char *out, int cap, int *n, sslsess_err *e);
SSL_SESSION *sslsess_d2i(const unsigned char *in, long len, long *used, sslsess_err *e);
int sslsess_up_ref_checked(const SSL *ssl, SSL_SESSION *s);

/* Connection side. */
/* Whether SSL_set_session may be used on ssl now: SSLSESS_OK, or
 * SSLSESS_BEGUN once the handshake began (until SSL_clear), or
 * SSLSESS_SERVER_SIDE when role_known and ssl is a server. */
int sslsess_set_session_check(const SSL *ssl, int role_known);
/* want: the session's SSL_CTX address, 0 for any. */
int sslsess_set_session(SSL *ssl, SSL_SESSION *s, uintptr_t want, sslsess_err *e);
int sslsess_session_reused(SSL *ssl);
SSL_CTX *sslsess_ssl_ctx(const SSL *ssl);
int sslsess_current_resumable(const SSL *ssl);

/* The SSL object: SSL_free(3), SSL_set_tlsext_host_name(3). */
void sslsess_ssl_free(SSL *ssl);
int sslsess_ssl_set_host(SSL *ssl, const char *name, sslsess_err *e);

/* Errors. sslsess_err_capture drains this thread's error queue into e (or
 * just clears it when e is NULL). */
void sslsess_err_capture(sslsess_err *e);
void sslsess_err_string(unsigned long code, char *buf, size_t n);
const char *sslsess_verify_string(long code);

/* The ex_data dup callback for slots whose value must not be shared by a
 * copy of the object: the copy gets NULL. Its signature differs by version. */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
int sslsess_exdata_nodup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx, long argl, void *argp);
#else
#ifdef SSLSESS_OSSL102
#define SSLSESS_EXDATA_FROM_CONST
#else
#define SSLSESS_EXDATA_FROM_CONST const
#endif
int sslsess_exdata_nodup(CRYPTO_EX_DATA *to, SSLSESS_EXDATA_FROM_CONST CRYPTO_EX_DATA *from, void *from_d, int idx, long argl, void *argp);
#endif

/* SSL_CTX session cache: the macros of SSL_CTX_set_session_cache_mode(3),
 * SSL_CTX_sess_number(3) and friends as functions. */
long sslsess_ctx_set_cache_mode(SSL_CTX *ctx, long mode);
long sslsess_ctx_get_cache_mode(SSL_CTX *ctx);
long sslsess_ctx_set_cache_size(SSL_CTX *ctx, long n);
long sslsess_ctx_get_cache_size(SSL_CTX *ctx);
long sslsess_ctx_set_timeout(SSL_CTX *ctx, long t);
long sslsess_ctx_get_timeout(SSL_CTX *ctx);
int sslsess_ctx_set_sid_ctx(SSL_CTX *ctx, const unsigned char *p, unsigned int n, sslsess_err *e);
void sslsess_ctx_flush(SSL_CTX *ctx, long t);
int sslsess_ctx_add(SSL_CTX *ctx, SSL_SESSION *s);
int sslsess_ctx_remove(SSL_CTX *ctx, SSL_SESSION *s);
long sslsess_ctx_options(SSL_CTX *ctx, long set, long clear);
/* SSL_CTX_set_num_tickets(3) and SSL_CTX_get_num_tickets(3), 1.1.1+. On
 * 1.0.2 set returns SSLSESS_FAIL (e stays empty) and get returns -1. */
int sslsess_ctx_set_num_tickets(SSL_CTX *ctx, size_t n, sslsess_err *e);
long sslsess_ctx_get_num_tickets(SSL_CTX *ctx);
/* SSL_CTX_set_ciphersuites(3), 1.1.1+: SSLSESS_FAIL with an empty e on
 * 1.0.2, with OpenSSL's error when the list names no suite it knows. */
int sslsess_ctx_set_ciphersuites(SSL_CTX *ctx, const char *list, sslsess_err *e);
/* Protocol range, 0 for no bound. SSLSESS_FAIL when the library cannot
 * speak min (TLS 1.3 on 1.0.2; e stays empty) or OpenSSL refuses a bound
 * (e holds its queue). */
int sslsess_ctx_set_proto_range(SSL_CTX *ctx, int min, int max, sslsess_err *e);
int sslsess_max_supported_proto(void);
int sslsess_ctx_default_verify_paths(SSL_CTX *ctx, sslsess_err *e);
int sslsess_ssl_version(const SSL *ssl);
int sslsess_ssl_cipher(const SSL *ssl, char *out, size_t n);

typedef struct {
    long number, connect, connect_good, connect_renegotiate;
    long accept, accept_good, accept_renegotiate;
    long hits, cb_hits, misses, timeouts, cache_full;
} sslsess_stats;
void sslsess_ctx_stats(SSL_CTX *ctx, sslsess_stats *out);

#endif
