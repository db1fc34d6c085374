/*
 * TLS 1.3 early data (0-RTT), OpenSSL 1.1.1 and later: the session's and
 * the context's limits, SSL_read_early_data and SSL_write_early_data on the
 * socket connection (conn_cgo.h), the early data status, and the
 * allow_early_data callback that asks Go (earlydata.go). Before 1.1.1 every
 * function here reports SSLSESS_FAIL or 0 and sslsess_early_supported is 0.
 */
#ifndef SSLSESSION_EARLYDATA_CGO_H
#define SSLSESSION_EARLYDATA_CGO_H

#include <stdint.h>
#include "conn_cgo.h"

/* SSL_get_early_data_status values (the same in every version that has them). */
#define SSLSESS_EARLY_NOT_SENT 0
#define SSLSESS_EARLY_REJECTED 1
#define SSLSESS_EARLY_ACCEPTED 2

/* 1 when the linked OpenSSL has early data (1.1.1+). */
int sslsess_early_supported(void);
/* SSL_SESSION_get_max_early_data(3). */
uint32_t sslsess_early_session_max(const SSL_SESSION *s);
/* SSL_CTX_set_max_early_data and SSL_CTX_set_recv_max_early_data. */
int sslsess_early_ctx_set_max(SSL_CTX *ctx, uint32_t max, uint32_t recv_max, sslsess_err *e);
uint32_t sslsess_early_ctx_max(const SSL_CTX *ctx);
uint32_t sslsess_early_ctx_recv_max(const SSL_CTX *ctx);
/* Sets or clears SSL_OP_NO_ANTI_REPLAY; 1 when it is now set. */
int sslsess_early_ctx_no_anti_replay(SSL_CTX *ctx, int on);
/* Installs (h != 0) or removes the allow_early_data callback: it calls
 * sslsessGoAllowEarly with h. Affects SSL objects made afterwards. */
int sslsess_early_ctx_set_cb(SSL_CTX *ctx, uintptr_t h);
/* SSL_get_early_data_status(3). */
int sslsess_early_status(const SSL *ssl);
/* The max early data of the session the SSL offers (a client before its
 * handshake), 0 without one. */
uint32_t sslsess_early_offer_max(const SSL *ssl);
/* SSL_is_server(3). */
int sslsess_early_is_server(const SSL *ssl);
/* The SSL_CTX an SSL was made from (SSL_get_SSL_CTX(3)). */
SSL_CTX *sslsess_early_ssl_ctx(const SSL *ssl);

#endif
