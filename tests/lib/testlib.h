/* Shared helpers of the system tests: processes, HTTP, Kafka, PostgreSQL, stacks, statements. */
#ifndef TOPUP_TESTLIB_H
#define TOPUP_TESTLIB_H

/*
 * A test that links topup_testlib is one process that drives the system from outside, the way a
 * user, a gateway or an operator would: it starts the services as child processes, talks HTTP to
 * order-intake, produces events to Kafka, runs the command-line tools, and reads PostgreSQL to
 * check. Every helper fails the test (tl_fail: message, the tails of the children's logs, every
 * child killed, exit 1) instead of returning an error, unless its name says "try".
 *
 * Environment (tests/with-stack.sh sets it): PG_CONNINFO, REDIS_HOST/PORT, KAFKA_BOOTSTRAP_SERVERS,
 * TOKEN_SECRET, TOPUP_BUILD_DIR, TOPUP_SOURCE_DIR. Children inherit the test's environment (plus
 * per-child overrides), so a helper that points the test elsewhere (tl_broker_start,
 * tl_stack_start) does so with setenv before the services start.
 */

#include <libpq-fe.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "topup/ids.h"

/* ------------------------------------------------------------------ tl.c: the basics */

#define TL_ID_MAX   96
#define TL_PATH_MAX 1024

/* Names the test (logs go to $TOPUP_BUILD_DIR/test-logs/<name>/), draws the run's suffix. */
void tl_init(const char *name);
void tl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Progress line on stderr: "[name +12.3s] ...". */
void tl_step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define TL_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tl_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);                         \
        }                                                                                          \
    } while (0)
#define TL_CHECK_MSG(cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tl_fail(__VA_ARGS__);                                                                  \
        }                                                                                          \
    } while (0)

/* Eight hex characters unique to this run (for account ids, groups, file names). */
const char *tl_sfx(void);
/* Monotonic milliseconds. */
int64_t tl_now_ms(void);
void tl_sleep_ms(int ms);
/* Pseudo-random numbers from a seed printed at tl_init (TL_SEED=<n> repeats a run). */
uint64_t tl_rand(void);
/* Uniform in [lo, hi]. */
int64_t tl_rand_range(int64_t lo, int64_t hi);
/* The variable's value; fails when unset or empty. */
const char *tl_env(const char *name);
/* The variable as an integer, or def when unset; fails on garbage. */
int64_t tl_env_int(const char *name, int64_t def);
/* This test's log directory (created). */
const char *tl_logdir(void);
/* An executable of the build: tl_bin("ledger") is $TOPUP_BUILD_DIR/services/ledger/ledger. */
const char *tl_bin(const char *service);
/* "out" must hold TL_ID_MAX: "<prefix>-<sfx>". Returns out. */
char *tl_id(char *out, const char *prefix);
/* A new UUIDv7 event id. */
void tl_event_id(char out[UUID_STR_LEN]);
/* Today's date in Asia/Shanghai (the banks' calendar), "YYYY-MM-DD", plus delta days. */
void tl_shanghai_date(char out[11], int delta_days);
/* Amount in fen as "123.45". */
void tl_fen_str(int64_t fen, char *out, size_t len);
/* "123.45" (or "-1.25") to fen; fails on anything else. */
int64_t tl_fen_parse(const char *s);
/* Writes len bytes to path (created or truncated); fails on error. */
void tl_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file (NUL-terminated, caller frees); NULL if it does not exist. */
char *tl_read_file(const char *path, size_t *len);

/* ------------------------------------------------------------------ tl_proc.c: child processes */

#define TL_PROC_ARGS_MAX 32
#define TL_PROC_ENV_MAX  48
#define TL_PROCS_MAX     32

struct tl_proc {
    char name[64];
    char log[TL_PATH_MAX]; /* stdout and stderr, appended across restarts */
    pid_t pid;             /* 0 when not running */
    int starts;
    int64_t started_ms;
    char *argv[TL_PROC_ARGS_MAX + 1]; /* owned copies */
    char *env[TL_PROC_ENV_MAX + 1];   /* "K=V" overrides of the inherited environment */
};

/*
 * Starts argv (argv[0] a path) as a child with the test's environment plus env overrides
 * ("K=V", NULL-terminated, may be NULL); output appended to <logdir>/<name>.log. p is registered
 * for cleanup (killed when the test fails or exits), so it must outlive main: static storage.
 */
void tl_proc_start(struct tl_proc *p, const char *name, const char *const *argv,
                   const char *const *env);
