/* order-intake integration tests: the service as a child process, driven over real HTTP. */
#ifndef INTAKE_IT_HARNESS_H
#define INTAKE_IT_HARNESS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"
#include "topup/ids.h"
#include "topup/token.h"

#define IT_WAIT_MS      60000 /* longest wait for the service or the broker to reach a state */
#define IT_ID_MAX       96
#define IT_SERVICES_MAX 16 /* starts of order-intake per test */

/*
 * The order-intake tests' vocabulary, over tests/lib (testlib.h): tl_init/tl_fail/tl_step, the
 * services as tl_proc children (logs in the test's log directory), tl_pg for SQL.
 */

/* Fails the test: prints, shows the services' log tails, stops every child, exits 1. */
void it_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            it_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);                         \
        }                                                                                          \
    } while (0)
#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            it_fail(__VA_ARGS__);                                                                  \
        }                                                                                          \
    } while (0)
void it_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* argv[1]: the order-intake binary. Needs the stack env (PG_CONNINFO, TOKEN_SECRET, ...). */
void it_init(int argc, char **argv, const char *name);
/* "<prefix>-<tl_sfx()>-<n>" into out (IT_ID_MAX); unique per call. */
char *it_id(char *out, const char *prefix);
int64_t it_now_ms(void);
void it_sleep_ms(int ms);

/* ---- the service ---- */
struct tl_proc;
struct it_service {
    struct tl_proc *proc; /* owned by the harness (static storage, as tests/lib needs) */
    int port;
};
/*
 * Starts order-intake (port 0, the bound port read from its port file) with extra "NAME=value"
 * settings (NULL-terminated or NULL). At most IT_SERVICES_MAX starts per test.
 */
void it_start(struct it_service *s, const char *const *env);
/* Sends sig and waits (bounded); returns the exit code, or 128 + signal when killed. */
int it_stop(struct it_service *s, int sig);
/* The running service's process id (0 when stopped): for profilers and /proc. */
pid_t it_pid(const struct it_service *s);
/* Waits until GET /readyz answers 200. */
void it_wait_ready(struct it_service *s);

/* A token for account valid for ttl_s (negative: already expired), signed with TOKEN_SECRET. */
void it_token(char out[TOKEN_STR_MAX], const char *account, int64_t ttl_s);

/* ---- HTTP ---- */
struct it_resp {
    int status;
    json_t *json; /* NULL when the body is not JSON */
    struct hc_response raw;
};
/*
 * One request on a fresh connection. token, idem_key, content_type may be NULL (no header);
 * body NULL sends none. extra: more "Name: value" headers or NULL.
 */
void it_call(const struct it_service *s, const char *method, const char *path, const char *token,
             const char *idem_key, const char *content_type, const char *body,
             const char *const *extra, struct it_resp *out);
void it_resp_free(struct it_resp *r);
/* error.code of an error response, "" otherwise. */
const char *it_err(const struct it_resp *r);
const char *it_err_field(const struct it_resp *r);
/* String member of the top-level object, "" when absent. */
const char *it_str(const struct it_resp *r, const char *key);
/* A create body; remarks NULL leaves the field out. */
char *it_body(char *buf, size_t size, const char *amount, const char *name, const char *bank,
              const char *remarks);
/* POST /v1/topup-orders with a JSON body. */
void it_create(const struct it_service *s, const char *token, const char *idem_key,
               const char *body, struct it_resp *out);
/* Creates an order and returns its code (fails the test unless 201). */
void it_create_ok(const struct it_service *s, const char *token, const char *amount,
                  char code[REFCODE_STR_LEN]);

/* ---- PostgreSQL (the test's own database, through tl_pg) ---- */
PGresult *it_sql(const char *sql, int n, const char *const *params);
void it_exec(const char *sql, int n, const char *const *params);
int64_t it_i64(const char *sql, int n, const char *const *params);
/* Polls sql (one bigint) until it equals want or IT_WAIT_MS passes; fails naming what. */
void it_wait_i64(const char *what, const char *sql, int n, const char *const *params, int64_t want);
/* A second, independent connection (e.g. "the bank match" of a race). Caller PQfinish()es. */
PGconn *it_pg_connect(void);

/* ---- Kafka: the published events, decoded ---- */
enum it_event_kind { IT_REQUESTED, IT_CANCELLED, IT_EXPIRED };
struct it_event {
    enum it_event_kind kind;
    /* Where it was read; a re-read of the same offset (consumer rejoin) is not kept twice. */
    char topic[32];
    int32_t partition;
    int64_t offset;
    char key[IT_ID_MAX];
    char account[IT_ID_MAX];
    char producer[32];
    char event_id[UUID_STR_LEN];
    uint32_t schema_version;
    char code[REFCODE_STR_LEN];
    int64_t amount_fen;
    char remitter_name[256];
    int64_t created_ms, expires_ms, at_ms; /* at_ms: cancelled or expired */
};
struct it_consumer;
/* Subscribes a fresh group to topup.requested, topup.cancelled and topup.expired. */
struct it_consumer *it_consumer_new(const char *bootstrap);
/*
 * Reads until `want` events whose key starts with key_prefix were seen (in total, kept in the
 * consumer) or timeout_ms passes; returns the number seen. it_events() lists them.
 */
int it_collect(struct it_consumer *c, const char *key_prefix, int want, int timeout_ms);
const struct it_event *it_events(const struct it_consumer *c, int *n);
void it_consumer_free(struct it_consumer *c);

#endif
