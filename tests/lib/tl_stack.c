/* Stacks and services for the tests: private brokers and stacks, the services, the command tools.
 */
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Longest waits: a broker creating its topics, a stack starting, a command tool. */
#define TL_BROKER_START_MS 30000
#define TL_STACK_START_MS  120000
#define TL_TOOL_MS         120000
#define TL_CTL_TIMEOUT_MS  10000

/* The variables of a stack's env file that the tests and the services use. */
static const char *const tl_stack_vars[] = {
    "PG_CONNINFO",
    "REDIS_HOST",
    "REDIS_PORT",
    "KAFKA_BOOTSTRAP_SERVERS",
    "TOKEN_SECRET",
    "DEVBROKER_CONTROL",
    "TOPUP_PG_ADMIN_CONNINFO",
    "TOPUP_PG_HOST",
    "TOPUP_PG_PORT",
    "TOPUP_PG_BIN",
    "TOPUP_PG_DATA",
    "TOPUP_PG_SOCKET_DIR",
    "TOPUP_PG_OS_USER",
    "TOPUP_STACK_DIR",
    "TOPUP_STACK_SH",
    /* Set only by a stack whose Kafka authenticates (TOPUP_KAFKA_AUTH=scram); unset otherwise. */
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISMS",
    "TOPUP_KAFKA_SECRETS_DIR",
    NULL,
};

/* Variables that must be absent, not empty, when a stack does not set them (librdkafka refuses an
 * empty security.protocol). */
static bool tl_stack_var_unset_if_empty(const char *name)
{
    return strncmp(name, "KAFKA_SASL", 10) == 0 || strcmp(name, "KAFKA_SECURITY_PROTOCOL") == 0 ||
           strcmp(name, "TOPUP_KAFKA_SECRETS_DIR") == 0;
}

static void tl_trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) {
        s[--n] = '\0';
    }
}

void tl_broker_start(struct tl_broker *b, int brokers, const char *topic_partitions)
{
    memset(b, 0, sizeof(*b));
    char bs_file[TL_PATH_MAX], ctl_file[TL_PATH_MAX], nb[16];
    snprintf(bs_file, sizeof(bs_file), "%s/broker.bootstrap", tl_logdir());
    snprintf(ctl_file, sizeof(ctl_file), "%s/broker.control", tl_logdir());
    unlink(bs_file);
    unlink(ctl_file);
    snprintf(nb, sizeof(nb), "%d", brokers);
    const char *argv[12] = {
        tl_bin("topup-devbroker"), "--brokers", nb,  "--bootstrap-file", bs_file,
        "--control-file",          ctl_file,    NULL};
    if (topic_partitions != NULL) {
        argv[7] = "--topic-partitions";
        argv[8] = topic_partitions;
        argv[9] = NULL;
    }
    tl_proc_start(&b->proc, "dev-broker", argv, NULL);
    int64_t deadline = tl_now_ms() + TL_BROKER_START_MS;
    char *bs = NULL;
    while ((bs = tl_read_file(bs_file, NULL)) == NULL || bs[0] == '\0') {
        free(bs);
        bs = NULL;
        tl_proc_check_alive(&b->proc);
        TL_CHECK_MSG(tl_now_ms() < deadline, "dev broker not ready after %d ms",
                     TL_BROKER_START_MS);
        tl_sleep_ms(100);
    }
    char *ctl = tl_read_file(ctl_file, NULL);
    TL_CHECK_MSG(ctl != NULL, "dev broker wrote no control file");
    tl_trim(bs);
    tl_trim(ctl);
    snprintf(b->bootstrap, sizeof(b->bootstrap), "%s", bs);
    snprintf(b->control, sizeof(b->control), "%s", ctl);
    free(bs);
    free(ctl);
    setenv("KAFKA_BOOTSTRAP_SERVERS", b->bootstrap, 1);
    setenv("DEVBROKER_CONTROL", b->control, 1);
    /* The mock cluster authenticates no one: clients of this process speak PLAINTEXT to it. */
    unsetenv("KAFKA_SECURITY_PROTOCOL");
    unsetenv("KAFKA_SASL_MECHANISMS");
    unsetenv("KAFKA_SASL_USERNAME");
    unsetenv("KAFKA_SASL_PASSWORD_FILE");
    unsetenv("TOPUP_KAFKA_SECRETS_DIR");
    setenv("TOPUP_KAFKA", "devbroker", 1);
    tl_step("private dev broker: %d broker(s) at %s, control %s", brokers, b->bootstrap,
            b->control);
}

