/* HTTP server over libmicrohttpd: bounded requests, deferred answers, routing, draining stop. */
#include "topup/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "topup/log.h"
#include "topup/mem.h"

#define HTTP_CONNECTIONS_MAX_DEFAULT 1024
#define HTTP_IDLE_TIMEOUT_S_DEFAULT  30
#define HTTP_HEADER_NAME_MAX         64
#define HTTP_HEADER_VALUE_MAX        256
/* How often the deadlines are checked: a slow client is closed at most this late. */
#define HTTP_DEADLINE_TICK_MS 250

/* Where a connection's current request is, for the deadlines. */
enum http_conn_phase {
    HTTP_CONN_HEADERS, /* waiting for a complete request line and headers */
    HTTP_CONN_BODY,    /* headers in, the body arriving */
    HTTP_CONN_BUSY,    /* the request is whole: handled or answered, no deadline of the client's */
};

/*
 * One open connection, for the header and body deadlines: MHD's own timeout is an idle timeout,
 * which a client sending one byte every few seconds never reaches. Allocated when MHD accepts
 * the connection and freed when MHD closes it (before it closes the socket), both under
 * http_server.conns_mu, so the deadline thread never touches a socket MHD has closed.
 */
struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    enum http_conn_phase phase;
    int64_t since_ms; /* when the phase began */
};

struct http_server {
    struct MHD_Daemon *daemon;
    http_handler_fn *handler;
    void *ctx;
    size_t body_max;
    int port;
    atomic_int_least64_t inflight;
    atomic_bool quiesced;

    int header_timeout_ms;
    int body_timeout_ms;
    pthread_mutex_t conns_mu; /* guards conns, deadline_stop */
    pthread_cond_t conns_cv;
    struct http_conn *conns;
    bool deadline_stop;
    pthread_t deadline_thread;
    bool deadline_started;
};

enum http_req_state {
    HTTP_REQ_RECEIVING, /* headers in, body arriving */
    HTTP_REQ_HANDLING,  /* inside the handler call */
    HTTP_REQ_SUSPENDED, /* handler returned without answering: connection suspended */
    HTTP_REQ_ANSWERED,  /* response built, not yet queued */
    HTTP_REQ_QUEUED,    /* response handed to MHD */
};

struct http_header_pair {
    char name[HTTP_HEADER_NAME_MAX];
    char value[HTTP_HEADER_VALUE_MAX];
};

struct http_request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* owned by MHD, valid for the request */
    const char *path;
    char *body;
    size_t body_len;
    size_t body_cap;
    size_t discarded;
    bool too_large;
    pthread_mutex_t mu;
    enum http_req_state state;
    struct MHD_Response *response;
    unsigned status;
    int nheaders;
    struct http_header_pair headers[HTTP_RESPONSE_HEADERS_MAX];
    struct timespec started;
};

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        buf[--n] = '\0';
    }
    log_warn("http server library reported a problem", LF_S("detail", buf));
}

static int64_t http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* MHD_OPTION_NOTIFY_CONNECTION: tracks each connection from accept to close. */
static void http_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                             enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct http_conn *c = mem_calloc(1, sizeof(*c));
        c->fd = info != NULL ? info->connect_fd : -1;
        c->phase = HTTP_CONN_HEADERS;
        c->since_ms = http_now_ms();
        pthread_mutex_lock(&s->conns_mu);
        c->next = s->conns;
        if (s->conns != NULL) {
            s->conns->prev = c;
        }
        s->conns = c;
        pthread_mutex_unlock(&s->conns_mu);
        *socket_context = c;
        return;
    }
    struct http_conn *c = *socket_context;
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&s->conns_mu);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    pthread_mutex_unlock(&s->conns_mu);
    free(c);
    *socket_context = NULL;
}