/* Starts the same command again (after a stop or a kill). */
void tl_proc_restart(struct tl_proc *p);
/* kill -9 and reap. */
void tl_proc_kill9(struct tl_proc *p);
/*
 * Sends sig and waits up to timeout_ms for the exit. Returns the exit code (128+n when killed by
 * signal n); on timeout kills it with SIGKILL and returns -1. *elapsed_ms (may be NULL) gets the
 * time the exit took.
 */
int tl_proc_stop(struct tl_proc *p, int sig, int timeout_ms, int64_t *elapsed_ms);
/* True while the child runs; a child found dead is reaped (pid set to 0, *status filled). */
bool tl_proc_alive(struct tl_proc *p, int *status);
/* Fails (with its log tail) when p died. */
void tl_proc_check_alive(struct tl_proc *p);
/* Prints the last n lines of p's log to stderr. */
void tl_proc_log_tail(const struct tl_proc *p, int n);
/* Lines of p's log that contain s. */
int tl_proc_log_count(const struct tl_proc *p, const char *s);
/* Kills and reaps every registered child (also called at exit and by tl_fail). */
void tl_proc_kill_all(void);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tl_free_port(void);
/*
 * Runs argv to completion (at most timeout_ms, then SIGKILL and exit code -1) with env overrides;
 * stdout into *out (may be NULL; caller frees), stderr appended to <logdir>/<log_name>.log.
 * Returns the exit code (128+n for signal n).
 */
int tl_run(const char *log_name, const char *const *argv, const char *const *env, char **out,
           int timeout_ms);

/* ------------------------------------------------------------------ tl_http.c: HTTP client */

struct tl_http_resp {
    int status; /* 0: no answer (connection refused, reset, timeout) */
    char *body; /* NUL-terminated, owned */
    size_t len;
    json_t *json; /* parsed body when it is JSON, else NULL; owned */
    char error[256];
};

/*
 * One request to http://127.0.0.1:port (Connection: close). token: bearer token or NULL;
 * idem_key: Idempotency-Key or NULL; body: JSON text or NULL. Returns r->status; never fails the
 * test (a dead server is something tests provoke). Free r with tl_http_free.
 */
int tl_http(int port, const char *method, const char *path, const char *token, const char *idem_key,
            const char *body, struct tl_http_resp *r, int timeout_ms);
void tl_http_free(struct tl_http_resp *r);
/* String member of a JSON object ("" when missing or not a string). */
const char *tl_json_str(const json_t *obj, const char *key);

/* ------------------------------------------------------------------ tl_pg.c: PostgreSQL */

/* The test's connection to PG_CONNINFO (reconnected when lost). */
PGconn *tl_pg(void);
/* Runs sql; fails the test on an error. Caller PQclears. */
PGresult *tl_pg_query(const char *sql, int n, const char *const *params);
/* Like tl_pg_query but returns NULL on an error (and drops the connection for a retry). */
PGresult *tl_pg_try(const char *sql, int n, const char *const *params);
void tl_pg_exec(const char *sql, int n, const char *const *params);
/* One bigint (NULL is INT64_MIN); fails unless exactly one row. */
int64_t tl_pg_i64(const char *sql, int n, const char *const *params);
/* Polls until sql gives want, at most timeout_ms (errors count as not yet); returns the last. */
int64_t tl_pg_wait_i64(const char *what, const char *sql, int n, const char *const *params,
                       int64_t want, int timeout_ms);
/* Waits until PostgreSQL answers again (after a restart). */
void tl_pg_wait_up(int timeout_ms);
/* COPY ... FROM STDIN with data (text format, tab-separated lines); fails on an error. */
void tl_pg_copy(const char *copy_sql, const char *data, size_t len);

/* ------------------------------------------------------------------ tl_redis.c: Redis */

/* HGET key field into out; false when missing. Fails when Redis does not answer. */
bool tl_redis_hget(const char *key, const char *field, char *out, size_t len);
/* GET key as an integer (0 when missing): the monitoring counters topup:ctr:<service>:<name>. */
int64_t tl_redis_counter(const char *key);
/* Keys matching pattern (SCAN), at most max. */
int tl_redis_keys(const char *pattern, char (*out)[TL_ID_MAX * 2], int max);

/* ------------------------------------------------------------------ tl_kafka.c: Kafka */

struct tl_producer;
/*
 * A gateway-like producer on common/kafka.h (idempotent, acks=all) to KAFKA_BOOTSTRAP_SERVERS.
 * A message whose delivery fails is sent again with the same bytes (same event id), as a gateway
 * retries: the consumers' idempotency makes that safe.
 */
