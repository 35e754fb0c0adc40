/* Thin best-effort hiredis client: short timeouts, reconnect with backoff, commands and pipelines.
 */
#ifndef TOPUP_REDIS_H
#define TOPUP_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include "topup/config.h"
#include "topup/error.h"

/*
 * Redis is a cache and a monitoring sink here, never the system of record: every call is bounded
 * by the connect and command timeouts, and after a failure the client backs off (100 ms doubling
 * to REDIS_BACKOFF_MAX_MS) before it tries to connect again. While backing off, calls return
 * TP_RETRY at once without touching the network, so a dead Redis costs nothing per call.
 *
 * Thread-safe: calls on one client are serialised by an internal mutex.
 */

#define REDIS_DEFAULT_HOST               "127.0.0.1"
#define REDIS_DEFAULT_PORT               56379
#define REDIS_CONNECT_TIMEOUT_MS_DEFAULT 100
#define REDIS_COMMAND_TIMEOUT_MS_DEFAULT 200
#define REDIS_BACKOFF_MIN_MS             100
#define REDIS_BACKOFF_MAX_MS             5000
/* A pipeline holds at most this many commands; redis_pipeline_add beyond it is refused. */
#define REDIS_PIPELINE_MAX 10000
#define REDIS_USERNAME_MAX 255
#define REDIS_PASSWORD_MAX 4096

/*
 * Authentication. Every connect and reconnect of every client of the process sends
 * AUTH <REDIS_USERNAME> <REDIS_PASSWORD> (an ACL user, Redis 6+) or AUTH <REDIS_PASSWORD>
 * (requirepass) before any command, when REDIS_PASSWORD is set. A refused AUTH drops the
 * connection like an outage (backoff, one warning naming the variables), so a wrong password
 * never stops money work either; a server asking for a password the process was not given says
 * so the same way. A service's config table carries the two rows with REDIS_AUTH_CONFIG_ROWS:
 * config_load() fills the two variables below, which redis_new() reads; a process that loads no
 * table (a test, a tool) reads the same variables from the environment.
 */
extern const char *redis_config_username;
extern const char *redis_config_password;
/* clang-format off */
#define REDIS_AUTH_CONFIG_ROWS                                                                     \
    {"REDIS_USERNAME", CONFIG_STR, "", 0, REDIS_USERNAME_MAX,                                      \
     "Redis ACL user (with REDIS_PASSWORD); empty: the default user", &redis_config_username},     \
    {"REDIS_PASSWORD", CONFIG_STR, "", 0, REDIS_PASSWORD_MAX,                                      \
     "Redis password (AUTH) on every connect; empty: none. From a secret, never inline",           \
     &redis_config_password}
/* clang-format on */

struct redis_client;
struct redis_pipeline;

/*
 * Creates a client for host:port; host NULL means REDIS_HOST (default 127.0.0.1) and port <= 0
 * means REDIS_PORT (default 56379). Credentials as described above (copied now). Timeouts <= 0
 * take the defaults above. Connects lazily, so it never fails. Caller owns the result:
 * redis_free().
 */
struct redis_client *redis_new(const char *host, int port, int connect_timeout_ms,
                               int command_timeout_ms);
void redis_free(struct redis_client *r);

/* "host:port" of the client, owned by r. */
const char *redis_address(const struct redis_client *r);

/*
 * Connects now if not connected and not backing off. TP_OK when connected, TP_RETRY otherwise.
 * Useful for a health check; other calls connect by themselves.
 */
enum tp_status redis_connect(struct redis_client *r, struct tp_error *err) TP_MUST_CHECK;

/* True when a connection is open (no network round trip). */
bool redis_connected(struct redis_client *r);

/*
 * Runs one command given as a hiredis format string ("SET %s %lld", key, value; "%b" takes a
 * pointer and a size_t length). On TP_OK *reply (if reply is non-NULL) is the reply, owned by
 * the caller: freeReplyObject(). Statuses: TP_RETRY (not connected, backing off, timeout, I/O
 * error: the connection is dropped and backoff starts), TP_INVALID (Redis answered with an error
 * reply, e.g. WRONGTYPE; the connection stays usable).
 */
enum tp_status redis_command(struct redis_client *r, redisReply **reply, struct tp_error *err,
                             const char *fmt, ...) TP_MUST_CHECK;

/* Same with an argument vector (binary-safe; argvlen NULL means strlen of each). */
enum tp_status redis_command_argv(struct redis_client *r, int argc, const char *const *argv,
                                  const size_t *argvlen, redisReply **reply,
                                  struct tp_error *err) TP_MUST_CHECK;

/* A batch of commands formatted up front and sent in one write. Caller owns it. */
struct redis_pipeline *redis_pipeline_new(void);
void redis_pipeline_free(struct redis_pipeline *p);
/* Forgets the commands (and any replies) so the pipeline can be reused. */
void redis_pipeline_reset(struct redis_pipeline *p);

/*
 * Appends a command (hiredis format string). Returns TP_INVALID for a bad format string or when
 * REDIS_PIPELINE_MAX commands are already queued; nothing is appended then.
 */
enum tp_status redis_pipeline_add(struct redis_pipeline *p, const char *fmt, ...) TP_MUST_CHECK;
enum tp_status redis_pipeline_add_argv(struct redis_pipeline *p, int argc, const char *const *argv,
                                       const size_t *argvlen) TP_MUST_CHECK;
size_t redis_pipeline_len(const struct redis_pipeline *p);

/*
 * Sends every queued command and reads every reply, bounded by the command timeout per read.
 * TP_OK: all replies read and none is an error reply. TP_INVALID: all read, at least one is an
 * error reply (the first is named in err). TP_RETRY: transport failure (nothing is known about
 * which commands ran; the connection is dropped and backoff starts). The replies stay in p until
 * reset or free: redis_pipeline_reply(p, i) (NULL when not read).
 */
enum tp_status redis_pipeline_exec(struct redis_client *r, struct redis_pipeline *p,
                                   struct tp_error *err) TP_MUST_CHECK;
const redisReply *redis_pipeline_reply(const struct redis_pipeline *p, size_t i);

#endif
