/* Minimal blocking HTTP/1.1 client for order-intake's tests and benchmark. */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define HC_TIMEOUT_S 60

struct hc_conn {
    int fd;
    char buf[HC_HEADERS_MAX * 2];
    size_t len; /* bytes buffered beyond the last response */
};

struct hc_conn *hc_connect(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return NULL;
    }
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, host != NULL ? host : "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {.tv_sec = HC_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct hc_conn *c = calloc(1, sizeof(*c));
    c->fd = fd;
    return c;
}

void hc_close(struct hc_conn *c)
{
    if (c != NULL) {
        close(c->fd);
        free(c);
    }
}

static int hc_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more into c->buf; returns bytes read, 0 on EOF, -1 on error. */
static ssize_t hc_fill(struct hc_conn *c)
{
    if (c->len >= sizeof(c->buf)) {
        return -1;
    }
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r > 0) {
            c->len += (size_t)r;
        }
        return r;
    }
}

static int hc_read_response(struct hc_conn *c, int head_only, struct hc_response *out)
{
    memset(out, 0, sizeof(*out));
    char *end = NULL;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
        if (hc_fill(c) <= 0) {
            return -1;
        }
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (head_len >= sizeof(out->head)) {
        return -1;
    }
    memcpy(out->head, c->buf, head_len);
    out->head[head_len] = '\0';
    if (sscanf(out->head, "HTTP/1.%*d %d", &out->status) != 1) {
        return -1;
    }
    char v[64];
    long long clen = -1;
    if (hc_header(out, "Content-Length", v, sizeof(v)) != NULL) {
        clen = atoll(v);
    }
    if (hc_header(out, "Connection", v, sizeof(v)) != NULL && strcasecmp(v, "close") == 0) {
        out->closed = 1;
    }
    if (hc_header(out, "Transfer-Encoding", v, sizeof(v)) != NULL) {
        return -1; /* the service always sends sized bodies */
    }
    memmove(c->buf, c->buf + head_len, c->len - head_len);
    c->len -= head_len;
    if (head_only || out->status == 204 || out->status == 304) {
        clen = 0;
    }
    size_t want = clen >= 0 ? (size_t)clen : HC_BODY_MAX;
    if (want > HC_BODY_MAX) {
        return -1;
    }
    out->body = malloc(want + 1);
    size_t got = 0;
    while (got < want) {
        if (c->len > 0) {
            size_t take = c->len < want - got ? c->len : want - got;
            memcpy(out->body + got, c->buf, take);
            memmove(c->buf, c->buf + take, c->len - take);
            c->len -= take;
            got += take;
            continue;
        }
        ssize_t r = hc_fill(c);
        if (r == 0 && clen < 0) {
            out->closed = 1;
            break;
        }
        if (r <= 0) {
            free(out->body);
            out->body = NULL;
            return -1;
        }
    }
    out->body[got] = '\0';
    out->body_len = got;
    return 0;
}

int hc_request(struct hc_conn *c, const char *method, const char *path, const char *const *headers,
               const char *body, size_t body_len, struct hc_response *out)
{
    size_t cap = strlen(method) + strlen(path) + 128;
    for (int i = 0; headers != NULL && headers[i] != NULL; i++) {
        cap += strlen(headers[i]) + 2;
    }
    char *head = malloc(cap);
    int n = snprintf(head, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, path);
    for (int i = 0; headers != NULL && headers[i] != NULL; i++) {
        n += snprintf(head + n, cap - (size_t)n, "%s\r\n", headers[i]);
    }
    if (body != NULL) {
        n += snprintf(head + n, cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
    }
    n += snprintf(head + n, cap - (size_t)n, "\r\n");
    int rc = hc_send_all(c->fd, head, (size_t)n);
    free(head);
    if (rc != 0 || (body != NULL && hc_send_all(c->fd, body, body_len) != 0)) {
        return -1;
    }
    return hc_read_response(c, strcmp(method, "HEAD") == 0, out);
}

int hc_raw(struct hc_conn *c, const char *raw, size_t len, struct hc_response *out)
{
    if (hc_send_all(c->fd, raw, len) != 0) {
        return -1;
    }
    return hc_read_response(c, 0, out);
}

int hc_once(const char *host, int port, const char *method, const char *path,
            const char *const *headers, const char *body, struct hc_response *out)
{
    struct hc_conn *c = hc_connect(host, port);
    if (c == NULL) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    int r = hc_request(c, method, path, headers, body, body != NULL ? strlen(body) : 0, out);
    hc_close(c);
    return r;
}

const char *hc_header(const struct hc_response *r, const char *name, char *buf, size_t size)
{
    size_t nlen = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p != NULL && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ') {
                v++;
            }
            const char *e = strstr(v, "\r\n");
            size_t len = e != NULL ? (size_t)(e - v) : strlen(v);
            if (len >= size) {
                len = size - 1;
            }
            memcpy(buf, v, len);
            buf[len] = '\0';
            return buf;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

void hc_response_free(struct hc_response *r)
{
    free(r->body);
    r->body = NULL;
}