struct tl_producer *tl_producer_new(const char *client_id);
/* UsageRecorded to usage.recorded, key account. amount_fen < 0 for a valid event. */
void tl_produce_usage(struct tl_producer *p, const char *event_id, const char *account,
                      const char *request_id, int64_t amount_fen);
/* RefundIssued to refund.issued, key account; kind 1 usage (amount > 0), 2 bank payout (< 0). */
void tl_produce_refund(struct tl_producer *p, const char *event_id, const char *account,
                       const char *refund_id, int64_t amount_fen, int kind, const char *original);
/* Raw bytes (for malformed events). */
void tl_produce_raw(struct tl_producer *p, const char *topic, const char *key, const void *payload,
                    size_t len);
/* Serves delivery reports and re-sends failed messages; returns messages still unacknowledged. */
int tl_producer_poll(struct tl_producer *p, int timeout_ms);
/* Polls until everything is acknowledged or timeout_ms; fails on timeout. */
void tl_producer_flush(struct tl_producer *p, int timeout_ms);
/* Deliveries that failed and were re-sent so far. */
int64_t tl_producer_resent(const struct tl_producer *p);
/* How often the client was recreated after a fatal error (its unacknowledged events resent). */
int tl_producer_recreated(const struct tl_producer *p);
void tl_producer_free(struct tl_producer *p);

/* Partitions of topic (from the metadata). */
int tl_kafka_partitions(const char *topic);
/* Sum over partitions of (high watermark - low watermark). */
int64_t tl_kafka_topic_size(const char *topic);
/* Committed offsets of group on topic's partitions into offsets[0..n) (-1 when none). */
void tl_kafka_committed(const char *group, const char *topic, int64_t *offsets, int n);
/* Called once per message read by tl_kafka_read. */
typedef void tl_kafka_msg_fn(void *ctx, int32_t partition, int64_t offset, const void *key,
                             size_t key_len, const void *payload, size_t len);
/* Reads topic's partition from offset `from` up to (excluding) `to` (-1: the end now). */
void tl_kafka_read(const char *topic, int32_t partition, int64_t from, int64_t to,
                   tl_kafka_msg_fn *fn, void *ctx);

/*
 * The envelope's event id of any topup.v1 message (every one starts with Envelope as field 1);
 * false when the bytes are not such a message.
 */
bool tl_event_id_of(const void *payload, size_t len, char out[UUID_STR_LEN]);

/* Event ids of a topic's messages: what a consumer group has committed, or everything. */
struct tl_ids {
    char (*v)[UUID_STR_LEN];
    size_t n, cap;
};
/*
 * Reads, on every partition of topic, the messages below group's committed offset (group NULL:
 * every message now in the topic) and collects their event ids, sorted. Free with tl_ids_free.
 */
void tl_kafka_ids(const char *group, const char *topic, struct tl_ids *out);
void tl_ids_add(struct tl_ids *ids, const char *id);
void tl_ids_sort(struct tl_ids *ids);
void tl_ids_free(struct tl_ids *ids);
/*
 * Compares two sorted id sets; prints up to 5 ids on each side that the other lacks (with the
 * labels) and returns how many differ in all.
 */
size_t tl_ids_diff(const struct tl_ids *a, const char *a_label, const struct tl_ids *b,
                   const char *b_label);
/* The ids of a one-column query (sorted). */
void tl_pg_ids(const char *sql, int n, const char *const *params, struct tl_ids *out);

/* ------------------------------------------------------------------ tl_stack.c: stacks, tools */

/* A dev broker of the test's own (topics not shared with other tests, faults allowed). */
struct tl_broker {
    struct tl_proc proc;
    char bootstrap[512];
    char control[64];
};
/*
 * Starts topup-devbroker with `brokers` brokers (topic_partitions "topic=N,..." or NULL) and
 * points this process and every child started afterwards at it (KAFKA_BOOTSTRAP_SERVERS,
 * DEVBROKER_CONTROL).
 */
void tl_broker_start(struct tl_broker *b, int brokers, const char *topic_partitions);
/* One control command ("broker-down 2"); returns true on "ok ...", reply (may be NULL) filled. */
bool tl_broker_ctl(const char *control, const char *command, char *reply, size_t len);

/*
 * A whole private stack (PostgreSQL, Redis, dev broker) in dir with free ports: runs
 * deploy/local/stack.sh start with TOPUP_STACK_DIR=dir (extra env e.g. "DEVBROKER_BROKERS=3"),
 * then loads its env file into this process.
 */