bool tl_broker_ctl(const char *control, const char *command, char *reply, size_t len)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", control);
    char *colon = strrchr(host, ':');
    TL_CHECK_MSG(colon != NULL, "bad control address %s", control);
    *colon = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    TL_CHECK(inet_pton(AF_INET, host, &a.sin_addr) == 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    TL_CHECK(fd >= 0);
    struct timeval tv = {TL_CTL_TIMEOUT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[1100] = "";
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        snprintf(buf, sizeof(buf), "err connect: %s", strerror(errno));
        goto out;
    }
    char line[1100];
    int n = snprintf(line, sizeof(line), "%s\n", command);
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(buf, sizeof(buf), "err send: %s", strerror(errno));
        goto out;
    }
    size_t got = 0;
    while (got < sizeof(buf) - 1 && memchr(buf, '\n', got) == NULL) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        buf[got] = '\0';
    }
    tl_trim(buf);
    ok = strncmp(buf, "ok", 2) == 0;
out:
    close(fd);
    if (reply != NULL) {
        snprintf(reply, len, "%s", buf);
    }
    return ok;
}

/* Loads a stack's env file into this process (children inherit it). */
void tl_stack_load_env(const char *dir)
{
    char env_file[TL_PATH_MAX], script[2048];
    snprintf(env_file, sizeof(env_file), "%s/env", dir);
    int n = snprintf(script, sizeof(script), ". \"$0\" || exit 1; for k in");
    for (int i = 0; tl_stack_vars[i] != NULL; i++) {
        n += snprintf(script + n, sizeof(script) - (size_t)n, " %s", tl_stack_vars[i]);
    }
    snprintf(script + n, sizeof(script) - (size_t)n,
             "; do printf '%%s=%%s\\n' \"$k\" \"${!k}\"; done");
    const char *argv[] = {"/bin/bash", "-c", script, env_file, NULL};
    char *out = NULL;
    int rc = tl_run("stack", argv, NULL, &out, TL_TOOL_MS);
    TL_CHECK_MSG(rc == 0, "cannot read %s", env_file);
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (eq != NULL) {
            *eq = '\0';
            if (eq[1] == '\0' && tl_stack_var_unset_if_empty(line)) {
                unsetenv(line);
            } else {
                setenv(line, eq + 1, 1);
            }
        }
    }
    free(out);
}

