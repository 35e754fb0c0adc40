/*
 * A test's own 3-node Apache Kafka cluster (deploy/local/kafka-cluster.sh): start, faults on its
 * nodes, and what its metadata says (partition leaders, in-sync replicas).
 */
#include "testlib.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A cold start of three JVMs on a loaded 2-core machine; a node's restart; metadata. */
#define TL_KC_START_MS 400000
#define TL_KC_CMD_MS   300000
#define TL_KC_META_MS  10000

static char tl_kc_dir[TL_PATH_MAX];
/* The metadata client of tl_kafka_leader and tl_kafka_under_replicated (made on first use). */
static rd_kafka_t *tl_kc_rk;

static int tl_kc_run(const char *cmd, const char *node, char **out)
{
    char script[TL_PATH_MAX], e_dir[TL_PATH_MAX + 32];
    snprintf(script, sizeof(script), "%s/deploy/local/kafka-cluster.sh",
             tl_env("TOPUP_SOURCE_DIR"));
    snprintf(e_dir, sizeof(e_dir), "TOPUP_KCLUSTER_DIR=%s", tl_kc_dir);
    const char *envs[] = {e_dir, NULL};
    const char *argv[] = {"/bin/bash", script, cmd, node, NULL};
    return tl_run("kcluster", argv, envs, out,
                  strcmp(cmd, "start") == 0 ? TL_KC_START_MS : TL_KC_CMD_MS);
}

void tl_kcluster_start(const char *dir)
{
    snprintf(tl_kc_dir, sizeof(tl_kc_dir), "%s", dir);
    char *out = NULL;
    int rc = tl_kc_run("start", NULL, &out);
    TL_CHECK_MSG(rc == 0, "kafka-cluster.sh start in %s failed (exit %d); see %s/kcluster.log", dir,
                 rc, tl_logdir());
    free(out);
    char env_file[TL_PATH_MAX];
    snprintf(env_file, sizeof(env_file), "%s/env", dir);
    char *env = tl_read_file(env_file, NULL);
    TL_CHECK_MSG(env != NULL, "no %s", env_file);
    /* The script writes these unquoted (addresses and words). */
    static const char *const vars[] = {"KAFKA_BOOTSTRAP_SERVERS", "TOPUP_KAFKA",
                                       "TOPUP_KCLUSTER_NET", NULL};
    for (char *line = strtok(env, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (strncmp(line, "export ", 7) != 0 || eq == NULL) {
            continue;
        }
        *eq = '\0';
        for (int i = 0; vars[i] != NULL; i++) {
            if (strcmp(line + 7, vars[i]) == 0) {
                setenv(vars[i], eq + 1, 1);
            }
        }
    }
    TL_CHECK_MSG(getenv("KAFKA_BOOTSTRAP_SERVERS") != NULL &&
                     strchr(getenv("KAFKA_BOOTSTRAP_SERVERS"), ':') != NULL,
                 "%s names no bootstrap servers", env_file);
    free(env);
    /* No dev broker: a test that tried its control channel would fail loudly. */
    unsetenv("DEVBROKER_CONTROL");
    tl_step("private 3-node Kafka cluster in %s (%s): %s", dir, getenv("TOPUP_KCLUSTER_NET"),
            getenv("KAFKA_BOOTSTRAP_SERVERS"));
}

void tl_kcluster_stop(void)
{
    if (tl_kc_dir[0] == '\0') {
        return;
    }
    /* No client of ours may keep dialling the nodes' addresses once they are gone. */
    if (tl_kc_rk != NULL) {
        rd_kafka_destroy(tl_kc_rk);
        tl_kc_rk = NULL;
    }
    /* system(), not tl_run: this runs from atexit, also after tl_fail. */
    char cmd[TL_PATH_MAX * 2 + 128];
    snprintf(cmd, sizeof(cmd),
             "TOPUP_KCLUSTER_DIR='%s' bash '%s/deploy/local/kafka-cluster.sh' stop >/dev/null 2>&1",
             tl_kc_dir, getenv("TOPUP_SOURCE_DIR"));
    if (system(cmd) != 0) {
        fprintf(stderr, "kcluster: could not stop the cluster in %s\n", tl_kc_dir);
    }
    tl_kc_dir[0] = '\0';
}

int tl_kcluster(const char *cmd, int node)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", node);
    char *out = NULL;
    int rc = tl_kc_run(cmd, node > 0 ? n : NULL, &out);
    free(out);
    return rc;
}

int tl_kcluster_controller(void)
{
    char *out = NULL;
    int rc = tl_kc_run("controller", NULL, &out);
    int id = rc == 0 && out != NULL ? atoi(out) : -1;
    free(out);
    return id;
}