/* The connection's request moves to phase (its deadline, if any, counts from now). */
static void http_conn_mark(struct http_server *s, struct MHD_Connection *conn,
                           enum http_conn_phase phase)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct http_conn *c = info != NULL ? info->socket_context : NULL;
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&s->conns_mu);
    c->phase = phase;
    c->since_ms = http_now_ms();
    pthread_mutex_unlock(&s->conns_mu);
}

/* True when c's current phase has outlived its deadline. Called with conns_mu held. */
static bool http_conn_late(const struct http_server *s, const struct http_conn *c, int64_t now)
{
    switch (c->phase) {
    case HTTP_CONN_HEADERS:
        return now - c->since_ms >= s->header_timeout_ms;
    case HTTP_CONN_BODY:
        return now - c->since_ms >= s->body_timeout_ms;
    case HTTP_CONN_BUSY:
        break;
    }
    return false;
}

/*
 * Closes connections whose headers or body are late. shutdown(2), not close(2): MHD sees the end
 * of the stream on its own thread and frees the connection as for any client that went away.
 */
static void *http_deadline_main(void *arg)
{
    struct http_server *s = arg;
    pthread_mutex_lock(&s->conns_mu);
    while (!s->deadline_stop) {
        int64_t now = http_now_ms();
        int late_headers = 0, late_bodies = 0;
        for (struct http_conn *c = s->conns; c != NULL; c = c->next) {
            if (c->fd >= 0 && http_conn_late(s, c, now)) {
                (void)shutdown(c->fd, SHUT_RDWR);
                late_headers += c->phase == HTTP_CONN_HEADERS;
                late_bodies += c->phase == HTTP_CONN_BODY;
                c->phase = HTTP_CONN_BUSY;
            }
        }
        if (late_headers + late_bodies > 0) {
            log_info("http connections closed: request not complete in time",
                     LF_I("late_headers", late_headers), LF_I("late_bodies", late_bodies),
                     LF_I("header_timeout_ms", s->header_timeout_ms),
                     LF_I("body_timeout_ms", s->body_timeout_ms));
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += HTTP_DEADLINE_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->conns_cv, &s->conns_mu, &until);
    }
    pthread_mutex_unlock(&s->conns_mu);
    return NULL;
}

static void http_request_free(struct http_request *r)
{
    if (r->response != NULL) {
        MHD_destroy_response(r->response);
    }
    pthread_mutex_destroy(&r->mu);
    free(r->body);
    free(r);
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_request *r = *con_cls;
    if (r == NULL) {
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - r->started.tv_sec) * 1000000 +
                 (now.tv_nsec - r->started.tv_nsec) / 1000;
    log_debug("http request completed", LF_S("method", r->method), LF_S("path", r->path),
              LF_I("status", r->status), LF_I("duration_us", us),
              LF_I("ok", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK));
    http_request_free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
    /* A kept-alive connection now waits for its next request's headers. */
    http_conn_mark(s, conn, HTTP_CONN_HEADERS);
}

/* Queues r's response on its connection; called on the connection's thread. */
static enum MHD_Result http_queue(struct http_request *r)
{
    r->state = HTTP_REQ_QUEUED;
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, r->response);
    MHD_destroy_response(r->response);
    r->response = NULL;
    return ret;
}

/* Builds the MHD response with the pending headers and hands it over (any thread). */
static void http_answer(struct http_request *r, unsigned status, struct MHD_Response *resp)
{
    if (resp == NULL) {
        /* Only on allocation failure inside MHD: nothing sensible is left to send. */
        log_error("http response could not be created; aborting");
        abort();
    }
    for (int i = 0; i < r->nheaders; i++) {
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    }
    pthread_mutex_lock(&r->mu);
    if (r->state != HTTP_REQ_HANDLING && r->state != HTTP_REQ_SUSPENDED &&
        r->state != HTTP_REQ_RECEIVING) {
        pthread_mutex_unlock(&r->mu);
        log_error("http request answered twice; aborting", LF_S("path", r->path));
        abort();
    }
    r->response = resp;
    r->status = status;
    bool resume = r->state == HTTP_REQ_SUSPENDED;
    r->state = HTTP_REQ_ANSWERED;
    if (resume) {
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
}

static bool http_content_length_over(struct MHD_Connection *conn, size_t max)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl == NULL) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    /* Unparsable lengths are MHD's to refuse; an overflow is certainly too large. */
    return (errno == ERANGE) || (end != cl && v > max);
}

