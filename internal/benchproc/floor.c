/* The C programs' code (csrc/benchc.c), its main renamed, reused by the
 * floors so that they configure, serve and connect exactly as it does. */
#define main benchc_main
#include "csrc/benchc.c"
#undef main

#include <fcntl.h>

#include "floor.h"

SSL_CTX *floor_ctx(int version, const char *certfile, const char *keyfile)
{
    return server_ctx(version, certfile, keyfile);
}

SSL *floor_new(SSL_CTX *ctx, int fd)
{
    SSL *s = SSL_new(ctx);
    if (s == NULL)
        return NULL;
    if (SSL_set_fd(s, fd) != 1) {
        SSL_free(s);
        return NULL;
    }
    SSL_set_read_ahead(s, 1);
    SSL_set_accept_state(s);
    return s;
}

/* What a non-blocking call that returned rv waits for: 1 to read, 2 to
 * write, -1 nothing (it failed). */
static int wants(SSL *s, int rv)
{
    switch (SSL_get_error(s, rv)) {
    case SSL_ERROR_WANT_READ:
        return 1;
    case SSL_ERROR_WANT_WRITE:
        return 2;
    }
    return -1;
}

int floor_step(SSL *s, int op)
{
    char buf[512];
    int rv, w;
    switch (op) {
    case 0:
        if ((rv = SSL_do_handshake(s)) == 1)
            return 0;
        break;
    case 1:
        while ((rv = SSL_read(s, buf, sizeof buf)) > 0) {
        }
        if (SSL_get_error(s, rv) == SSL_ERROR_ZERO_RETURN)
            return 0;
        break;
    default:
        if ((rv = SSL_shutdown(s)) >= 0)
            return 0;
        break;
    }
    if ((w = wants(s, rv)) < 0)
        ERR_clear_error();
    return w;
}

/* Sets fd blocking, as the C programs' sockets are. */
static int set_blocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ? -1 : 0;
}

void floor_serve_blocking(SSL_CTX *ctx, int fd)
{
    struct stats st;
    if (set_blocking(fd) != 0) {
        close(fd);
        return;
    }
    memset(&st, 0, sizeof st);
    serve_one(ctx, fd, &st);
}

struct floor_client {
    struct client c;
    struct stats st;
    char err[320];
};

struct floor_client *floor_client(int version, const char *cafile)
{
    struct floor_client *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->c.tickets = client_ctx(version, cafile, 1);
    f->c.notickets = client_ctx(version, cafile, 0);
    if (f->c.tickets == NULL || f->c.notickets == NULL) {
        ERR_clear_error();
        SSL_CTX_free(f->c.tickets);
        SSL_CTX_free(f->c.notickets);
        free(f);
        return NULL;
    }
    f->c.ctx = f->c.tickets;
    return f;
}

void floor_client_mode(struct floor_client *f, int tickets)
{
    f->c.ctx = tickets ? f->c.tickets : f->c.notickets;
    if (f->c.held != NULL)
        SSL_SESSION_free(f->c.held);
    f->c.held = NULL;
}

int floor_client_held(struct floor_client *f, int ticket)
{
    return f->c.held != NULL && (has_ticket(f->c.held) != 0) == (ticket != 0);
}

SSL *floor_client_ssl(struct floor_client *f, int fd)
{
    SSL *s = SSL_new(f->c.ctx);
    if (s == NULL || SSL_set_fd(s, fd) != 1 || SSL_set_tlsext_host_name(s, "localhost") != 1 ||
        (f->c.held != NULL && SSL_set_session(s, f->c.held) != 1)) {
        error_text("SSL_new", f->err, sizeof f->err);
        SSL_free(s);
        return NULL;
    }
    SSL_set_read_ahead(s, 1);
    SSL_set_connect_state(s);
    return s;
}

int floor_client_step(struct floor_client *f, SSL *s, int op, int keep)
{
    char buf[512];
    int rv, w;
    const char *what = "handshake";
    switch (op) {
    case 0:
        if ((rv = SSL_do_handshake(s)) == 1) {
            if (check_peer(s) != 0) {
                snprintf(f->err, sizeof f->err, "certificate not trusted or not for localhost");
                ERR_clear_error();
                return -1;
            }
            record(&f->st, s, 0);
            return SSL_session_reused(s) ? 3 : 0;
        }
        break;
    case 1:
        if ((rv = SSL_shutdown(s)) >= 0)
            return 0;
        what = "close_notify";
        break;
    default:
        while ((rv = SSL_read(s, buf, sizeof buf)) > 0) {
        }
        if (SSL_get_error(s, rv) == SSL_ERROR_ZERO_RETURN) {
            if (keep) {
                if (f->c.held != NULL)
                    SSL_SESSION_free(f->c.held);
                f->c.held = SSL_get1_session(s);
            }
            return 0;
        }
        what = "reading to close_notify";
        break;
    }
    if ((w = wants(s, rv)) < 0) {
        int e = SSL_get_error(s, rv);
        char reason[256];
        error_text(what, reason, sizeof reason);
        snprintf(f->err, sizeof f->err, "%s (SSL_get_error %d)", reason, e);
    }
    return w;
}

int floor_client_blocking(struct floor_client *f, int fd, int keep)
{
    int resumed = f->st.resumed;
    if (set_blocking(fd) != 0) {
        snprintf(f->err, sizeof f->err, "fcntl: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (client_conn(&f->c, fd, &f->st, keep, f->err, sizeof f->err) != 0)
        return -1;
    return f->st.resumed > resumed ? 1 : 0;
}

const char *floor_client_error(struct floor_client *f)
{
    return f->err;
}

/* Writes t as "NAME:COUNT,..." ("-" when empty) at buf[*at]. */
static void tally_text(const struct tally *t, char *buf, int len, int *at)
{
    int i;
    for (i = 0; i < NAMES && t->name[i][0] != '\0' && *at < len; i++)
        *at += snprintf(buf + *at, len - *at, "%s%s:%d", i ? "," : "", t->name[i], t->count[i]);
    if (i == 0 && *at < len)
        *at += snprintf(buf + *at, len - *at, "-");
}

void floor_client_tally(struct floor_client *f, char *buf, int len)
{
    int at = snprintf(buf, len, "suites=");
    tally_text(&f->st.suites, buf, len, &at);
    if (at < len)
        at += snprintf(buf + at, len - at, " groups=");
    tally_text(&f->st.groups, buf, len, &at);
    memset(&f->st, 0, sizeof f->st);
}
