/* topup-devbroker: a Kafka-protocol broker for development and tests on librdkafka's mock cluster.
 */
#include "devbroker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "topup/config.h"
#include "topup/log.h"
#include "topup/signals.h"

/* How often the main loop looks at the stop flag while no control client talks. */
#define MAIN_POLL_MS 250

static int64_t main_brokers;
static int64_t main_partitions;
static const char *main_topic_partitions;
static const char *main_bootstrap_file;
static const char *main_control_listen;
static const char *main_control_file;
static const char *main_log_level;

static const struct config_def main_config[] = {
    {"DEVBROKER_BROKERS", CONFIG_INT, "1", 1, DEVBROKER_BROKERS_MAX,
     "number of mock brokers (ids 1..N); chaos tests use 3", &main_brokers},
    {"DEVBROKER_PARTITIONS", CONFIG_INT, "4", 1, DEVBROKER_PARTITIONS_MAX,
     "partitions of every topic without an override", &main_partitions},
    {"DEVBROKER_TOPIC_PARTITIONS", CONFIG_STR, "", 0, 4000,
     "per-topic partitions, e.g. `usage.recorded=16,payment.matched=8`; unknown names are "
     "created too",
     &main_topic_partitions},
    {"DEVBROKER_BOOTSTRAP_FILE", CONFIG_STR, "", 0, 4000,
     "file that receives the bootstrap address once every topic exists (empty: none)",
     &main_bootstrap_file},
    {"DEVBROKER_CONTROL_LISTEN", CONFIG_STR, "127.0.0.1:0", 0, 64,
     "control channel address, loopback ip:port (port 0 picks a free one)", &main_control_listen},
    {"DEVBROKER_CONTROL_FILE", CONFIG_STR, "", 0, 4000,
     "file that receives the control channel's ip:port (empty: none)", &main_control_file},
    {"LOG_LEVEL", CONFIG_STR, "info", 0, 16, "debug, info, warn or error", &main_log_level},
    {0},
};

/* Command-line flags are another way to set the table's variables. */
static const struct {
    const char *flag;
    const char *env;
} main_flags[] = {
    {"--brokers", "DEVBROKER_BROKERS"},
    {"--partitions", "DEVBROKER_PARTITIONS"},
    {"--topic-partitions", "DEVBROKER_TOPIC_PARTITIONS"},
    {"--bootstrap-file", "DEVBROKER_BOOTSTRAP_FILE"},
    {"--control", "DEVBROKER_CONTROL_LISTEN"},
    {"--control-file", "DEVBROKER_CONTROL_FILE"},
};

static void main_usage(FILE *out)
{
    fprintf(out,
            "usage: topup-devbroker [--brokers N] [--partitions N] [--topic-partitions T=N,...]\n"
            "                       [--bootstrap-file PATH] [--control IP:PORT]"
            " [--control-file PATH]\n"
            "       topup-devbroker ctl [--socket IP:PORT] COMMAND [ARGS...]\n"
            "       topup-devbroker --help-config\n"
            "Runs a Kafka-protocol mock cluster on loopback until SIGTERM or SIGINT.\n");
}

/* Returns 0 to go on, 1 to exit 0 (help printed), 2 on a usage error. */
static int main_parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            main_usage(stdout);
            return 1;
        }
        if (strcmp(argv[i], "--help-config") == 0) {
            config_print_table(main_config, stdout);
            return 1;
        }
        int known = 0;
        for (size_t f = 0; f < sizeof(main_flags) / sizeof(main_flags[0]); f++) {
            if (strcmp(argv[i], main_flags[f].flag) == 0 && i + 1 < argc) {
                setenv(main_flags[f].env, argv[++i], 1);
                known = 1;
                break;
            }
        }
        if (!known) {
            fprintf(stderr, "topup-devbroker: unknown or incomplete option %s\n", argv[i]);
            main_usage(stderr);
            return 2;
        }
    }
    return 0;
}

/* Writes content + "\n" to path through a temporary file and rename, so readers never see half. */
static enum tp_status main_write_file(const char *path, const char *content, struct tp_error *err)
{
    enum tp_status st = TP_OK;
    char tmp[4096 + 16];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return error_set(err, TP_FATAL, "open %s: %s", tmp, strerror(errno));
    }
    int bad = fprintf(f, "%s\n", content) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        st = error_set(err, TP_FATAL, "write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    return st;
}

static enum tp_status main_run(struct devbroker *db, struct tp_error *err)
{
    struct control_server *cs = NULL;
    char control_addr[64];
    enum tp_status st = cluster_plan_topics(db, main_topic_partitions, err);
    if (st == TP_OK) {
        st = cluster_start(db, err);
    }
    if (st == TP_OK) {
        st = control_server_new(main_control_listen, &cs, control_addr, sizeof(control_addr), err);
    }
    if (st == TP_OK && main_control_file[0] != '\0') {
        st = main_write_file(main_control_file, control_addr, err);
    }
    /* The bootstrap file comes last: its appearance tells scripts that everything is ready. */
    if (st == TP_OK && main_bootstrap_file[0] != '\0') {
        st = main_write_file(main_bootstrap_file, db->bootstrap, err);
    }
    if (st != TP_OK) {
        goto out;
    }
    log_info("dev broker ready", LF_S("bootstrap", db->bootstrap), LF_S("control", control_addr),
             LF_I("brokers", db->broker_cnt), LF_I("topics", db->topic_cnt),
             LF_I("partitions_default", db->partitions_default));
    while (!signals_stop_requested()) {
        control_server_poll(cs, db, MAIN_POLL_MS);
    }
    log_info("dev broker stopping");
    /* Stale address files would send the next reader to a dead port. */
    if (main_bootstrap_file[0] != '\0') {
        unlink(main_bootstrap_file);
    }
    if (main_control_file[0] != '\0') {
        unlink(main_control_file);
    }
out:
    control_server_free(cs);
    cluster_stop(db);
    return st;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "ctl") == 0) {
        return ctl_main(argc - 1, argv + 1);
    }
    int rc = main_parse_args(argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    log_init("dev-broker");
    signals_install();
    struct tp_error err = {0};
    static struct devbroker db;
    if (config_load(main_config, &err) != TP_OK) {
        log_error("bad configuration", LF_S("error", err.msg));
        return 2;
    }
    db.broker_cnt = (int)main_brokers;
    db.partitions_default = (int)main_partitions;
    if (main_run(&db, &err) != TP_OK) {
        log_error("dev broker failed", LF_S("error", err.msg));
        return 1;
    }
    log_info("dev broker stopped");
    return 0;
}
