/* The mock cluster: creates it, creates every topic with its partition count, checks, destroys. */
#include "devbroker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topup/log.h"

/* Every topic of proto/README.md's catalogue; each also gets a .dlq twin. */
static const char *const cluster_builtin_topics[] = {
    "topup.requested", "topup.cancelled", "topup.expired", "bank.statement.records",
    "payment.matched", "usage.recorded",  "refund.issued", "account.flows",
};

#define CLUSTER_BUILTIN_CNT   (sizeof(cluster_builtin_topics) / sizeof(cluster_builtin_topics[0]))
#define CLUSTER_RF_MAX        3
#define CLUSTER_VERIFY_MS     10000
#define CLUSTER_OVERRIDES_MAX 4096

static struct devbroker_topic *cluster_find(struct devbroker *db, const char *name)
{
    for (int i = 0; i < db->topic_cnt; i++) {
        if (strcmp(db->topics[i].name, name) == 0) {
            return &db->topics[i];
        }
    }
    return NULL;
}

static enum tp_status cluster_add(struct devbroker *db, const char *name, int partitions,
                                  struct tp_error *err)
{
    struct devbroker_topic *t = cluster_find(db, name);
    if (t != NULL) {
        t->partitions = partitions;
        return TP_OK;
    }
    if (db->topic_cnt >= DEVBROKER_TOPICS_MAX) {
        return error_set(err, TP_INVALID, "more than %d topics", DEVBROKER_TOPICS_MAX);
    }
    size_t len = strlen(name);
    if (len == 0 || len > DEVBROKER_TOPIC_NAME_MAX) {
        return error_set(err, TP_INVALID, "topic name \"%s\" is empty or too long", name);
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        /* Kafka's legal topic characters. */
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return error_set(err, TP_INVALID, "topic name \"%s\" has an illegal character", name);
        }
    }
    t = &db->topics[db->topic_cnt++];
    memcpy(t->name, name, len + 1);
    t->partitions = partitions;
    return TP_OK;
}

/* Applies one "topic=N" item. */
static enum tp_status cluster_apply_override(struct devbroker *db, char *item, struct tp_error *err)
{
    char *eq = strchr(item, '=');
    if (eq == NULL) {
        return error_set(err, TP_INVALID, "topic override \"%s\" is not topic=partitions", item);
    }
    *eq = '\0';
    char *end = NULL;
    long n = strtol(eq + 1, &end, 10);
    if (end == eq + 1 || *end != '\0' || n < 1 || n > DEVBROKER_PARTITIONS_MAX) {
        return error_set(err, TP_INVALID, "topic override %s=%s: partitions must be 1..%d", item,
                         eq + 1, DEVBROKER_PARTITIONS_MAX);
    }
    return cluster_add(db, item, (int)n, err);
}

enum tp_status cluster_plan_topics(struct devbroker *db, const char *overrides,
                                   struct tp_error *err)
{
    enum tp_status st = TP_OK;
    char buf[CLUSTER_OVERRIDES_MAX];
    db->topic_cnt = 0;
    for (size_t i = 0; i < CLUSTER_BUILTIN_CNT && st == TP_OK; i++) {
        char dlq[DEVBROKER_TOPIC_NAME_MAX + 1];
        snprintf(dlq, sizeof(dlq), "%s.dlq", cluster_builtin_topics[i]);
        st = cluster_add(db, cluster_builtin_topics[i], db->partitions_default, err);
        if (st == TP_OK) {
            st = cluster_add(db, dlq, db->partitions_default, err);
        }
    }
    if (st != TP_OK || overrides == NULL || overrides[0] == '\0') {
        goto out;
    }
    if (strlen(overrides) >= sizeof(buf)) {
        st = error_set(err, TP_INVALID, "topic overrides longer than %d characters",
                       CLUSTER_OVERRIDES_MAX - 1);
        goto out;
    }
    strcpy(buf, overrides);
    char *save = NULL;
    for (char *item = strtok_r(buf, ", ", &save); item != NULL && st == TP_OK;
         item = strtok_r(NULL, ", ", &save)) {
        st = cluster_apply_override(db, item, err);
    }
out:
    return st;
}

static void cluster_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug. */
    enum log_level lvl = level <= 3   ? LOG_ERROR
                         : level == 4 ? LOG_WARN
                         : level <= 6 ? LOG_INFO
                                      : LOG_DEBUG;
    /* The bookkeeping handle has no bootstrap servers on purpose: not worth a warning. */
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "bootstrap.servers") != NULL) {
        lvl = LOG_DEBUG;
    }
    log_write(lvl, "librdkafka",
              (const struct log_field[]){LF_S("facility", fac), LF_S("detail", buf)}, 2);
}

