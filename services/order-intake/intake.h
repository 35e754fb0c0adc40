/* order-intake: the service's state and the interfaces between its files (one per concern). */
#ifndef INTAKE_H
#define INTAKE_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "topup/error.h"
#include "topup/http.h"
#include "topup/ids.h"
#include "topup/token.h"
#include "validate.h"

#define INTAKE_SERVICE       "order-intake"
#define INTAKE_OUTBOX_SOURCE "order-intake"

struct pg_conn;
struct counters;
struct outbox_relay;
struct intake_pool;
struct intake_expiry;

/* ---- settings.c: configuration from the environment ---- */

#define SETTINGS_PRESETS_MAX 8 /* preset amounts the form offers at most */

struct intake_settings {
    char *http_addr;
    int64_t http_port;
    char *port_file;
    int64_t threads;
    int64_t pg_conns;
    int64_t queue_max;
    int64_t batch_max;
    int64_t max_body_bytes;
    int64_t connections_max;
    int64_t per_ip_connections_max;
    int64_t idle_timeout_s;
    int64_t header_timeout_s;
    int64_t body_timeout_s;
    int64_t min_amount_fen;
    int64_t max_amount_fen;
    int64_t order_ttl_s;
    int64_t expiry_sweep_ms;
    int64_t expiry_batch_max;
    char *payee_bank_name;
    char *payee_account_name;
    char *payee_account_number;
    char *preset_amounts; /* INTAKE_PRESET_AMOUNTS as given; parsed into presets_fen */
    char *support_url;
    char *web_dir;
    char *token_secret;
    char *cursor_secret; /* "" : the cursor key is derived from token_secret */
    int64_t outbox_poll_ms;
    int64_t shutdown_grace_ms;
    char *pg_conninfo;
    char *redis_host;
    int64_t redis_port;
    /* Derived by settings_load: the preset amounts of the form, ascending, within min..max. */
    int64_t presets_fen[SETTINGS_PRESETS_MAX];
    int presets_n;
    unsigned char cursor_key[VALIDATE_CURSOR_KEY_BYTES]; /* validate_cursor_key of the secret */
};

/* Loads and cross-checks every setting. TP_INVALID names the variable at fault. */
enum tp_status settings_load(struct intake_settings *s, struct tp_error *err) TP_MUST_CHECK;
void settings_print_table(void);

/* ---- the service ---- */

struct intake {
    struct intake_settings cfg;
    struct counters *counters;    /* owned */
    struct outbox_relay *relay;   /* owned */
    struct intake_pool *pool;     /* owned */
    struct intake_expiry *expiry; /* owned */
    struct http_server *http;     /* owned */
    char web_root[PATH_MAX];      /* realpath of cfg.web_dir; "" when it does not exist */
};

/* ---- store.c: SQL on one connection (the caller's worker owns it) ---- */

#define STORE_TEXT_MAX 1024 /* bytes of one stored text field we render, NUL included */

/* An order as rendered; times in Unix ms, 0 for NULL; credited_fen -1 for NULL. */
struct store_order {
    int64_t id;
    char code[REFCODE_STR_LEN];
    char account[TOKEN_ACCOUNT_MAX + 1];
    int64_t amount_fen;
    char currency[8];
    char channel[32];
    char remitter_name[STORE_TEXT_MAX];
    char remitter_bank[STORE_TEXT_MAX];
    char remarks[STORE_TEXT_MAX];
    char status[16];
    int64_t credited_fen;
    bool amount_mismatch;
    int64_t created_ms, expires_ms, updated_ms, cancelled_ms, expired_ms, matched_ms, completed_ms;
};

/* One create request of a batch, in and out. */
struct store_create {
    /* in */
    const char *account;
    const char *idem_key;
    const struct validate_order *req;
    int64_t ttl_s;
    /* out */
    bool created;  /* this request inserted the order */
    bool conflict; /* the key exists with another request hash */
    bool found;    /* order is filled (created or replayed) */
    struct store_order order;
};

/* Prepares the statements this service uses on a new worker connection. */
enum tp_status store_prepare(struct pg_conn *pg, struct tp_error *err) TP_MUST_CHECK;

/* Writes a new order reference code: ids_refcode_new in the service. */
typedef void store_code_fn(char out[REFCODE_STR_LEN]);

/*
 * Creates the orders of a batch in one transaction (each with its idempotency key and its
 * TopUpRequested outbox row), then reads back the orders of keys that already existed.
 * Items are processed in (account, key) order; no two items may share account and key.
 * Codes come from new_code; a code that already exists (codes are random) makes the batch run
 * again with new codes for every new order, up to STORE_CODE_ATTEMPTS times in all.
 */
