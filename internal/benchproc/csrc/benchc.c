/*
 * The C programs of make bench-server and make bench-client: a TLS server
 * and a TLS client on OpenSSL alone, one process each, driven by the
 * benchmark (internal/benchproc) through lines on standard input.
 *
 *   benchc server VERSION CERT KEY     listens on 127.0.0.1, prints "port N"
 *     stats                            "ok n=.. resumed=.. failed=.. suites=.. groups=.." since the last stats
 *   benchc client VERSION CAFILE       prints "ready"
 *     seed PORT MODE                   MODE full, id or ticket: holds a session for id and ticket
 *     run COUNT SECONDS                handshakes until COUNT (0: no limit) or SECONDS
 *                                      "ok n=.. resumed=.. ns=.. suites=.. groups=.."
 *   benchc version                     prints OpenSSL's version text
 *
 * VERSION is 12 or 13. One connection at a time, blocking sockets: each
 * connection is a TCP connect, the handshake (the client checks the
 * certificate and the name "localhost"), close_notify from the client, the
 * server's close_notify back, close; the client reads the server's TLS 1.3
 * tickets on the way. Both ends pin ECDHE-ECDSA-AES128-GCM-SHA256 or
 * TLS_AES_128_GCM_SHA256, and X25519 (P-256 on 1.0.2, which has no X25519):
 * the server has that one group only.
 * Every reply is one line; errors are "error WHAT".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define TLS12_CIPHER "ECDHE-ECDSA-AES128-GCM-SHA256"
#define TLS13_SUITE "TLS_AES_128_GCM_SHA256"

/* Names seen in a round and how often: a handful at most. */
#define NAMES 8
struct tally {
    char name[NAMES][48];
    int count[NAMES];
};

struct stats {
    int n, resumed, failed;
    struct tally suites, groups;
};

static void tally_add(struct tally *t, const char *name)
{
    int i;
    for (i = 0; i < NAMES && t->name[i][0] != '\0'; i++) {
        if (strcmp(t->name[i], name) == 0) {
            t->count[i]++;
            return;
        }
    }
    if (i == NAMES)
        i = NAMES - 1; /* more names than expected: the last slot counts them */
    snprintf(t->name[i], sizeof t->name[i], "%s", name);
    t->count[i]++;
}

static void tally_print(const struct tally *t)
{
    int i;
    for (i = 0; i < NAMES && t->name[i][0] != '\0'; i++)
        printf("%s%s:%d", i ? "," : "", t->name[i], t->count[i]);
    if (i == 0)
        printf("-");
}

/* Writes "WHAT: REASON" into buf, the reason OpenSSL's first queued error
 * or errno's, and clears the queue. */
static void error_text(const char *what, char *buf, size_t len)
{
    unsigned long code = ERR_get_error();
    char reason[256] = "";
    if (code != 0)
        ERR_error_string_n(code, reason, sizeof reason);
    snprintf(buf, len, "%s: %s", what, code != 0 ? reason : strerror(errno));
    ERR_clear_error();
}

static void reply_error(const char *what)
{
    char buf[320];
    error_text(what, buf, sizeof buf);
    printf("error %s\n", buf);
    fflush(stdout);
}

static const char *curve_name(int nid)
{
    if (nid == NID_X9_62_prime256v1)
        return "P-256";
#ifdef NID_X25519
    if (nid == NID_X25519)
        return "X25519";
#endif
    return nid == 0 ? "none" : OBJ_nid2sn(nid);
}

/* The group of the handshake's key exchange, "none" without one (a
 * resumed TLS 1.2 handshake). */
