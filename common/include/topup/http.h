/*
 * Thin HTTP/1.1 server over libmicrohttpd: an internal epoll thread pool, bounded bodies (413),
 * headers (431) and connections, JSON responses via jansson, deferred responses from any thread
 * (the connection is suspended meanwhile), a small router, and a draining shutdown.
 */
#ifndef TOPUP_HTTP_H
#define TOPUP_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "topup/error.h"

#define HTTP_BODY_MAX_DEFAULT   (16 * 1024)
#define HTTP_HEADER_MAX_DEFAULT (16 * 1024)
/* A chunked body above the limit is read and discarded up to this much, then the connection is
 * closed without an answer; a Content-Length above the limit is answered 413 at once. */
#define HTTP_DISCARD_MAX                    (1024 * 1024)
#define HTTP_RESPONSE_HEADERS_MAX           8
#define HTTP_PER_IP_CONNECTIONS_MAX_DEFAULT 64
#define HTTP_HEADER_TIMEOUT_S_DEFAULT       10
#define HTTP_BODY_TIMEOUT_S_DEFAULT         30

struct http_server;
struct http_request;

/*
 * Called once per request, on an HTTP thread, when the whole body has arrived (bodies over the
 * limit are answered 413 body_too_large by the server without calling it; so are requests whose
 * framing is ambiguous, answered 400 bad_framing and the connection closed: Content-Length
 * headers that differ or hold a list, Content-Length with Transfer-Encoding, several
 * Transfer-Encoding headers; a Transfer-Encoding other than chunked is 501). The handler must
 * answer with exactly one http_respond*() call, either before it returns or later from any thread;
 * until then the connection is suspended. After that call req must not be touched.
 */
typedef void http_handler_fn(void *ctx, struct http_request *req);

struct http_server_config {
    const char *addr;           /* IPv4 or IPv6 literal to bind, e.g. "127.0.0.1" */
    int port;                   /* 0: any free port; http_server_port() tells which */
    int threads;                /* HTTP threads, each with its own epoll set */
    size_t body_max_bytes;      /* 0: HTTP_BODY_MAX_DEFAULT */
    size_t header_max_bytes;    /* per-connection memory for request line and headers; 0: default */
    int connections_max;        /* further connections are closed at accept; 0: 1024 */
    int per_ip_connections_max; /* connections open at once from one client address; 0: 64 */
    int idle_timeout_s;         /* a connection silent this long is closed; 0: 30 */
    int header_timeout_s;       /* request line and headers must be complete this long after the
                                 * connection opened (or its previous answer); else closed; 0: 10 */
    int body_timeout_s;         /* the body must be complete this long after the headers; else the
                                 * connection is closed without an answer; 0: 30 */
};

/*
 * Starts listening and serving. handler and ctx are borrowed and must outlive the server.
 * Returns NULL and fills err when the address cannot be bound. Caller owns the result.
 */
struct http_server *http_server_new(const struct http_server_config *cfg, http_handler_fn *handler,
                                    void *ctx, struct tp_error *err);

/* The port actually bound. */
int http_server_port(const struct http_server *s);

/* Requests received and not yet completely answered. */
int64_t http_server_inflight(const struct http_server *s);

/* Stops accepting connections (closes the listening socket); open connections keep working. */
void http_server_quiesce(struct http_server *s);

/*
 * Quiesces, waits up to drain_timeout_ms for in-flight requests to be answered, then stops the
 * threads and frees. Every deferred request must have been answered before (the caller stops its
 * workers first). NULL is fine.
 */
void http_server_free(struct http_server *s, int drain_timeout_ms);

/* ---- the request (valid until its response call) ---- */

const char *http_request_method(const struct http_request *r); /* "GET", "POST", ... */
const char *http_request_path(const struct http_request *r);   /* decoded path, without query */
/* The body (NUL-terminated for convenience; may contain NUL bytes); len may be NULL. */
const char *http_request_body(const struct http_request *r, size_t *len);

/*
 * Header and query-argument values (NULL when absent). Only inside the handler call: copy what a
 * deferred worker needs before handing req over.
 */
const char *http_request_header(const struct http_request *r, const char *name);
const char *http_request_query(const struct http_request *r, const char *name);

/*
 * The first query parameter of r whose name is not in known (NULL-terminated), or that is given
 * more than once (*duplicate set then); NULL when every parameter is known and given once. The
 * name returned is r's, valid like a header value.
 */
const char *http_request_query_check(const struct http_request *r, const char *const *known,
                                     bool *duplicate);

/* Adds a header to the coming response (copied; at most HTTP_RESPONSE_HEADERS_MAX). */
void http_response_header(struct http_request *r, const char *name, const char *value);

/* ---- responses: exactly one per request, from any thread ---- */

/* body is copied. */
void http_respond(struct http_request *r, unsigned status, const char *content_type,
                  const void *body, size_t len);

/* Serialises body compactly (UTF-8 kept as is) and steals the reference. Adds no-store caching. */
void http_respond_json(struct http_request *r, unsigned status, json_t *body);

/* {"error":{"code":code,"message":message,"field":field or null}}: a new reference. */
json_t *http_error_body(const char *code, const char *message, const char *field);

/* http_respond_json(r, status, http_error_body(code, message, field)). */
void http_respond_error(struct http_request *r, unsigned status, const char *code,
                        const char *message, const char *field);

/* Sends size bytes of the open file fd (ownership of fd passes to the server). */
void http_respond_fd(struct http_request *r, unsigned status, const char *content_type, int fd,
                     uint64_t size);

/* ---- routing ---- */

#define HTTP_ROUTE_PARAMS_MAX 4
#define HTTP_ROUTE_PARAM_MAX  128 /* bytes of one path parameter, NUL included */

struct http_route_match {
    int n;
    char params[HTTP_ROUTE_PARAMS_MAX][HTTP_ROUTE_PARAM_MAX];
};

typedef void http_route_fn(void *ctx, struct http_request *req, const struct http_route_match *m);

/* One route: method ("GET" also serves HEAD) and a pattern whose "{name}" segments each match one
 * non-empty path segment, e.g. "/v1/topup-orders/{code}/cancel". Tables end with {0}. */
struct http_route {
    const char *method;
    const char *pattern;
    http_route_fn *fn;
};

enum http_route_result {
    HTTP_ROUTE_OK,
    HTTP_ROUTE_NOT_FOUND,          /* no pattern matches the path */
    HTTP_ROUTE_METHOD_NOT_ALLOWED, /* a pattern matches, not with this method: allow lists them */
};

/*
 * Finds the route for method and path. On HTTP_ROUTE_OK *out and m are filled. On
 * HTTP_ROUTE_METHOD_NOT_ALLOWED allow (allow_size bytes) receives e.g. "GET, POST".
 */
enum http_route_result http_route_find(const struct http_route *routes, const char *method,
                                       const char *path, const struct http_route **out,
                                       struct http_route_match *m, char *allow, size_t allow_size);

#endif
