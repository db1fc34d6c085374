/*
 * The C of package freewatch: an SSL_SESSION ex_data slot whose free
 * callback raises a flag when OpenSSL really frees the session.
 */
#ifndef SSLSESSION_FREEWATCH_H
#define SSLSESSION_FREEWATCH_H

#include <openssl/ssl.h>

/* Marks s; returns a flag that becomes 1 when OpenSSL frees s, or NULL.
 * Release it with freewatch_release. */
int *freewatch_watch(SSL_SESSION *s);
void freewatch_release(int *flag);
int freewatch_freed(int *flag);

#endif