struct http_framing {
    int content_lengths;
    int transfer_encodings;
    bool cl_bad;     /* a Content-Length that is not plain digits (e.g. a list "5, 6") */
    bool cl_differ;  /* two Content-Length headers that differ */
    bool te_chunked; /* the (one) Transfer-Encoding is exactly "chunked" */
    const char *cl;  /* the last Content-Length value seen (owned by MHD) */
};

static bool http_all_digits(const char *v)
{
    if (*v == '\0') {
        return false;
    }
    for (; *v != '\0'; v++) {
        if (*v < '0' || *v > '9') {
            return false;
        }
    }
    return true;
}

static enum MHD_Result http_framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    struct http_framing *f = cls;
    (void)kind;
    if (value == NULL) {
        value = "";
    }
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->content_lengths++;
        if (!http_all_digits(value)) {
            f->cl_bad = true;
        } else if (f->cl != NULL && strcmp(f->cl, value) != 0) {
            f->cl_differ = true;
        }
        f->cl = value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encodings++;
        f->te_chunked = strcasecmp(value, "chunked") == 0;
    }
    return MHD_YES;
}

/*
 * A request whose length two parties could read differently (a proxy in front and this server)
 * is the start of request smuggling: refused before its body, and the connection closed, since
 * where the next request would begin is exactly what is in doubt. Identical repeated
 * Content-Length values are one length (RFC 9110 8.6) and pass.
 * Returns 0 when the framing is unambiguous, else the status to answer, *msg saying why.
 */
static unsigned http_framing_check(struct MHD_Connection *conn, const char **msg)
{
    struct http_framing f = {0};
    (void)MHD_get_connection_values(conn, MHD_HEADER_KIND, http_framing_header, &f);
    if (f.content_lengths > 0 && f.transfer_encodings > 0) {
        *msg = "Content-Length together with Transfer-Encoding";
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.cl_bad) {
        *msg = "Content-Length is not one whole number";
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.cl_differ) {
        *msg = "Content-Length headers that differ";
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.transfer_encodings > 1) {
        *msg = "more than one Transfer-Encoding header";
        return MHD_HTTP_BAD_REQUEST;
    }
    if (f.transfer_encodings == 1 && !f.te_chunked) {
        *msg = "Transfer-Encoding other than chunked";
        return MHD_HTTP_NOT_IMPLEMENTED;
    }
    return 0;
}

