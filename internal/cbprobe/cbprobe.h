/*
 * The C of package cbprobe: wrappers around an SSL_CTX's session
 * callbacks that run a probe, then chain to the callback set before.
 */
#ifndef SSLSESSION_CBPROBE_H
#define SSLSESSION_CBPROBE_H

#include <openssl/ssl.h>

#define CBPROBE_NEW 1
#define CBPROBE_GET 2
#define CBPROBE_REMOVE 4

/* Wraps the callbacks named in which (CBPROBE_* bits). One context at a
 * time: the wrapped callbacks are kept in this file. */
void cbprobe_install(SSL_CTX *ctx, int which);
/* Puts the wrapped callbacks back where the wrappers still are. */
void cbprobe_restore(SSL_CTX *ctx);

#endif
