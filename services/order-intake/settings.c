/* order-intake's configuration table: environment variables, defaults, bounds, meaning. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "intake.h"
#include "topup/config.h"
#include "topup/money.h"
#include "topup/redis.h"

#ifndef INTAKE_SOURCE_WEB_DIR
#define INTAKE_SOURCE_WEB_DIR "web"
#endif

static struct intake_settings settings_tmp;

/* The one table: config_load reads it, `order-intake --help-config` and the README print it. */
static const struct config_def settings_defs[] = {
    {"INTAKE_HTTP_ADDR", CONFIG_STR, "127.0.0.1", 0, 64, "address to listen on (IPv4 or IPv6)",
     &settings_tmp.http_addr},
    {"INTAKE_HTTP_PORT", CONFIG_INT, "8080", 0, 65535, "port to listen on; 0 picks a free one",
     &settings_tmp.http_port},
    {"INTAKE_PORT_FILE", CONFIG_STR, "", 0, 4096,
     "if set, the bound port is written to this file once listening (tests, supervisors)",
     &settings_tmp.port_file},
    {"INTAKE_THREADS", CONFIG_INT, "2", 1, 64,
     "HTTP threads (each an epoll loop; handlers never block)", &settings_tmp.threads},
    {"INTAKE_PG_CONNS", CONFIG_INT, "4", 1, 64, "database workers, one PostgreSQL connection each",
     &settings_tmp.pg_conns},
    {"INTAKE_QUEUE_MAX", CONFIG_INT, "2048", 1, 1000000,
     "requests waiting for a database worker; beyond it: 503 unavailable", &settings_tmp.queue_max},
    {"INTAKE_BATCH_MAX", CONFIG_INT, "64", 1, 1000,
     "order creations committed together in one transaction (group commit)",
     &settings_tmp.batch_max},
    {"INTAKE_MAX_BODY_BYTES", CONFIG_INT, "16384", 1024, 1048576,
     "largest request body; beyond it: 413 body_too_large", &settings_tmp.max_body_bytes},
    {"INTAKE_CONNECTIONS_MAX", CONFIG_INT, "1024", 16, 65536,
     "open HTTP connections in all; further ones are closed at accept",
     &settings_tmp.connections_max},
    {"INTAKE_PER_IP_CONNECTIONS_MAX", CONFIG_INT, "64", 1, 65536,
     "open HTTP connections from one client address; further ones are closed at accept (behind a "
     "TLS terminator all come from its address: raise it to INTAKE_CONNECTIONS_MAX there and "
     "limit per client in the terminator)",
     &settings_tmp.per_ip_connections_max},
    {"INTAKE_IDLE_TIMEOUT_S", CONFIG_INT, "10", 1, 3600,
     "a connection that sends nothing this long is closed", &settings_tmp.idle_timeout_s},
    {"INTAKE_HEADER_TIMEOUT_S", CONFIG_INT, "10", 1, 3600,
     "request line and headers must be complete this long after the connection opened (or its "
     "previous answer), however slowly they trickle in; else the connection is closed",
     &settings_tmp.header_timeout_s},
    {"INTAKE_BODY_TIMEOUT_S", CONFIG_INT, "30", 1, 3600,
     "a request body must be complete this long after its headers, however slowly it trickles "
     "in; else the connection is closed without an answer",
     &settings_tmp.body_timeout_s},
    {"INTAKE_MIN_AMOUNT_FEN", CONFIG_INT, "5000", 1, 100000000000000,
     "smallest order amount in fen (5000 = 50.00 CNY)", &settings_tmp.min_amount_fen},
    {"INTAKE_MAX_AMOUNT_FEN", CONFIG_INT, "100000000", 1, 100000000000000,
     "largest order amount in fen (100000000 = 1,000,000.00 CNY)", &settings_tmp.max_amount_fen},
    {"INTAKE_ORDER_TTL_S", CONFIG_INT, "259200", 1, 2592000,
     "order window: a pending order expires this long after creation (259200 = 72 h)",
     &settings_tmp.order_ttl_s},
    {"INTAKE_EXPIRY_SWEEP_MS", CONFIG_INT, "10000", 100, 3600000, "how often the expiry sweep runs",
     &settings_tmp.expiry_sweep_ms},
    {"INTAKE_EXPIRY_BATCH_MAX", CONFIG_INT, "500", 1, 10000,
     "orders expired per transaction of the sweep", &settings_tmp.expiry_batch_max},
    {"INTAKE_PAYEE_BANK_NAME", CONFIG_STR, "招商银行上海分行", 0, 200,
     "payee bank shown with every order", &settings_tmp.payee_bank_name},
    {"INTAKE_PAYEE_ACCOUNT_NAME", CONFIG_STR, "上海无量智能科技有限公司", 0, 200,
     "payee account name shown with every order", &settings_tmp.payee_account_name},
    {"INTAKE_PAYEE_ACCOUNT_NUMBER", CONFIG_STR, "1219 0951 0710 001", 0, 64,
     "payee account number shown with every order (the reconciliation worker's receiving account, "
     "spaces aside)",
     &settings_tmp.payee_account_number},
    {"INTAKE_PRESET_AMOUNTS", CONFIG_STR, "50,100,500,1000", 1, 200,
     "preset amounts the page offers, CNY, comma-separated, ascending (at most 8; each within "
     "the minimum and maximum)",
     &settings_tmp.preset_amounts},
    {"INTAKE_SUPPORT_URL", CONFIG_STR, "mailto:support@wuliang.example?subject=Top-up%20{code}", 0,
     1024,
     "where the page sends a user whose payment needs support; {code} becomes the order's "
     "reference code (else the page adds ?order=CODE)",
     &settings_tmp.support_url},
    {"INTAKE_WEB_DIR", CONFIG_STR, INTAKE_SOURCE_WEB_DIR, 0, 4096,
     "static files of the Top Up page, served at /", &settings_tmp.web_dir},
    {"INTAKE_OUTBOX_POLL_MS", CONFIG_INT, "1000", 10, 60000,
     "outbox relay poll interval besides LISTEN/NOTIFY", &settings_tmp.outbox_poll_ms},
    {"INTAKE_SHUTDOWN_GRACE_MS", CONFIG_INT, "10000", 0, 600000,
     "on SIGTERM, how long in-flight requests may take to be answered",
     &settings_tmp.shutdown_grace_ms},
    {"TOKEN_SECRET", CONFIG_STR, NULL, 0, 4096,
     "bearer-token signing secret, at least 32 bytes; no default (the local stack generates one)",
     &settings_tmp.token_secret},
    {"INTAKE_CURSOR_SECRET", CONFIG_STR, "", 0, 4096,
     "key of the list cursors' HMAC-SHA256, at least 32 bytes, the same on every instance; empty: "
     "derived from TOKEN_SECRET. Changing it makes outstanding cursors 400 invalid_cursor",
     &settings_tmp.cursor_secret},
    {"PG_CONNINFO", CONFIG_STR, "host=127.0.0.1 port=55432 dbname=topup user=topup", 0, 4096,
     "libpq connection string or URI", &settings_tmp.pg_conninfo},
    {"REDIS_HOST", CONFIG_STR, "127.0.0.1", 0, 255, "Redis host (monitoring counters)",
     &settings_tmp.redis_host},
    {"REDIS_PORT", CONFIG_INT, "56379", 1, 65535, "Redis port", &settings_tmp.redis_port},
    REDIS_AUTH_CONFIG_ROWS,
    {0},
};