static rd_kafka_t *tl_kc_meta_handle(void)
{
    if (tl_kc_rk != NULL) {
        return tl_kc_rk;
    }
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", tl_env("KAFKA_BOOTSTRAP_SERVERS"), errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        tl_fail("metadata client: %s", errstr);
    }
    tl_kc_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    TL_CHECK_MSG(tl_kc_rk != NULL, "metadata client: %s", errstr);
    return tl_kc_rk;
}

int tl_kafka_leader(const char *topic, int partition)
{
    rd_kafka_t *rk = tl_kc_meta_handle();
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int leader = -1;
    if (rd_kafka_metadata(rk, 0, t, &md, TL_KC_META_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < md->topic_cnt; i++) {
            for (int p = 0; p < md->topics[i].partition_cnt; p++) {
                if (md->topics[i].partitions[p].id == partition) {
                    leader = md->topics[i].partitions[p].leader;
                }
            }
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(t);
    return leader;
}

int tl_kafka_under_replicated(int replicas)
{
    rd_kafka_t *rk = tl_kc_meta_handle();
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, TL_KC_META_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return -1;
    }
    int bad = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        for (int p = 0; p < md->topics[i].partition_cnt; p++) {
            const rd_kafka_metadata_partition_t *mp = &md->topics[i].partitions[p];
            if (mp->leader < 0 || mp->isr_cnt < replicas) {
                bad++;
            }
        }
    }
    if (md->broker_cnt < replicas) {
        bad++;
    }
    rd_kafka_metadata_destroy(md);
    return bad;
}

/* ------------------------------------------------------------------ one private Kafka node */

static char tl_pk_dir[TL_PATH_MAX];

static void tl_kafka_private_stop(void)
{
    if (tl_pk_dir[0] == '\0') {
        return;
    }
    char cmd[TL_PATH_MAX * 2 + 160];
    snprintf(cmd, sizeof(cmd),
             "TOPUP_STACK_DIR='%s' TOPUP_KAFKA=kafka bash '%s/deploy/local/stack.sh' stop broker "
             ">/dev/null 2>&1",
             tl_pk_dir, getenv("TOPUP_SOURCE_DIR"));
    if (system(cmd) != 0) {
        fprintf(stderr, "kafka: could not stop the private broker in %s\n", tl_pk_dir);
    }
    tl_pk_dir[0] = '\0';
}

void tl_kafka_private_start(void)
{
    snprintf(tl_pk_dir, sizeof(tl_pk_dir), "%s/kafka-stack", tl_logdir());
    char e_dir[TL_PATH_MAX + 32], e_build[TL_PATH_MAX + 32], script[TL_PATH_MAX];
    snprintf(e_dir, sizeof(e_dir), "TOPUP_STACK_DIR=%s", tl_pk_dir);
    snprintf(e_build, sizeof(e_build), "TOPUP_BUILD_DIR=%s", tl_env("TOPUP_BUILD_DIR"));
    snprintf(script, sizeof(script), "%s/deploy/local/stack.sh", tl_env("TOPUP_SOURCE_DIR"));
    const char *envs[] = {
        e_dir, e_build, "TOPUP_STACK_PORTS=free", "TOPUP_KAFKA=kafka", "TOPUP_KAFKA_HEAP=256m",
        NULL};
    const char *argv[] = {"/bin/bash", script, "start", "broker", NULL};
    atexit(tl_kafka_private_stop);
    int64_t t0 = tl_now_ms();
    int rc = tl_run("kafka-stack", argv, envs, NULL, TL_KC_START_MS);
    TL_CHECK_MSG(rc == 0, "stack.sh start broker in %s failed (exit %d); see %s/kafka-stack.log",
                 tl_pk_dir, rc, tl_logdir());
    char bs_file[TL_PATH_MAX + 32];
    snprintf(bs_file, sizeof(bs_file), "%s/kafka/bootstrap", tl_pk_dir);
    char *bs = tl_read_file(bs_file, NULL);
    TL_CHECK_MSG(bs != NULL && strchr(bs, ':') != NULL, "no bootstrap address in %s", bs_file);
    bs[strcspn(bs, "\r\n")] = '\0';
    setenv("KAFKA_BOOTSTRAP_SERVERS", bs, 1);
    setenv("TOPUP_KAFKA", "kafka", 1);
    unsetenv("DEVBROKER_CONTROL");
    tl_step("private Apache Kafka broker (one KRaft node) at %s, started in %.1f s", bs,
            (double)(tl_now_ms() - t0) / 1000.0);
    free(bs);
}