static const char *tl_stack_script(void)
{
    static char path[TL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/deploy/local/stack.sh", tl_env("TOPUP_SOURCE_DIR"));
    return path;
}

void tl_stack_start(const char *dir, const char *const *env)
{
    char e_dir[TL_PATH_MAX + 32], e_build[TL_PATH_MAX + 32];
    snprintf(e_dir, sizeof(e_dir), "TOPUP_STACK_DIR=%s", dir);
    snprintf(e_build, sizeof(e_build), "TOPUP_BUILD_DIR=%s", tl_env("TOPUP_BUILD_DIR"));
    /* The system tests inject broker faults through the dev broker's control channel, unless the
     * caller names the broker (TOPUP_KAFKA=kafka in env). */
    const char *envs[24] = {e_dir, e_build, "TOPUP_STACK_PORTS=free", "TOPUP_KAFKA=devbroker"};
    int k = 4;
    for (int i = 0; env != NULL && env[i] != NULL && k < 23; i++) {
        if (strncmp(env[i], "TOPUP_KAFKA=", 12) == 0) {
            envs[3] = env[i];
        } else {
            envs[k++] = env[i];
        }
    }
    envs[k] = NULL;
    const char *argv[] = {"/bin/bash", tl_stack_script(), "start", NULL};
    int rc = tl_run("stack", argv, envs, NULL, TL_STACK_START_MS);
    TL_CHECK_MSG(rc == 0, "stack.sh start in %s failed (exit %d); see %s/stack.log", dir, rc,
                 tl_logdir());
    tl_stack_load_env(dir);
    tl_step("private stack in %s: PostgreSQL %s, Redis %s, broker %s", dir, getenv("TOPUP_PG_PORT"),
            getenv("REDIS_PORT"), getenv("KAFKA_BOOTSTRAP_SERVERS"));
}

int tl_stack_sh(const char *dir, const char *cmd, const char *piece)
{
    char e_dir[TL_PATH_MAX + 32], e_build[TL_PATH_MAX + 32];
    snprintf(e_dir, sizeof(e_dir), "TOPUP_STACK_DIR=%s", dir);
    snprintf(e_build, sizeof(e_build), "TOPUP_BUILD_DIR=%s", tl_env("TOPUP_BUILD_DIR"));
    const char *envs[] = {e_dir, e_build, "TOPUP_STACK_PORTS=free", "TOPUP_KAFKA=devbroker", NULL};
    const char *argv[] = {"/bin/bash", tl_stack_script(), cmd, piece, NULL};
    return tl_run("stack", argv, envs, NULL, TL_STACK_START_MS);
}

void tl_intake_start(struct tl_intake *in, const char *const *env)
{
    in->port = tl_free_port();
    char port_env[64];
    snprintf(port_env, sizeof(port_env), "INTAKE_HTTP_PORT=%d", in->port);
    const char *envs[TL_PROC_ENV_MAX + 1] = {port_env};
    int k = 1;
    for (int i = 0; env != NULL && env[i] != NULL; i++) {
        TL_CHECK(k < TL_PROC_ENV_MAX);
        envs[k++] = env[i];
    }
    envs[k] = NULL;
    const char *argv[] = {tl_bin("order-intake"), NULL};
    tl_proc_start(&in->proc, "order-intake", argv, envs);
    tl_intake_wait_ready(in, 30000);
}

void tl_intake_wait_ready(struct tl_intake *in, int timeout_ms)
{
    int64_t deadline = tl_now_ms() + timeout_ms;
    for (;;) {
        struct tl_http_resp r;
        int st = tl_http(in->port, "GET", "/healthz", NULL, NULL, NULL, &r, 2000);
        tl_http_free(&r);
        if (st == 200) {
            return;
        }
        tl_proc_check_alive(&in->proc);
        TL_CHECK_MSG(tl_now_ms() < deadline, "order-intake not healthy after %d ms (port %d)",
                     timeout_ms, in->port);
        tl_sleep_ms(100);
    }
}

void tl_worker_start(struct tl_proc *p, const char *service, const char *name,
                     const char *const *env)
{
    const char *argv[] = {tl_bin(service), NULL};
    tl_proc_start(p, name, argv, env);
}

char *tl_token(const char *account)
{
    const char *argv[] = {
        tl_bin("topupctl"), "token", "issue", "--account", account, "--ttl", "24h", NULL};
    char *out = NULL;
    int rc = tl_run("topupctl", argv, NULL, &out, TL_TOOL_MS);
    TL_CHECK_MSG(rc == 0, "topupctl token issue --account %s: exit %d", account, rc);
    tl_trim(out);
    TL_CHECK_MSG(out[0] != '\0', "topupctl token issue printed nothing");
    return out;
}

int tl_verify(char **out)
{
    const char *argv[] = {tl_bin("topupctl"), "verify", NULL};
    return tl_run("topupctl", argv, NULL, out, TL_TOOL_MS);
}

void tl_payer_add(const char *account, const char *name)
{
    const char *argv[] = {tl_bin("topupctl"),
                          "payers",
                          "add",
                          account,
                          name,
                          "--by",
                          "tests",
                          "--reason",
                          "test: the account owns this payer name",
                          NULL};
    char *out = NULL;
    int rc = tl_run("topupctl", argv, NULL, &out, TL_TOOL_MS);
    TL_CHECK_MSG(rc == 0, "topupctl payers add %s %s: exit %d: %s", account, name, rc,
                 out != NULL ? out : "");
    free(out);
}

int tl_import(const char *file, const char *const *args, char **out)
{
    const char *argv[TL_PROC_ARGS_MAX + 1] = {tl_bin("statement-import")};
    int k = 1;
    for (int i = 0; args != NULL && args[i] != NULL; i++) {
        TL_CHECK(k < TL_PROC_ARGS_MAX - 1);
        argv[k++] = args[i];
    }
    argv[k++] = file;
    argv[k] = NULL;
    return tl_run("statement-import", argv, NULL, out, TL_TOOL_MS);
}