/* INTAKE_PRESET_AMOUNTS: "50,100,500" (API amount syntax each), ascending, within min..max. */
static enum tp_status settings_parse_presets(struct intake_settings *s, struct tp_error *err)
{
    char item[MONEY_STR_MAX + 1];
    const char *p = s->preset_amounts;
    s->presets_n = 0;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if (n == 0 || n > MONEY_STR_MAX) {
            return error_set(err, TP_INVALID, "INTAKE_PRESET_AMOUNTS: an empty or too long item");
        }
        memcpy(item, p, n);
        item[n] = '\0';
        int64_t fen = 0;
        struct tp_error e = {0};
        if (money_parse(item, &fen, &e) != TP_OK) {
            return error_set(err, TP_INVALID, "INTAKE_PRESET_AMOUNTS: \"%s\" is not an amount",
                             item);
        }
        if (fen < s->min_amount_fen || fen > s->max_amount_fen) {
            return error_set(err, TP_INVALID,
                             "INTAKE_PRESET_AMOUNTS: %s is outside INTAKE_MIN_AMOUNT_FEN.."
                             "INTAKE_MAX_AMOUNT_FEN",
                             item);
        }
        if (s->presets_n == SETTINGS_PRESETS_MAX) {
            return error_set(err, TP_INVALID, "INTAKE_PRESET_AMOUNTS: more than %d amounts",
                             SETTINGS_PRESETS_MAX);
        }
        if (s->presets_n > 0 && fen <= s->presets_fen[s->presets_n - 1]) {
            return error_set(err, TP_INVALID, "INTAKE_PRESET_AMOUNTS: not ascending at %s", item);
        }
        s->presets_fen[s->presets_n++] = fen;
        p += n;
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                return error_set(err, TP_INVALID, "INTAKE_PRESET_AMOUNTS: ends with a comma");
            }
        }
    }
    return TP_OK;
}

enum tp_status settings_load(struct intake_settings *s, struct tp_error *err)
{
    memset(&settings_tmp, 0, sizeof(settings_tmp));
    enum tp_status st = config_load(settings_defs, err);
    if (st != TP_OK) {
        return st;
    }
    if (strlen(settings_tmp.token_secret) < TOKEN_SECRET_MIN_BYTES) {
        return error_set(err, TP_INVALID, "TOKEN_SECRET must be at least %d bytes",
                         TOKEN_SECRET_MIN_BYTES);
    }
    if (settings_tmp.min_amount_fen > settings_tmp.max_amount_fen) {
        return error_set(err, TP_INVALID,
                         "INTAKE_MIN_AMOUNT_FEN (%" PRId64
                         ") is above INTAKE_MAX_AMOUNT_FEN (%" PRId64 ")",
                         settings_tmp.min_amount_fen, settings_tmp.max_amount_fen);
    }
    const char *cs = settings_tmp.cursor_secret;
    if (cs[0] != '\0' && strlen(cs) < TOKEN_SECRET_MIN_BYTES) {
        return error_set(err, TP_INVALID, "INTAKE_CURSOR_SECRET must be empty or at least %d bytes",
                         TOKEN_SECRET_MIN_BYTES);
    }
    cs = cs[0] != '\0' ? cs : settings_tmp.token_secret;
    validate_cursor_key(cs, strlen(cs), settings_tmp.cursor_key);
    st = settings_parse_presets(&settings_tmp, err);
    if (st != TP_OK) {
        return st;
    }
    *s = settings_tmp;
    return TP_OK;
}

void settings_print_table(void)
{
    config_print_table(settings_defs, stdout);
    printf("| `KAFKA_*` | | | passed to librdkafka for the outbox relay's producer, e.g. "
           "`KAFKA_BOOTSTRAP_SERVERS` -> `bootstrap.servers` |\n");
    printf("| `LOG_LEVEL` | `info` | debug/info/warn/error | log threshold |\n");
}