void tl_stack_start(const char *dir, const char *const *env);
/* stack.sh <cmd> [piece] on that stack (e.g. "restart", "pg"); returns its exit code. */
int tl_stack_sh(const char *dir, const char *cmd, const char *piece);

/* Loads a stack's env file (dir/env) into this process (children inherit it). */
void tl_stack_load_env(const char *dir);

/*
 * tl_kcluster.c: a 3-node Apache Kafka cluster of the test's own (deploy/local/kafka-cluster.sh
 * with TOPUP_KCLUSTER_DIR=dir: replication 3, min.insync.replicas 2, network namespaces when
 * root). Start points this process and its later children at it (KAFKA_BOOTSTRAP_SERVERS).
 */
void tl_kcluster_start(const char *dir);
/* Stops its nodes and removes its namespaces (for atexit; a no-op before a start). */
void tl_kcluster_stop(void);
/* kafka-cluster.sh <cmd> <node> (kill, restart, pause, resume, partition, heal); exit code. */
int tl_kcluster(const char *cmd, int node);
/* The active controller's node id, -1 when unknown. */
int tl_kcluster_controller(void);
/* The leader's node id of a partition from the metadata, -1 when none or unknown. */
int tl_kafka_leader(const char *topic, int partition);
/* Partitions (of every topic) without a leader or with fewer in-sync replicas than replicas,
 * plus one when fewer brokers are up; -1 when no metadata. */
int tl_kafka_under_replicated(int replicas);

/*
 * A one-node Apache Kafka broker of the test's own (deploy/local/stack.sh start broker with
 * TOPUP_KAFKA=kafka, in <logdir>/kafka-stack, free ports, every topic of topics.list): for tests
 * that need topics nobody else writes but no fault only the dev broker can inject. Points this
 * process and its later children at it; stopped at exit.
 */
void tl_kafka_private_start(void);

/* The services as children. Ports and files go to the test's log directory. */
struct tl_intake {
    struct tl_proc proc;
    int port;
};
/* order-intake on a free port (INTAKE_HTTP_PORT fixed at first start, kept on restarts). */
void tl_intake_start(struct tl_intake *in, const char *const *env);
/* Waits until /healthz answers 200 (after a start or restart). */
void tl_intake_wait_ready(struct tl_intake *in, int timeout_ms);
/* service: "reconciliation" or "ledger"; name: the log's name (two ledgers: "ledger-1"). */
void tl_worker_start(struct tl_proc *p, const char *service, const char *name,
                     const char *const *env);

/* A bearer token for account (topupctl token issue). Caller frees. */
char *tl_token(const char *account);
/* topupctl verify: exit code, output into *out (may be NULL; caller frees). */
int tl_verify(char **out);
/* topupctl payers add ACCOUNT NAME: name becomes a verified payer of account (reconciliation's
 * rule 2 credits only those); fails the test unless it exits 0. */
void tl_payer_add(const char *account, const char *name);
/* statement-import FILE with extra args (NULL-terminated, may be NULL); exit code, output. */
int tl_import(const char *file, const char *const *args, char **out);

/* ------------------------------------------------------------------ tl_stmt.c: bank statements */

/* One transaction of a generated statement file. */
struct tl_txn {
    char txn_id[64];     /* the bank's id (CSV 流水号, MT940 bank reference, camt AcctSvcrRef) */
    int64_t amount_fen;  /* signed: credit > 0, debit < 0 */
    char name[128];      /* counterparty name (UTF-8; MT940 only ASCII) */
    char cp_account[64]; /* counterparty account */
    char cp_bank[128];   /* counterparty bank (CSV, camt) */
    char remittance[256]; /* remarks: where a reference code goes */
    char value_date[11];  /* YYYY-MM-DD (also the booking date) */
};

enum tl_stmt_format {
    TL_STMT_CSV_CMB,     /* csv:cmb-corporate, UTF-8 */
    TL_STMT_CSV_CMB_GBK, /* the same exported by Excel: GBK, CRLF */
    TL_STMT_MT940,
    TL_STMT_CAMT053,
};
/* Writes a statement of `account` (our receiving account) holding txns[0..n) in format. */
void tl_stmt_write(enum tl_stmt_format f, const char *path, const char *account,
                   const struct tl_txn *txns, size_t n);
/* "csv-cmb", "csv-cmb-gbk", "mt940", "camt053". */
const char *tl_stmt_format_name(enum tl_stmt_format f);
/* statement-import arguments the format needs (NULL-terminated; --account for CSV). */
const char *const *tl_stmt_import_args(enum tl_stmt_format f, const char *account);

#endif
