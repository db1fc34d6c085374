/*
 * Forced-include compatibility header for github.com/spacemonkeygo/openssl
 * on OpenSSL 3.x. The pinned spacemonkeygo version calls FIPS_mode_set,
 * which OpenSSL 3.0 removed; this maps it onto the 3.x property API.
 *
 * The Makefile passes it with `-include` in CGO_CFLAGS only when pkg-config
 * reports OpenSSL 3.x. It is force-included into every cgo file of the
 * build (runtime/cgo too), so it includes nothing: a header included here
 * would come before those files' own feature macros such as _GNU_SOURCE.
 * The 3.x prototype is therefore declared here by hand (it matches
 * <openssl/evp.h>); the static inline is only emitted where it is used.
 */
#ifndef SSLSESSION_SPACEMONKEY_OSSL3_H
#define SSLSESSION_SPACEMONKEY_OSSL3_H
#ifndef __ASSEMBLER__
struct ossl_lib_ctx_st;
int EVP_default_properties_enable_fips(struct ossl_lib_ctx_st *libctx, int enable);
static inline int FIPS_mode_set(int on)
{
    return EVP_default_properties_enable_fips((struct ossl_lib_ctx_st *)0, on);
}
#endif
#endif