enum tp_status store_create_batch(struct pg_conn *pg, struct store_create *items, int n,
                                  store_code_fn *new_code, struct tp_error *err) TP_MUST_CHECK;

/* The account's order with this code: TP_NOT_FOUND when none. */
enum tp_status store_get_order(struct pg_conn *pg, const char *account, const char *code,
                               struct store_order *out, struct tp_error *err) TP_MUST_CHECK;

/*
 * Up to limit orders with id < before_id, newest first, optionally of one status. *n_out rows go
 * to out (caller-owned, limit + 1 entries: a row beyond limit means there is a next page).
 */
enum tp_status store_list_orders(struct pg_conn *pg, const char *account, int64_t before_id,
                                 const char *status, int limit, struct store_order *out, int *n_out,
                                 struct tp_error *err) TP_MUST_CHECK;

/*
 * Cancels the account's pending order (conditional UPDATE) with its TopUpCancelled outbox row in
 * one transaction. TP_OK: out is the cancelled order. TP_CONFLICT: not pending, out->status says
 * what it is. TP_NOT_FOUND: no such order for the account.
 */
enum tp_status store_cancel_order(struct pg_conn *pg, const char *account, const char *code,
                                  struct store_order *out, struct tp_error *err) TP_MUST_CHECK;

enum tp_status store_balance(struct pg_conn *pg, const char *account, int64_t *balance_fen,
                             struct tp_error *err) TP_MUST_CHECK;

struct store_flow {
    int64_t id;
    char type[16];
    int64_t amount_fen;
    int64_t balance_after_fen;
    char reference[STORE_TEXT_MAX];
    int64_t occurred_ms;
    int64_t created_ms;
};

/* Flows like store_list_orders: limit + 1 entries in out. type NULL means every type. */
enum tp_status store_list_flows(struct pg_conn *pg, const char *account, int64_t before_id,
                                const char *type, int limit, struct store_flow *out, int *n_out,
                                struct tp_error *err) TP_MUST_CHECK;

/*
 * Expires up to batch_max pending orders past their window (FOR UPDATE SKIP LOCKED, so several
 * instances share the work) with one TopUpExpired outbox row each, in one transaction.
 */
enum tp_status store_expire_batch(struct pg_conn *pg, int batch_max, int *expired_out,
                                  struct tp_error *err) TP_MUST_CHECK;

/*
 * Outbox rows of this service not yet published with id <= *upto_id; *upto_id <= 0 first takes
 * the highest unpublished id (rows written later, e.g. by other instances, are not waited for).
 */
enum tp_status store_outbox_unpublished(struct pg_conn *pg, int64_t *upto_id, int64_t *count,
                                        struct tp_error *err) TP_MUST_CHECK;

/* ---- events.c: the protobuf payloads this service publishes ---- */

/* Packs an event into a new buffer (free() it); event_id receives the envelope's id. */
uint8_t *events_pack_requested(const struct store_order *o, char event_id[UUID_STR_LEN],
                               size_t *len);
uint8_t *events_pack_cancelled(const char *account, const char *code, int64_t cancelled_ms,
                               char event_id[UUID_STR_LEN], size_t *len);
uint8_t *events_pack_expired(const char *account, const char *code, int64_t expired_ms,
                             char event_id[UUID_STR_LEN], size_t *len);

/* ---- pool.c: database workers, a bounded job queue, group commit of creates ---- */

enum intake_job_kind {
    JOB_CREATE, /* batched: many creates commit together */
    JOB_GET_ORDER,
    JOB_LIST_ORDERS,
    JOB_CANCEL,
    JOB_BALANCE,
    JOB_LIST_FLOWS,
    JOB_READY, /* /readyz: PostgreSQL reachable through a worker */
    JOB_CLAIM, /* claims.c: file an "I have paid" claim */
    JOB_REFUND_CREATE,
    JOB_REFUND_LIST,
    JOB_REFUND_GET,
};

struct intake_job;

/* ---- claims.c: "I have paid" claims (payment_claims) ---- */

struct claims_request {
    char payer_name[STORE_TEXT_MAX];
    char payer_name_norm[NAMES_NORM_MAX];
    int64_t amount_fen;
    char transfer_date[11]; /* YYYY-MM-DD */
    char bank_serial[STORE_TEXT_MAX];
    char note[STORE_TEXT_MAX];
};

/* Validates a claim body: payer_name, amount, transfer_date required; bank_serial, note. */
bool claims_parse(const char *body, size_t len, struct claims_request *out,
                  struct validate_error *verr);