static const char *group_name(SSL *s, int server)
{
    /* 1.0.2's client still holds the first handshake's key then. */
    if (SSL_version(s) < 0x0304 && SSL_session_reused(s))
        return "none";
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    (void)server;
    return curve_name(SSL_get_negotiated_group(s) & 0xffff);
#else
    EVP_PKEY *k = NULL;
    const char *name = "none";
    if (server) {
        /* Before 3.0 a server cannot name the group it used; it has one
         * group only, so a key exchange used that one. */
#if OPENSSL_VERSION_NUMBER >= 0x10100000L
        return curve_name(SSL_get_shared_group(s, 0));
#else
        return curve_name(SSL_get_shared_curve(s, 0));
#endif
    }
    if (!SSL_get_server_tmp_key(s, &k) || k == NULL)
        return "none";
#ifdef EVP_PKEY_X25519
    if (EVP_PKEY_id(k) == EVP_PKEY_X25519)
        name = "X25519";
#endif
    if (EVP_PKEY_id(k) == EVP_PKEY_EC) {
        EC_KEY *ec = EVP_PKEY_get1_EC_KEY(k);
        if (ec != NULL)
            name = curve_name(EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)));
        EC_KEY_free(ec);
    }
    EVP_PKEY_free(k);
    return name;
#endif
}

static void record(struct stats *st, SSL *s, int server)
{
    st->n++;
    if (SSL_session_reused(s))
        st->resumed++;
    tally_add(&st->suites, SSL_CIPHER_get_name(SSL_get_current_cipher(s)));
    tally_add(&st->groups, group_name(s, server));
}

static void print_stats(const struct stats *st, long long ns)
{
    printf("ok n=%d resumed=%d failed=%d", st->n, st->resumed, st->failed);
    if (ns >= 0)
        printf(" ns=%lld", ns);
    printf(" suites=");
    tally_print(&st->suites);
    printf(" groups=");
    tally_print(&st->groups);
    printf("\n");
    fflush(stdout);
}

/* The groups of the C programs, so that every implementation does the
 * same key exchange work (the library's contexts get internal/cfloor's
 * X25519:P-256): the server has X25519 only; the client offers P-256 too
 * (in TLS 1.2 a server takes an ECDSA certificate only on a curve the
 * client lists) and nothing else, where OpenSSL 3.5's default list would
 * also send an X25519MLKEM768 key share. On 1.0.2, P-256. 1 on success. */
static int pin_groups(SSL_CTX *ctx, int server)
{
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
    return SSL_CTX_set1_groups_list(ctx, server ? "X25519" : "X25519:P-256") == 1;
#else
    if (server) {
        EC_KEY *ecdh = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
        int ok = ecdh != NULL && SSL_CTX_set_tmp_ecdh(ctx, ecdh) == 1;
        EC_KEY_free(ecdh);
        return ok;
    }
    return SSL_CTX_set1_curves_list(ctx, "P-256") == 1;
#endif
}

static SSL_CTX *new_ctx(int server, int version)
{
    SSL_CTX *ctx = SSL_CTX_new(SSLv23_method());
    if (ctx == NULL)
        return NULL;
#if OPENSSL_VERSION_NUMBER >= 0x10100000L
    if (SSL_CTX_set_min_proto_version(ctx, version) != 1 || SSL_CTX_set_max_proto_version(ctx, version) != 1)
        goto bad;
#else
    if (version != TLS1_2_VERSION)
        goto bad;
    SSL_CTX_set_options(ctx, SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
#endif
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHER) != 1)
        goto bad;
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
    if (SSL_CTX_set_ciphersuites(ctx, TLS13_SUITE) != 1)
        goto bad;
#endif
    if (pin_groups(ctx, server) != 1)
        goto bad;
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    return ctx;
bad:
    SSL_CTX_free(ctx);
    return NULL;
}

static int version_arg(const char *s)
{
    if (strcmp(s, "12") == 0)
        return TLS1_2_VERSION;
    if (strcmp(s, "13") == 0)
        return 0x0304;
    return 0;
}