static void http_append_body(struct http_request *r, const char *data, size_t n)
{
    if (r->too_large || r->body_len + n > r->srv->body_max) {
        r->too_large = true;
        r->discarded += n;
        return;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + n + 1) {
            cap *= 2;
        }
        r->body = mem_realloc(r->body, cap);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

static void http_respond_too_large(struct http_request *r)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "request body is larger than %zu bytes", r->srv->body_max);
    http_respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", msg, NULL);
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_request *r = *con_cls;
    if (r == NULL) {
        r = mem_calloc(1, sizeof(*r));
        r->srv = s;
        r->conn = conn;
        r->method = method;
        r->path = url;
        r->status = 0;
        r->state = HTTP_REQ_RECEIVING;
        pthread_mutex_init(&r->mu, NULL);
        clock_gettime(CLOCK_MONOTONIC, &r->started);
        *con_cls = r;
        atomic_fetch_add(&s->inflight, 1);
        http_conn_mark(s, conn, HTTP_CONN_BODY);
        const char *why = NULL;
        unsigned refuse = http_framing_check(conn, &why);
        if (refuse != 0) {
            log_info("http request refused: ambiguous framing", LF_S("reason", why),
                     LF_S("method", method), LF_S("path", url));
            r->too_large = true; /* whatever body follows is not read as a request */
            http_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
            http_respond_error(r, refuse,
                               refuse == MHD_HTTP_BAD_REQUEST ? "bad_framing"
                                                              : "transfer_encoding_unsupported",
                               why, NULL);
            pthread_mutex_lock(&r->mu);
            enum MHD_Result ret = http_queue(r);
            pthread_mutex_unlock(&r->mu);
            return ret;
        }
        if (http_content_length_over(conn, s->body_max)) {
            /* Answer before reading the body; MHD closes the connection after it. */
            r->too_large = true;
            http_respond_too_large(r);
            pthread_mutex_lock(&r->mu);
            enum MHD_Result ret = http_queue(r);
            pthread_mutex_unlock(&r->mu);
            return ret;
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        http_append_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return r->discarded > HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    pthread_mutex_lock(&r->mu);
    enum http_req_state st = r->state;
    pthread_mutex_unlock(&r->mu);
    if (st == HTTP_REQ_RECEIVING || r->too_large) {
        /* The whole request is in (or was refused and its body drained): no deadline left. */
        http_conn_mark(s, conn, HTTP_CONN_BUSY);
    }
    if (st == HTTP_REQ_RECEIVING) {
        if (r->too_large) {
            http_respond_too_large(r);
        } else {
            if (r->body == NULL) {
                r->body = mem_calloc(1, 1);
            }
            pthread_mutex_lock(&r->mu);
            r->state = HTTP_REQ_HANDLING;
            pthread_mutex_unlock(&r->mu);
            s->handler(s->ctx, r);
        }
    }
    enum MHD_Result ret = MHD_YES;
    pthread_mutex_lock(&r->mu);
    if (r->state == HTTP_REQ_ANSWERED) {
        ret = http_queue(r);
    } else if (r->state == HTTP_REQ_HANDLING) {
        r->state = HTTP_REQ_SUSPENDED;
        MHD_suspend_connection(conn);
    }
    pthread_mutex_unlock(&r->mu);
    return ret;
}

static enum tp_status http_bind_addr(const char *addr, int port, struct sockaddr_storage *ss,
                                     bool *ipv6, struct tp_error *err)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *ipv6 = false;
        return TP_OK;
    }
    if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *ipv6 = true;
        return TP_OK;
    }
    return error_set(err, TP_INVALID, "\"%s\" is not an IPv4 or IPv6 address", addr);
}

static void http_server_deinit_locks(struct http_server *s)
{
    pthread_cond_destroy(&s->conns_cv);
    pthread_mutex_destroy(&s->conns_mu);
}

