/* Minimal blocking HTTP/1.1 client for order-intake's tests and benchmark (keep-alive, sized
 * bodies). */
#ifndef INTAKE_TEST_CLIENT_H
#define INTAKE_TEST_CLIENT_H

#include <stddef.h>

#define HC_HEADERS_MAX 8192
#define HC_BODY_MAX    (4 * 1024 * 1024)

struct hc_response {
    int status;
    char head[HC_HEADERS_MAX]; /* status line and headers, NUL-terminated */
    char *body;                /* NUL-terminated; owned, hc_response_free() */
    size_t body_len;
    int closed; /* the server closed the connection after this response */
};

struct hc_conn;

/* Connects to 127.0.0.1:port (or host). NULL when refused. */
struct hc_conn *hc_connect(const char *host, int port);
void hc_close(struct hc_conn *c);

/*
 * Sends one request and reads the response. headers: NULL-terminated list of "Name: value".
 * body may be NULL. Returns 0, or -1 on an I/O error or a malformed response (the connection is
 * then unusable). After a response with closed set, reconnect.
 */
int hc_request(struct hc_conn *c, const char *method, const char *path, const char *const *headers,
               const char *body, size_t body_len, struct hc_response *out);

/* Sends raw bytes and reads one response (for malformed-request tests). */
int hc_raw(struct hc_conn *c, const char *raw, size_t len, struct hc_response *out);

/* One request on a fresh connection. */
int hc_once(const char *host, int port, const char *method, const char *path,
            const char *const *headers, const char *body, struct hc_response *out);

/* Value of a response header (case-insensitive name) copied into buf; NULL when absent. */
const char *hc_header(const struct hc_response *r, const char *name, char *buf, size_t size);

void hc_response_free(struct hc_response *r);

#endif
