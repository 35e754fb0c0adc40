/* A tiny HTTP/1.1 client for the tests: one request per connection, JSON bodies, chunked replies.
 */
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Largest reply the tests accept (a page of 100 orders is about 80 KiB). */
#define TL_HTTP_REPLY_MAX (8u << 20)
#define TL_HTTP_HEAD_MAX  16384

static void tl_http_err(struct tl_http_resp *r, const char *what)
{
    snprintf(r->error, sizeof(r->error), "%s: %s", what, errno != 0 ? strerror(errno) : "closed");
    r->status = 0;
}

static bool tl_http_send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Decodes a chunked body in place; returns its length, or -1 when malformed or incomplete. */
static long tl_http_unchunk(char *body, size_t len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *end = NULL;
        if (in >= len) {
            return -1;
        }
        unsigned long sz = strtoul(body + in, &end, 16);
        char *crlf = strstr(end, "\r\n");
        if (end == body + in || crlf == NULL) {
            return -1;
        }
        in = (size_t)(crlf - body) + 2;
        if (sz == 0) {
            return (long)out;
        }
        if (in + sz + 2 > len) {
            return -1;
        }
        memmove(body + out, body + in, sz);
        out += sz;
        in += sz + 2;
    }
}

static int tl_http_parse(char *buf, size_t n, struct tl_http_resp *r)
{
    char *sep = strstr(buf, "\r\n\r\n");
    if (sep == NULL || strncmp(buf, "HTTP/1.", 7) != 0) {
        snprintf(r->error, sizeof(r->error), "malformed reply (%zu bytes)", n);
        return 0;
    }
    *sep = '\0';
    int status = atoi(buf + 9);
    char *body = sep + 4;
    size_t blen = n - (size_t)(body - buf);
    bool chunked = false;
    long clen = -1;
    for (char *h = strstr(buf, "\r\n"); h != NULL; h = strstr(h + 2, "\r\n")) {
        if (strncasecmp(h + 2, "transfer-encoding:", 18) == 0 && strstr(h + 2, "chunked") != NULL) {
            chunked = true;
        } else if (strncasecmp(h + 2, "content-length:", 15) == 0) {
            clen = atol(h + 17);
        }
    }
    if (chunked) {
        long l = tl_http_unchunk(body, blen);
        if (l < 0) {
            snprintf(r->error, sizeof(r->error), "malformed chunked body");
            return 0;
        }
        blen = (size_t)l;
    } else if (clen >= 0) {
        if ((size_t)clen > blen) {
            snprintf(r->error, sizeof(r->error), "body cut at %zu of %ld bytes", blen, clen);
            return 0;
        }
        blen = (size_t)clen;
    }
    r->body = malloc(blen + 1);
    TL_CHECK(r->body != NULL);
    memcpy(r->body, body, blen);
    r->body[blen] = '\0';
    r->len = blen;
    r->json = blen > 0 ? json_loadb(r->body, blen, 0, NULL) : NULL;
    r->status = status;
    return status;
}

int tl_http(int port, const char *method, const char *path, const char *token, const char *idem_key,
            const char *body, struct tl_http_resp *r, int timeout_ms)
{
    memset(r, 0, sizeof(*r));
    errno = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    TL_CHECK(fd >= 0);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char *buf = NULL;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        tl_http_err(r, "connect");
        goto out;
    }
    size_t blen = body != NULL ? strlen(body) : 0;
    char head[TL_HTTP_HEAD_MAX];
    int hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                      "Accept: application/json\r\n",
                      method, path, port);
    if (token != NULL) {
        hl += snprintf(head + hl, sizeof(head) - (size_t)hl, "Authorization: Bearer %s\r\n", token);
    }
    if (idem_key != NULL) {
        hl += snprintf(head + hl, sizeof(head) - (size_t)hl, "Idempotency-Key: %s\r\n", idem_key);
    }
    if (body != NULL) {
        hl += snprintf(head + hl, sizeof(head) - (size_t)hl,
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    } else if (strcmp(method, "POST") == 0) {
        hl += snprintf(head + hl, sizeof(head) - (size_t)hl, "Content-Length: 0\r\n");
    }
    hl += snprintf(head + hl, sizeof(head) - (size_t)hl, "\r\n");
    TL_CHECK((size_t)hl < sizeof(head));
    if (!tl_http_send_all(fd, head, (size_t)hl) ||
        (blen > 0 && !tl_http_send_all(fd, body, blen))) {
        tl_http_err(r, "send");
        goto out;
    }
    size_t cap = 16384, n = 0;
    buf = malloc(cap);
    TL_CHECK(buf != NULL);
    for (;;) {
        if (cap - n < 4096) {
            if (cap >= TL_HTTP_REPLY_MAX) {
                snprintf(r->error, sizeof(r->error), "reply larger than %u bytes",
                         TL_HTTP_REPLY_MAX);
                goto out;
            }
            cap *= 2;
            buf = realloc(buf, cap);
            TL_CHECK(buf != NULL);
        }
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            tl_http_err(r, "recv");
            goto out;
        }
        if (got == 0) {
            break;
        }
        n += (size_t)got;
    }
    buf[n] = '\0';
    tl_http_parse(buf, n, r);
out:
    free(buf);
    close(fd);
    return r->status;
}

void tl_http_free(struct tl_http_resp *r)
{
    free(r->body);
    if (r->json != NULL) {
        json_decref(r->json);
    }
    memset(r, 0, sizeof(*r));
}

const char *tl_json_str(const json_t *obj, const char *key)
{
    const json_t *v = obj != NULL ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : "";
}