/* Timeouts so that a silent peer cannot hang the benchmark. */
static void timeouts(int fd)
{
    struct timeval tv = {5, 0};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Reads until the peer's close_notify or the end of the stream. */
static void drain(SSL *s)
{
    char buf[512];
    while (SSL_read(s, buf, sizeof buf) > 0) {
    }
}

/* One connection of the server: handshake, read to the client's
 * close_notify, answer it, close. */
static void serve_one(SSL_CTX *ctx, int fd, struct stats *st)
{
    SSL *s = SSL_new(ctx);
    timeouts(fd);
    if (s != NULL)
        SSL_set_read_ahead(s, 1); /* as the library's connections do */
    if (s == NULL || SSL_set_fd(s, fd) != 1 || SSL_accept(s) != 1) {
        st->failed++;
        ERR_clear_error();
        SSL_free(s);
        close(fd);
        return;
    }
    record(st, s, 1);
    drain(s);
    SSL_shutdown(s);
    ERR_clear_error();
    SSL_free(s);
    close(fd);
}

/* The server's context: the certificate, the session cache, tickets on. */
static SSL_CTX *server_ctx(int version, const char *certfile, const char *keyfile)
{
    SSL_CTX *ctx = new_ctx(1, version);
    if (ctx == NULL || SSL_CTX_use_certificate_file(ctx, certfile, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"benchc", 6);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    return ctx;
}

static int run_server(int version, const char *certfile, const char *keyfile)
{
    SSL_CTX *ctx = server_ctx(version, certfile, keyfile);
    struct sockaddr_in addr;
    socklen_t alen = sizeof addr;
    struct stats st;
    char line[256];
    int ln;
    if (ctx == NULL) {
        reply_error("server context");
        return 1;
    }
    ln = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ln < 0 || bind(ln, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ln, 128) != 0 ||
        getsockname(ln, (struct sockaddr *)&addr, &alen) != 0) {
        reply_error("listen");
        return 1;
    }
    printf("port %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    memset(&st, 0, sizeof st);
    for (;;) {
        struct pollfd p[2];
        p[0].fd = 0;
        p[0].events = POLLIN;
        p[1].fd = ln;
        p[1].events = POLLIN;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (p[1].revents & POLLIN) {
            int fd = accept(ln, NULL, NULL);
            if (fd >= 0)
                serve_one(ctx, fd, &st);
            continue; /* connections first; commands between them */
        }
        if (p[0].revents) {
            if (fgets(line, sizeof line, stdin) == NULL)
                return 0; /* the benchmark is done */
            if (strncmp(line, "stats", 5) == 0) {
                print_stats(&st, -1);
                memset(&st, 0, sizeof st);
            } else {
                printf("error unknown command\n");
                fflush(stdout);
            }
        }
    }
}

struct client {
    SSL_CTX *tickets, *notickets, *ctx;
    struct sockaddr_in addr;
    SSL_SESSION *held;
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The client's check of the server after the handshake: the chain
 * verified, the certificate for "localhost". 0 when it passes. */
static int check_peer(SSL *s)
{
    X509 *peer;
    int ok;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    peer = SSL_get1_peer_certificate(s);
#else
    peer = SSL_get_peer_certificate(s);
#endif
    ok = SSL_get_verify_result(s) == X509_V_OK && peer != NULL && X509_check_host(peer, "localhost", 9, 0, NULL) == 1;
    X509_free(peer);
    return ok ? 0 : -1;
}

/* The client's context: the CA to verify the server with; with tickets
 * off, resumption is by session ID (the client offers no ticket). */
static SSL_CTX *client_ctx(int version, const char *cafile, int tickets)
{
    SSL_CTX *ctx = new_ctx(0, version);
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (!tickets)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return ctx;
}

/* One connection of the client on fd, a connected blocking socket (closed
 * here): the handshake, the checks, close_notify both ways. 0 done, -1
 * failed (what failed in err). With keep set, the session is held
 * afterwards. */
static int client_conn(struct client *c, int fd, struct stats *st, int keep, char *err, size_t errlen)
{
    int ok = -1;
    SSL *s = NULL;
    timeouts(fd);
    s = SSL_new(c->ctx);
    if (s == NULL || SSL_set_fd(s, fd) != 1 || SSL_set_tlsext_host_name(s, "localhost") != 1 ||
        (c->held != NULL && SSL_set_session(s, c->held) != 1)) {
        error_text("SSL_new", err, errlen);
        goto out;
    }
    SSL_set_read_ahead(s, 1);
    if (SSL_connect(s) != 1) {
        error_text("handshake", err, errlen);
        goto out;
    }
    if (check_peer(s) != 0) {
        snprintf(err, errlen, "certificate not trusted or not for localhost");
        goto out;
    }
    record(st, s, 0);
    SSL_shutdown(s);
    drain(s); /* the server's close_notify; TLS 1.3 tickets on the way */
    if (keep) {
        if (c->held != NULL)
            SSL_SESSION_free(c->held);
        c->held = SSL_get1_session(s);
    }
    ok = 0;
out:
    ERR_clear_error();
    SSL_free(s);
    close(fd);
    return ok;
}

/* One connection of the client, its own TCP connect first; 0 done, -1
 * failed (reply sent). */
static int connect_one(struct client *c, struct stats *st, int keep)
{
    char err[320];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&c->addr, sizeof c->addr) != 0) {
        reply_error("connect");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (client_conn(c, fd, st, keep, err, sizeof err) != 0) {
        printf("error %s\n", err);
        fflush(stdout);
        return -1;
    }
    return 0;
}

static int has_ticket(SSL_SESSION *s)
{
#if OPENSSL_VERSION_NUMBER >= 0x10101000L
    return SSL_SESSION_has_ticket(s);
#else
    return s->tlsext_tick != NULL;
#endif
}

static int run_client(int version, const char *cafile)
{
    struct client c;
    char line[256];
    memset(&c, 0, sizeof c);
    c.tickets = client_ctx(version, cafile, 1);
    c.notickets = client_ctx(version, cafile, 0);
    if (c.tickets == NULL || c.notickets == NULL) {
        reply_error("client context");
        return 1;
    }
    c.ctx = c.tickets;
    c.addr.sin_family = AF_INET;
    c.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof line, stdin) != NULL) {
        int port, count;
        double secs;
        char mode[16];
        struct stats st;
        memset(&st, 0, sizeof st);
        if (sscanf(line, "seed %d %15s", &port, mode) == 2) {
            c.addr.sin_port = htons((unsigned short)port);
            c.ctx = strcmp(mode, "id") == 0 ? c.notickets : c.tickets;
            if (c.held != NULL)
                SSL_SESSION_free(c.held);
            c.held = NULL;
            if (strcmp(mode, "full") == 0) {
                printf("ok\n");
                fflush(stdout);
                continue;
            }
            if (connect_one(&c, &st, 1) != 0)
                continue;
            if (c.held == NULL || has_ticket(c.held) != (strcmp(mode, "ticket") == 0)) {
                printf("error the held session is not one for resumption by %s\n", mode);
                fflush(stdout);
                continue;
            }
            printf("ok\n");
            fflush(stdout);
        } else if (sscanf(line, "run %d %lf", &count, &secs) == 2) {
            long long start = now_ns(), stop = start + (long long)(secs * 1e9);
            int failed = 0;
            while ((count <= 0 || st.n < count) && now_ns() < stop) {
                if (connect_one(&c, &st, 0) != 0) {
                    failed = 1;
                    break;
                }
            }
            if (!failed)
                print_stats(&st, now_ns() - start);
        } else {
            printf("error unknown command\n");
            fflush(stdout);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int version;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdin, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "version") == 0) {
#if OPENSSL_VERSION_NUMBER >= 0x10100000L
        printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
#else
        printf("%s\n", SSLeay_version(SSLEAY_VERSION));
#endif
        return 0;
    }
#if OPENSSL_VERSION_NUMBER < 0x10100000L
    SSL_library_init();
    SSL_load_error_strings();
#endif
    if (argc == 5 && strcmp(argv[1], "server") == 0 && (version = version_arg(argv[2])) != 0)
        return run_server(version, argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "client") == 0 && (version = version_arg(argv[2])) != 0)
        return run_client(version, argv[3]);
    fprintf(stderr, "usage: benchc server 12|13 CERT KEY | client 12|13 CAFILE | version\n");
    return 2;
}
