/* The C server's code (csrc/benchc.c), its main renamed, reused by the
 * floors so that they configure and serve exactly as it does. */
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

int floor_step(SSL *s, int op)
{
    char buf[512];
    int rv;
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
    switch (SSL_get_error(s, rv)) {
    case SSL_ERROR_WANT_READ:
        return 1;
    case SSL_ERROR_WANT_WRITE:
        return 2;
    }
    ERR_clear_error();
    return -1;
}

void floor_serve_blocking(SSL_CTX *ctx, int fd)
{
    struct stats st;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        close(fd);
        return;
    }
    memset(&st, 0, sizeof st);
    serve_one(ctx, fd, &st);
}