/* Asks the cluster for its metadata like any client would, and compares it with the plan. */
static enum tp_status cluster_verify(struct devbroker *db, struct tp_error *err)
{
    enum tp_status st = TP_OK;
    char errstr[512];
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, cluster_log_cb);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", db->bootstrap, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return error_set(err, TP_FATAL, "verify client: %s", errstr);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return error_set(err, TP_FATAL, "verify client: %s", errstr);
    }
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, CLUSTER_VERIFY_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        st = error_set(err, TP_FATAL, "metadata from %s: %s", db->bootstrap, rd_kafka_err2str(e));
        goto out;
    }
    for (int i = 0; i < db->topic_cnt && st == TP_OK; i++) {
        const struct devbroker_topic *t = &db->topics[i];
        int found = 0;
        for (int j = 0; j < md->topic_cnt; j++) {
            const rd_kafka_metadata_topic_t *mt = &md->topics[j];
            if (strcmp(mt->topic, t->name) == 0 && mt->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                mt->partition_cnt == t->partitions) {
                found = 1;
            }
        }
        if (!found) {
            st = error_set(err, TP_FATAL, "topic %s with %d partitions missing from metadata",
                           t->name, t->partitions);
        }
    }
out:
    if (md != NULL) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
    return st;
}

struct cluster_create_job {
    struct devbroker *db;
    const struct devbroker_topic *topic;
    int replication_factor;
    rd_kafka_resp_err_t result;
};

static void *cluster_create_one(void *arg)
{
    struct cluster_create_job *job = arg;
    job->result = rd_kafka_mock_topic_create(job->db->mcluster, job->topic->name,
                                             job->topic->partitions, job->replication_factor);
    return NULL;
}

/*
 * Creates every planned topic. Each call waits for the mock cluster's thread, which in 2.0.2
 * sometimes notices a request only at its next 1 s tick; one after another, 16 topics took up to
 * 5 s. Issued all at once they share the wait: the ready signal comes in about a second at worst.
 */
static enum tp_status cluster_create_topics(struct devbroker *db, struct tp_error *err)
{
    enum tp_status st = TP_OK;
    struct cluster_create_job jobs[DEVBROKER_TOPICS_MAX];
    pthread_t threads[DEVBROKER_TOPICS_MAX];
    int started = 0;
    int rf = db->broker_cnt < CLUSTER_RF_MAX ? db->broker_cnt : CLUSTER_RF_MAX;
    for (int i = 0; i < db->topic_cnt; i++) {
        jobs[i] = (struct cluster_create_job){
            .db = db, .topic = &db->topics[i], .replication_factor = rf};
        if (pthread_create(&threads[i], NULL, cluster_create_one, &jobs[i]) != 0) {
            /* No thread to spare: do it here, just slower. */
            cluster_create_one(&jobs[i]);
            threads[i] = 0;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        if (threads[i] != 0) {
            pthread_join(threads[i], NULL);
        }
        if (jobs[i].result != RD_KAFKA_RESP_ERR_NO_ERROR && st == TP_OK) {
            st = error_set(err, TP_FATAL, "create topic %s: %s", jobs[i].topic->name,
                           rd_kafka_err2str(jobs[i].result));
        }
        log_debug("topic created", LF_S("topic", jobs[i].topic->name),
                  LF_I("partitions", jobs[i].topic->partitions), LF_I("replication_factor", rf));
    }
    return st;
}

enum tp_status cluster_start(struct devbroker *db, struct tp_error *err)
{
    enum tp_status st = TP_OK;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, cluster_log_cb);
    if (rd_kafka_conf_set(conf, "client.id", "topup-devbroker", errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return error_set(err, TP_FATAL, "conf: %s", errstr);
    }
    db->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (db->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return error_set(err, TP_FATAL, "rd_kafka_new: %s", errstr);
    }
    db->mcluster = rd_kafka_mock_cluster_new(db->rk, db->broker_cnt);
    if (db->mcluster == NULL) {
        st = error_set(err, TP_FATAL, "could not create a mock cluster of %d brokers",
                       db->broker_cnt);
        goto out;
    }
    db->bootstrap = rd_kafka_mock_cluster_bootstraps(db->mcluster);
    st = cluster_create_topics(db, err);
    if (st != TP_OK) {
        goto out;
    }
    st = cluster_verify(db, err);
out:
    return st;
}

void cluster_stop(struct devbroker *db)
{
    if (db->mcluster != NULL) {
        rd_kafka_mock_cluster_destroy(db->mcluster);
        db->mcluster = NULL;
        db->bootstrap = NULL;
    }
    if (db->rk != NULL) {
        rd_kafka_destroy(db->rk);
        db->rk = NULL;
    }
}