struct http_server *http_server_new(const struct http_server_config *cfg, http_handler_fn *handler,
                                    void *ctx, struct tp_error *err)
{
    struct sockaddr_storage ss;
    bool ipv6 = false;
    if (cfg->port < 0 || cfg->port > 65535) {
        error_set(err, TP_INVALID, "port %d is out of range", cfg->port);
        return NULL;
    }
    if (http_bind_addr(cfg->addr, cfg->port, &ss, &ipv6, err) != TP_OK) {
        return NULL;
    }
    struct http_server *s = mem_calloc(1, sizeof(*s));
    s->handler = handler;
    s->ctx = ctx;
    s->body_max = cfg->body_max_bytes ? cfg->body_max_bytes : HTTP_BODY_MAX_DEFAULT;
    atomic_init(&s->inflight, 0);
    atomic_init(&s->quiesced, false);
    size_t mem = cfg->header_max_bytes ? cfg->header_max_bytes : HTTP_HEADER_MAX_DEFAULT;
    unsigned threads = cfg->threads > 0 ? (unsigned)cfg->threads : 1;
    unsigned conns =
        cfg->connections_max > 0 ? (unsigned)cfg->connections_max : HTTP_CONNECTIONS_MAX_DEFAULT;
    unsigned timeout =
        cfg->idle_timeout_s > 0 ? (unsigned)cfg->idle_timeout_s : HTTP_IDLE_TIMEOUT_S_DEFAULT;
    unsigned per_ip = cfg->per_ip_connections_max > 0 ? (unsigned)cfg->per_ip_connections_max
                                                      : HTTP_PER_IP_CONNECTIONS_MAX_DEFAULT;
    s->header_timeout_ms =
        1000 * (cfg->header_timeout_s > 0 ? cfg->header_timeout_s : HTTP_HEADER_TIMEOUT_S_DEFAULT);
    s->body_timeout_ms =
        1000 * (cfg->body_timeout_s > 0 ? cfg->body_timeout_s : HTTP_BODY_TIMEOUT_S_DEFAULT);
    pthread_mutex_init(&s->conns_mu, NULL);
    pthread_cond_init(&s->conns_cv, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (ipv6 ? MHD_USE_IPv6 : 0);
    struct MHD_OptionItem opts[] = {
        /* First, so that MHD reports every later problem through it. */
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)http_mhd_log, s},
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)mem, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)conns, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)timeout, NULL},
        /* Shared by every thread of the pool: one client cannot take all the connections. */
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)per_ip, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)http_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)http_conn_notify, s},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, http_access, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    if (s->daemon == NULL) {
        error_set(err, TP_FATAL, "cannot listen on %s:%d (address in use or not available)",
                  cfg->addr, cfg->port);
        http_server_deinit_locks(s);
        free(s);
        return NULL;
    }
    if (pthread_create(&s->deadline_thread, NULL, http_deadline_main, s) != 0) {
        error_set(err, TP_FATAL, "cannot start the request deadline thread");
        MHD_stop_daemon(s->daemon);
        http_server_deinit_locks(s);
        free(s);
        return NULL;
    }
    s->deadline_started = true;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info != NULL ? info->port : cfg->port;
    return s;
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

int64_t http_server_inflight(const struct http_server *s)
{
    return atomic_load(&((struct http_server *)s)->inflight);
}

void http_server_quiesce(struct http_server *s)
{
    if (atomic_exchange(&s->quiesced, true)) {
        return;
    }
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
    }
}

void http_server_free(struct http_server *s, int drain_timeout_ms)
{
    if (s == NULL) {
        return;
    }
    http_server_quiesce(s);
    for (int waited = 0; waited < drain_timeout_ms && atomic_load(&s->inflight) > 0; waited += 10) {
        usleep(10000);
    }
    int64_t left = atomic_load(&s->inflight);
    if (left > 0) {
        log_warn("http server stopping with requests still open", LF_I("requests", left));
    }
    MHD_stop_daemon(s->daemon);
    if (s->deadline_started) {
        pthread_mutex_lock(&s->conns_mu);
        s->deadline_stop = true;
        pthread_cond_signal(&s->conns_cv);
        pthread_mutex_unlock(&s->conns_mu);
        pthread_join(s->deadline_thread, NULL);
    }
    http_server_deinit_locks(s);
    free(s);
}

const char *http_request_method(const struct http_request *r)
{
    return r->method;
}

const char *http_request_path(const struct http_request *r)
{
    return r->path;
}

const char *http_request_body(const struct http_request *r, size_t *len)
{
    if (len != NULL) {
        *len = r->body_len;
    }
    return r->body != NULL ? r->body : "";
}

const char *http_request_header(const struct http_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_request_query(const struct http_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

#define HTTP_QUERY_KNOWN_MAX 16

struct http_query_scan {
    const char *const *known;
    int seen[HTTP_QUERY_KNOWN_MAX];
    const char *bad;
    bool duplicate;
};

static enum MHD_Result http_query_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    (void)kind;
    (void)value;
    struct http_query_scan *q = cls;
    for (int i = 0; q->known[i] != NULL && i < HTTP_QUERY_KNOWN_MAX; i++) {
        if (strcmp(q->known[i], key) == 0) {
            if (++q->seen[i] == 1) {
                return MHD_YES;
            }
            q->duplicate = true;
            break;
        }
    }
    q->bad = key;
    return MHD_NO; /* stops the walk at the first refusal */
}

const char *http_request_query_check(const struct http_request *r, const char *const *known,
                                     bool *duplicate)
{
    struct http_query_scan q = {.known = known};
    (void)MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, http_query_visit, &q);
    *duplicate = q.duplicate;
    return q.bad;
}

