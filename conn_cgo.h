/*
 * The C half of Conn (transport.go): one call per step, whichever
 * transport moves the bytes. sslsess_conn_io runs the operation and returns
 * what Go must do next (wait for the socket, or fill or drain a memory
 * BIO), with SSL_get_error, errno and the error queue captured in the same
 * call, on the same thread.
 */
#ifndef SSLSESSION_CONN_CGO_H
#define SSLSESSION_CONN_CGO_H

#include "session_cgo.h"

/* Operations of sslsess_conn_io. */
#define SSLSESS_OP_HANDSHAKE 0
#define SSLSESS_OP_READ 1
#define SSLSESS_OP_WRITE 2
#define SSLSESS_OP_SHUTDOWN 3
#define SSLSESS_OP_READ_EARLY 16  /* SSL_read_early_data, 1.1.1+ (earlydata.go) */
#define SSLSESS_OP_WRITE_EARLY 17 /* SSL_write_early_data, 1.1.1+ */

/* What sslsess_conn_io found (its return value). */
#define SSLSESS_IO_DONE 0       /* n holds the result */
#define SSLSESS_IO_WANT_READ 1  /* retry with more input (socket readable, read BIO filled) */
#define SSLSESS_IO_WANT_WRITE 2 /* retry when the socket is writable */
#define SSLSESS_IO_CLOSED 3     /* the peer sent close_notify */
#define SSLSESS_IO_EOF 4        /* the peer closed the socket without close_notify */
#define SSLSESS_IO_FAIL 5       /* see e: SSL_ERROR_SSL, or SSL_ERROR_SYSCALL with errno */
#define SSLSESS_IO_RENEGOTIATION 6 /* the peer started a renegotiation, refused */
#define SSLSESS_IO_EARLY_FINISH 16 /* SSL_read_early_data: the client's early data ended */

/* What one step did: st is one of SSLSESS_IO_*, n the result of a done
 * step, wrote whether it wrote to the write BIO (a read may: an alert, a
 * key update's answer), e the error. Returned by value: Go passes no pointer of its own
 * for it, so the call needs no cgo pointer check. */
typedef struct {
    int st;
    int n;
    int wrote;
    sslsess_err e;
} sslsess_io;

/* A new SSL over socket fd, in client or server state, refusing
 * renegotiation, with moving write buffers allowed (Go may retry a write
 * from another goroutine's stack copy of the same slice). */
SSL *sslsess_conn_new(SSL_CTX *ctx, int fd, int server, sslsess_err *e);
/* The same set-up for an SSL made elsewhere (spacemonkeygo's, over its
 * memory BIOs): SSLSESS_OK or SSLSESS_FAIL. */
int sslsess_conn_adopt(SSL *ssl, sslsess_err *e);
/* Called once the handshake is done: from then on a renegotiation is refused. */
void sslsess_conn_established(SSL *ssl);
sslsess_io sslsess_conn_io(SSL *ssl, int op, void *buf, int n);
long sslsess_conn_verify_result(const SSL *ssl);
/* 1 when the peer's certificate matches name (an IP address when is_ip),
 * 0 when not, SSLSESS_NO_SESSION without a peer certificate. */
int sslsess_conn_check_host(SSL *ssl, const char *name, int is_ip);
/* SSL_key_update(3): SSLSESS_FAIL where unavailable (before 1.1.1, or not TLS 1.3). */
int sslsess_conn_key_update(SSL *ssl, int request_peer, sslsess_err *e);

#endif
