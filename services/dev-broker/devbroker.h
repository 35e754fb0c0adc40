/* The dev broker's state and the interfaces between its files (cluster, control, ctl client). */
#ifndef DEVBROKER_H
#define DEVBROKER_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "topup/error.h"

#define DEVBROKER_BROKERS_MAX    16
#define DEVBROKER_PARTITIONS_MAX 1024
/* Built-in topics, their .dlq twins and any extra topics named in the overrides. */
#define DEVBROKER_TOPICS_MAX     64
#define DEVBROKER_TOPIC_NAME_MAX 200
/* Lines of the control protocol, both ways; a longer request is refused and the client dropped. */
#define CONTROL_LINE_MAX 1024

struct devbroker_topic {
    char name[DEVBROKER_TOPIC_NAME_MAX + 1];
    int partitions;
};

/* One mock cluster and what it was asked to hold. */
struct devbroker {
    int broker_cnt;
    int partitions_default;
    struct devbroker_topic topics[DEVBROKER_TOPICS_MAX];
    int topic_cnt;
    rd_kafka_t *rk;                    /* owns the mock cluster's bookkeeping */
    rd_kafka_mock_cluster_t *mcluster; /* thread-safe API: control calls it from the main thread */
    const char *bootstrap;             /* owned by mcluster */
};

/*
 * Fills db->topics with every built-in topic and its .dlq twin at db->partitions_default, then
 * applies overrides "topic=N,topic=N" (an unknown topic is added). TP_INVALID on a bad list.
 */
enum tp_status cluster_plan_topics(struct devbroker *db, const char *overrides,
                                   struct tp_error *err) TP_MUST_CHECK;

/* Creates the mock cluster and every planned topic, then checks them through a real client. */
enum tp_status cluster_start(struct devbroker *db, struct tp_error *err) TP_MUST_CHECK;

/* Destroys the mock cluster; clients see their connections close. Safe on a failed start. */
void cluster_stop(struct devbroker *db);

/*
 * Executes one control command line against the cluster and writes a one-line reply ("ok ..." or
 * "err ...", no newline) into reply. line is modified (tokenised).
 */
void control_exec(struct devbroker *db, char *line, char *reply, size_t reply_len);

struct control_server;

/*
 * Listens on addr ("127.0.0.1:PORT", port 0 picks a free one; loopback only). Returns a server the
 * caller owns (control_server_free) and writes the bound "ip:port" into bound.
 */
enum tp_status control_server_new(const char *addr, struct control_server **out, char *bound,
                                  size_t bound_len, struct tp_error *err) TP_MUST_CHECK;

/* Accepts clients and serves complete lines for up to timeout_ms; returns early on a signal. */
void control_server_poll(struct control_server *cs, struct devbroker *db, int timeout_ms);

void control_server_free(struct control_server *cs);

/* Parses "ip:port" (IPv4 loopback only) into a sockaddr; TP_INVALID otherwise. */
struct sockaddr_in;
enum tp_status control_parse_addr(const char *addr, struct sockaddr_in *sin,
                                  struct tp_error *err) TP_MUST_CHECK;

/* `topup-devbroker ctl [--socket ADDR] command args...`: returns the process exit code. */
int ctl_main(int argc, char **argv);

#endif
