#include "cfloor.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

struct cfloor {
    SSL_CTX *sctx, *cctx;
    int ln;
    struct sockaddr_in addr;
    SSL_SESSION *held;
};

static void fail(char *err, int errlen, const char *what)
{
    unsigned long code = ERR_get_error();
    char buf[256] = "";
    if (code != 0)
        ERR_error_string_n(code, buf, sizeof buf);
    snprintf(err, (size_t)errlen, "%s: %s%s", what, buf, code == 0 ? strerror(errno) : "");
    ERR_clear_error();
}

int cfloor_pin_groups(SSL_CTX *ctx)
{
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
    return SSL_CTX_set1_groups_list(ctx, CFLOOR_GROUPS) == 1;
#else
    (void)ctx;
    return 1;
#endif
}

static int set_version(SSL_CTX *ctx, int version)
{
#if OPENSSL_VERSION_NUMBER >= 0x10100000L
    return SSL_CTX_set_min_proto_version(ctx, version) == 1 && SSL_CTX_set_max_proto_version(ctx, version) == 1;
#else
    if (version != TLS1_2_VERSION)
        return 0;
    SSL_CTX_set_options(ctx, SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
    return 1;
#endif
}

cfloor *cfloor_new(const char *cert_pem, const char *key_pem, int version, const char *cipher, const char *suite,
                   char *err, int errlen)
{
    cfloor *f = calloc(1, sizeof *f);
    BIO *b;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    socklen_t alen = sizeof f->addr;
    if (f == NULL)
        return NULL;
    f->ln = -1;
    b = BIO_new_mem_buf((void *)cert_pem, -1);
    cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf((void *)key_pem, -1);
    key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (cert == NULL || key == NULL) {
        fail(err, errlen, "PEM");
        goto bad;
    }
    f->sctx = SSL_CTX_new(SSLv23_method());
    f->cctx = SSL_CTX_new(SSLv23_method());
    if (f->sctx == NULL || f->cctx == NULL || !set_version(f->sctx, version) || !set_version(f->cctx, version)) {
        fail(err, errlen, "SSL_CTX_new");
        goto bad;
    }
    if (SSL_CTX_set_cipher_list(f->sctx, cipher) != 1 || SSL_CTX_set_cipher_list(f->cctx, cipher) != 1
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
        || SSL_CTX_set_ciphersuites(f->sctx, suite) != 1 || SSL_CTX_set_ciphersuites(f->cctx, suite) != 1
#endif
    ) {
        fail(err, errlen, "cipher");
        goto bad;
    }
#if OPENSSL_VERSION_NUMBER < 0x10101000L
    (void)suite;
#endif
    if (cfloor_pin_groups(f->sctx) != 1 || cfloor_pin_groups(f->cctx) != 1) {
        fail(err, errlen, "groups");
        goto bad;
    }
    if (SSL_CTX_use_certificate(f->sctx, cert) != 1 || SSL_CTX_use_PrivateKey(f->sctx, key) != 1) {
        fail(err, errlen, "certificate");
        goto bad;
    }
#if OPENSSL_VERSION_NUMBER < 0x10100000L
    {
        EC_KEY *ecdh = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
        SSL_CTX_set_tmp_ecdh(f->sctx, ecdh);
        EC_KEY_free(ecdh);
    }
#endif
    SSL_CTX_set_session_id_context(f->sctx, (const unsigned char *)"cfloor", 6);
    SSL_CTX_set_session_cache_mode(f->sctx, SSL_SESS_CACHE_SERVER);
    /* The client trusts the certificate and checks it, as Dial does. */
    X509_STORE_add_cert(SSL_CTX_get_cert_store(f->cctx), cert);

    f->ln = socket(AF_INET, SOCK_STREAM, 0);
    memset(&f->addr, 0, sizeof f->addr);
    f->addr.sin_family = AF_INET;
    f->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (f->ln < 0 || bind(f->ln, (struct sockaddr *)&f->addr, sizeof f->addr) != 0 || listen(f->ln, 128) != 0 ||
        getsockname(f->ln, (struct sockaddr *)&f->addr, &alen) != 0) {
        fail(err, errlen, "listen");
        goto bad;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    return f;
bad:
    X509_free(cert);
    EVP_PKEY_free(key);
    cfloor_free(f);
    return NULL;
}

void cfloor_free(cfloor *f)
{
    if (f == NULL)
        return;
    if (f->held != NULL)
        SSL_SESSION_free(f->held);
    SSL_CTX_free(f->sctx);
    SSL_CTX_free(f->cctx);
    if (f->ln >= 0)
        close(f->ln);
    free(f);
}

static int nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

/* Steps a until done; what it waits for goes into ev. 1 done, 0 waiting,
 * -1 failed. */
static int step(SSL *s, int rv, short *ev)
{
    if (rv > 0)
        return 1;
    switch (SSL_get_error(s, rv)) {
    case SSL_ERROR_WANT_READ:
        *ev = POLLIN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *ev = POLLOUT;
        return 0;
    }
    return -1;
}

static int one(cfloor *f, int resume, int *reused, char *err, int errlen)
{
    int cfd = -1, sfd = -1, cdone = 0, sdone = 0, ok = -1;
    SSL *c = NULL, *s = NULL;
    struct pollfd p[2];

    cfd = socket(AF_INET, SOCK_STREAM, 0);
    if (cfd < 0 || !nonblock(cfd)) {
        fail(err, errlen, "socket");
        goto out;
    }
    if (connect(cfd, (struct sockaddr *)&f->addr, sizeof f->addr) != 0 && errno != EINPROGRESS) {
        fail(err, errlen, "connect");
        goto out;
    }
    p[0].fd = f->ln;
    p[0].events = POLLIN;
    if (poll(p, 1, 5000) != 1 || (sfd = accept(f->ln, NULL, NULL)) < 0 || !nonblock(sfd)) {
        fail(err, errlen, "accept");
        goto out;
    }
    {
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c = SSL_new(f->cctx);
    s = SSL_new(f->sctx);
    if (c == NULL || s == NULL || SSL_set_fd(c, cfd) != 1 || SSL_set_fd(s, sfd) != 1) {
        fail(err, errlen, "SSL_new");
        goto out;
    }
    /* As the library's connections do. */
    SSL_set_read_ahead(c, 1);
    SSL_set_read_ahead(s, 1);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    SSL_set_tlsext_host_name(c, "localhost");
    if (resume && f->held != NULL)
        SSL_set_session(c, f->held);
    while (!cdone || !sdone) {
        short cev = 0, sev = 0;
        int n = 0;
        if (!cdone && (cdone = step(c, SSL_do_handshake(c), &cev)) < 0) {
            fail(err, errlen, "client handshake");
            goto out;
        }
        if (!sdone && (sdone = step(s, SSL_do_handshake(s), &sev)) < 0) {
            fail(err, errlen, "server handshake");
            goto out;
        }
        if (cdone && sdone)
            break;
        if (!cdone) {
            p[n].fd = cfd;
            p[n++].events = cev;
        }
        if (!sdone) {
            p[n].fd = sfd;
            p[n++].events = sev;
        }
        if (poll(p, (nfds_t)n, 5000) <= 0) {
            fail(err, errlen, "poll");
            goto out;
        }
    }
    if (SSL_get_verify_result(c) != X509_V_OK) {
        snprintf(err, (size_t)errlen, "certificate not trusted");
        goto out;
    }
    {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        X509 *peer = SSL_get1_peer_certificate(c);
#else
        X509 *peer = SSL_get_peer_certificate(c);
#endif
        int match = peer != NULL && X509_check_host(peer, "localhost", 9, 0, NULL) == 1;
        X509_free(peer);
        if (!match) {
            snprintf(err, (size_t)errlen, "host name mismatch");
            goto out;
        }
    }
    if (SSL_session_reused(c))
        (*reused)++;
    if (resume && f->held == NULL) {
        /* Hold a resumable session: with TLS 1.3 the tickets come after
         * the handshake and the client must read them. */
        char b;
        int i;
        for (i = 0; i < 1000; i++) {
            SSL_SESSION *cur = SSL_get0_session(c);
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
            if (cur != NULL && SSL_SESSION_is_resumable(cur))
                break;
#else
            if (cur != NULL)
                break;
#endif
            if (SSL_read(c, &b, 1) <= 0 && SSL_get_error(c, -1) != SSL_ERROR_WANT_READ)
                break;
            p[0].fd = cfd;
            p[0].events = POLLIN;
            poll(p, 1, 5);
        }
        f->held = SSL_get1_session(c);
    }
    /* close_notify both ways, then close: what Close does in Go. */
    SSL_shutdown(c);
    SSL_shutdown(s);
    ok = 0;
out:
    SSL_free(c);
    SSL_free(s);
    if (cfd >= 0)
        close(cfd);
    if (sfd >= 0)
        close(sfd);
    return ok;
}

int cfloor_tcp(cfloor *f, int n, char *err, int errlen)
{
    int i;
    for (i = 0; i < n; i++) {
        int cfd = -1, sfd = -1, ok = 0;
        char b = 'x';
        struct pollfd p;
        cfd = socket(AF_INET, SOCK_STREAM, 0);
        if (cfd < 0 || !nonblock(cfd) ||
            (connect(cfd, (struct sockaddr *)&f->addr, sizeof f->addr) != 0 && errno != EINPROGRESS)) {
            fail(err, errlen, "connect");
            goto next;
        }
        p.fd = f->ln;
        p.events = POLLIN;
        if (poll(&p, 1, 5000) != 1 || (sfd = accept(f->ln, NULL, NULL)) < 0) {
            fail(err, errlen, "accept");
            goto next;
        }
        /* One byte from the client, read by the server, then both close:
         * what the Go loop does. */
        p.fd = cfd;
        p.events = POLLOUT;
        if (poll(&p, 1, 5000) != 1 || write(cfd, &b, 1) != 1 || read(sfd, &b, 1) != 1) {
            fail(err, errlen, "write");
            goto next;
        }
        ok = 1;
    next:
        if (cfd >= 0)
            close(cfd);
        if (sfd >= 0)
            close(sfd);
        if (!ok)
            return -1;
    }
    return n;
}

/* Runs op on s until it succeeds, waiting on fd with poll(2) in between.
 * 1 done, -1 failed. */
static int drive(SSL *s, int fd, int (*op)(SSL *))
{
    for (;;) {
        struct pollfd p;
        int rv = op(s);
        if (rv > 0)
            return 1;
        switch (SSL_get_error(s, rv)) {
        case SSL_ERROR_WANT_READ:
            p.events = POLLIN;
            break;
        case SSL_ERROR_WANT_WRITE:
            p.events = POLLOUT;
            break;
        default:
            return -1;
        }
        p.fd = fd;
        if (poll(&p, 1, 5000) != 1)
            return -1;
    }
}

struct server2 {
    cfloor *f;
    int n, failed;
};

/* The server of cfloor_run2, on its own thread: accept, handshake, read
 * until the client's close_notify, answer it, close; n times. */
static void *serve2(void *arg)
{
    struct server2 *a = arg;
    sigset_t set;
    int i;
    /* A write to a socket the client closed returns EPIPE here. */
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (i = 0; i < a->n; i++) {
        int sfd = accept(a->f->ln, NULL, NULL), one = 1;
        SSL *s;
        char b[256];
        if (sfd < 0 || !nonblock(sfd)) {
            a->failed = 1;
            if (sfd >= 0)
                close(sfd);
            break;
        }
        setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        s = SSL_new(a->f->sctx);
        if (s == NULL || SSL_set_fd(s, sfd) != 1) {
            a->failed = 1;
            SSL_free(s);
            close(sfd);
            break;
        }
        SSL_set_read_ahead(s, 1);
        SSL_set_accept_state(s);
        if (drive(s, sfd, SSL_do_handshake) != 1)
            a->failed = 1;
        else {
            for (;;) {
                struct pollfd p;
                int rv = SSL_read(s, b, sizeof b);
                if (rv > 0)
                    continue;
                if (SSL_get_error(s, rv) != SSL_ERROR_WANT_READ)
                    break;
                p.fd = sfd;
                p.events = POLLIN;
                if (poll(&p, 1, 5000) != 1)
                    break;
            }
            SSL_shutdown(s);
        }
        ERR_clear_error();
        SSL_free(s);
        close(sfd);
    }
    return NULL;
}

int cfloor_run2(cfloor *f, int n, int resume, char *err, int errlen)
{
    struct server2 a;
    pthread_t th;
    int i, reused = 0, ok = 1;
    if (resume && f->held == NULL && one(f, 1, &reused, err, errlen) != 0)
        return -1;
    reused = 0;
    a.f = f;
    a.n = n;
    a.failed = 0;
    if (pthread_create(&th, NULL, serve2, &a) != 0) {
        fail(err, errlen, "pthread_create");
        return -1;
    }
    for (i = 0; i < n && ok; i++) {
        int cfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        SSL *c = NULL;
        X509 *peer;
        ok = 0;
        if (cfd < 0 || !nonblock(cfd) ||
            (connect(cfd, (struct sockaddr *)&f->addr, sizeof f->addr) != 0 && errno != EINPROGRESS)) {
            fail(err, errlen, "connect");
            goto next;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = SSL_new(f->cctx);
        if (c == NULL || SSL_set_fd(c, cfd) != 1) {
            fail(err, errlen, "SSL_new");
            goto next;
        }
        SSL_set_read_ahead(c, 1);
        SSL_set_connect_state(c);
        SSL_set_tlsext_host_name(c, "localhost");
        if (resume)
            SSL_set_session(c, f->held);
        if (drive(c, cfd, SSL_do_handshake) != 1) {
            fail(err, errlen, "client handshake");
            goto next;
        }
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        peer = SSL_get1_peer_certificate(c);
#else
        peer = SSL_get_peer_certificate(c);
#endif
        if (SSL_get_verify_result(c) != X509_V_OK || peer == NULL ||
            X509_check_host(peer, "localhost", 9, 0, NULL) != 1) {
            X509_free(peer);
            snprintf(err, (size_t)errlen, "certificate not trusted or not for localhost");
            goto next;
        }
        X509_free(peer);
        if (SSL_session_reused(c))
            reused++;
        SSL_shutdown(c);
        ok = 1;
    next:
        SSL_free(c);
        if (cfd >= 0)
            close(cfd);
    }
    if (!ok) {
        /* Unblock the server's accept: connect until it has its n. */
        for (; i < n; i++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (fd >= 0) {
                connect(fd, (struct sockaddr *)&f->addr, sizeof f->addr);
                close(fd);
            }
        }
    }
    pthread_join(th, NULL);
    if (!ok)
        return -1;
    if (a.failed) {
        snprintf(err, (size_t)errlen, "server handshake failed");
        return -1;
    }
    return reused;
}

int cfloor_run(cfloor *f, int n, int resume, char *err, int errlen)
{
    int i, reused = 0;
    if (resume && f->held == NULL && one(f, 1, &reused, err, errlen) != 0)
        return -1;
    reused = 0;
    for (i = 0; i < n; i++) {
        if (one(f, resume, &reused, err, errlen) != 0)
            return -1;
    }
    return reused;
}