/* The order's claim as the API shows it (JSON null when none); NULL with *st set on failure. */
json_t *claims_json(struct pg_conn *pg, int64_t order_id, enum tp_status *st, struct tp_error *err);
void claims_run(struct intake *app, struct pg_conn *pg, struct intake_job *job);

struct intake_job {
    struct intake_job *next;
    enum intake_job_kind kind;
    struct http_request *req;
    char account[TOKEN_ACCOUNT_MAX + 1];
    char code[REFCODE_STR_LEN];
    int limit;
    int64_t before_id;
    const char *filter; /* static string or NULL */
    char idem_key[VALIDATE_IDEM_KEY_MAX + 1];
    struct validate_order order;
    struct claims_request *claim;   /* JOB_CLAIM: owned, freed with the job */
    struct validate_refund *refund; /* JOB_REFUND_CREATE: owned (freed with the job) */
    char refund_id[VALIDATE_REFUND_ID_MAX];
};

/* A new job for req (zeroed); owned by the caller until pool_submit accepts it. */
struct intake_job *pool_job_new(enum intake_job_kind kind, struct http_request *req,
                                const char *account);
void pool_job_free(struct intake_job *job);

struct intake_pool *pool_new(struct intake *app, struct tp_error *err);

/*
 * Queues job for a worker, which answers its request and frees it. False when the queue is full
 * (INTAKE_QUEUE_MAX) or the pool is stopping: the caller still owns job and answers 503.
 */
bool pool_submit(struct intake_pool *p, struct intake_job *job);

/* Stops taking jobs, lets the workers finish every queued one, joins them. */
void pool_stop(struct intake_pool *p);
void pool_free(struct intake_pool *p);

/* ---- api.c / api_orders.c / api_account.c: the HTTP handlers ---- */

/* The HTTP entry point (http_handler_fn); ctx is the struct intake. */
void api_handle(void *ctx, struct http_request *req);

/* Answers an error and counts it (requests.rejected.<code>, or orders.rejected.<code>). */
void api_error(struct intake *app, struct http_request *req, unsigned status, const char *code,
               const char *message, const char *field, bool order_create);
void api_validation_error(struct intake *app, struct http_request *req,
                          const struct validate_error *v, bool order_create);
/* 503 unavailable with Retry-After. */
void api_unavailable(struct intake *app, struct http_request *req, const char *why);
/* Answers a store failure: TP_RETRY is 503 (try again), the rest a logged, counted 500. */
void api_store_failed(struct intake *app, struct http_request *req, enum tp_status st,
                      const struct tp_error *err, const char *what);
/* Hands job to the worker pool; when the pool refuses it, frees it and answers 503. */
bool api_submit(struct intake *app, struct intake_job *job);

/* The order as the API shows it (a new reference). */
json_t *api_order_json(const struct intake *app, const struct store_order *o);
/* RFC 3339 UTC with milliseconds, or JSON null for 0. */
json_t *api_time_json(int64_t ms);

/* Route handlers: ctx is a struct api_call (the app and the authenticated account). */
struct api_call {
    struct intake *app;
    char account[TOKEN_ACCOUNT_MAX + 1];
};
void api_orders_create(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_orders_list(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_orders_get(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_orders_cancel(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_orders_claim(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_account_balance(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_account_flows(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_account_options(void *ctx, struct http_request *req, const struct http_route_match *m);
/* GET /v1/settings: what the page builds its form from (same body as /v1/topup-options). */
void api_account_settings(void *ctx, struct http_request *req, const struct http_route_match *m);

/* api_refunds.c: POST/GET /v1/refunds, GET /v1/refunds/{id}. */
void api_refunds_create(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_refunds_list(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_refunds_get(void *ctx, struct http_request *req, const struct http_route_match *m);
void api_refunds_run(struct intake *app, struct pg_conn *pg, struct intake_job *job);

/* Worker side: run on a database worker, answer job->req. */
void api_orders_create_batch(struct intake *app, struct pg_conn *pg, struct intake_job **jobs,
                             int n);
void api_orders_run(struct intake *app, struct pg_conn *pg, struct intake_job *job);
void api_account_run(struct intake *app, struct pg_conn *pg, struct intake_job *job);

/* ---- static.c: the Top Up page's files ---- */

void static_init(struct intake *app);
void static_serve(struct intake *app, struct http_request *req);

/* ---- expiry.c: the periodic expiry sweep ---- */

struct intake_expiry *expiry_start(struct intake *app, struct tp_error *err);
/* Finishes the sweep in hand and joins the thread. NULL is fine. */
void expiry_stop(struct intake_expiry *e);

#endif