void http_response_header(struct http_request *r, const char *name, const char *value)
{
    if (r->nheaders >= HTTP_RESPONSE_HEADERS_MAX) {
        log_error("too many response headers; programmer error", LF_S("header", name));
        abort();
    }
    struct http_header_pair *h = &r->headers[r->nheaders++];
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->value, sizeof(h->value), "%s", value);
}

void http_respond(struct http_request *r, unsigned status, const char *content_type,
                  const void *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp != NULL && content_type != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    }
    http_answer(r, status, resp);
}

void http_respond_json(struct http_request *r, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        log_error("JSON response could not be serialised; aborting");
        abort();
    }
    size_t len = strlen(text);
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, text, free);
    if (resp != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json; charset=utf-8");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    }
    http_answer(r, status, resp);
}

json_t *http_error_body(const char *code, const char *message, const char *field)
{
    return json_pack("{s:{s:s, s:s, s:s?}}", "error", "code", code, "message", message, "field",
                     field);
}

void http_respond_error(struct http_request *r, unsigned status, const char *code,
                        const char *message, const char *field)
{
    http_respond_json(r, status, http_error_body(code, message, field));
}

void http_respond_fd(struct http_request *r, unsigned status, const char *content_type, int fd,
                     uint64_t size)
{
    struct MHD_Response *resp = MHD_create_response_from_fd64(size, fd);
    if (resp != NULL && content_type != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    }
    http_answer(r, status, resp);
}

/*
 * Matches one pattern against path, segment by segment. "{x}" takes one non-empty segment
 * (at most HTTP_ROUTE_PARAM_MAX - 1 bytes).
 */
static bool http_pattern_match(const char *pattern, const char *path, struct http_route_match *m)
{
    m->n = 0;
    const char *p = pattern;
    const char *u = path;
    while (*p != '\0' && *u != '\0') {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *seg_end = strchr(u, '/');
            size_t len = seg_end != NULL ? (size_t)(seg_end - u) : strlen(u);
            if (close == NULL || len == 0 || len >= HTTP_ROUTE_PARAM_MAX ||
                m->n >= HTTP_ROUTE_PARAMS_MAX) {
                return false;
            }
            memcpy(m->params[m->n], u, len);
            m->params[m->n][len] = '\0';
            m->n++;
            p = close + 1;
            u += len;
            continue;
        }
        if (*p != *u) {
            return false;
        }
        p++;
        u++;
    }
    return *p == '\0' && *u == '\0';
}

static bool http_method_matches(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

enum http_route_result http_route_find(const struct http_route *routes, const char *method,
                                       const char *path, const struct http_route **out,
                                       struct http_route_match *m, char *allow, size_t allow_size)
{
    bool path_seen = false;
    if (allow_size > 0) {
        allow[0] = '\0';
    }
    for (const struct http_route *rt = routes; rt->method != NULL; rt++) {
        struct http_route_match tmp;
        if (!http_pattern_match(rt->pattern, path, &tmp)) {
            continue;
        }
        if (http_method_matches(rt->method, method)) {
            *m = tmp;
            *out = rt;
            return HTTP_ROUTE_OK;
        }
        if (allow_size > 0 && strstr(allow, rt->method) == NULL) {
            size_t used = strlen(allow);
            snprintf(allow + used, allow_size - used, "%s%s", used ? ", " : "", rt->method);
        }
        path_seen = true;
    }
    return path_seen ? HTTP_ROUTE_METHOD_NOT_ALLOWED : HTTP_ROUTE_NOT_FOUND;
}
