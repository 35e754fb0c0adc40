/*
 * Broker down: with a dev broker of its own taken down (control channel), order-intake keeps
 * accepting orders and cancels; when the broker returns, every event goes out, none lost, none
 * duplicated. Messages are given a 5 s delivery timeout so that the outage outlasts it, as a
 * minutes-long outage outlasts the default one.
 * argv: <order-intake> <topup-devbroker>
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define DOWN_S_DEFAULT 15

static pid_t broker_pid;

static void broker_kill(void)
{
    if (broker_pid > 0) {
        kill(broker_pid, SIGTERM);
        waitpid(broker_pid, NULL, 0);
        broker_pid = 0;
    }
}

static void read_file(const char *path, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(out, (int)size, f) == NULL) {
            out[0] = '\0';
        }
        fclose(f);
    }
    out[strcspn(out, "\r\n")] = '\0';
}

/* Starts topup-devbroker with its own address files; fills bootstrap and control. */
static void broker_start(const char *bin, char *bootstrap, char *control, size_t size)
{
    char bs_file[128], ctl_file[128], log_file[128];
    char id[IT_ID_MAX];
    it_id(id, "broker");
    snprintf(bs_file, sizeof(bs_file), "/tmp/intake-it-%s.bootstrap", id);
    snprintf(ctl_file, sizeof(ctl_file), "/tmp/intake-it-%s.control", id);
    snprintf(log_file, sizeof(log_file), "/tmp/intake-it-%s.log", id);
    int fd = open(log_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    broker_pid = fork();
    CHECK(broker_pid >= 0);
    if (broker_pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "--bootstrap-file", bs_file, "--control-file", ctl_file, (char *)NULL);
        _exit(127);
    }
    close(fd);
    atexit(broker_kill);
    int64_t deadline = it_now_ms() + IT_WAIT_MS;
    for (;;) {
        read_file(bs_file, bootstrap, size);
        read_file(ctl_file, control, size);
        if (bootstrap[0] != '\0' && control[0] != '\0') {
            break;
        }
        CHECK_MSG(it_now_ms() < deadline, "own dev broker did not start (log %s)", log_file);
        it_sleep_ms(50);
    }
}

/* One command on the broker's control channel; fails unless it answers "ok...". */
static void broker_ctl(const char *control, const char *cmd)
{
    char host[64];
    int port = 0;
    const char *colon = strrchr(control, ':');
    CHECK(colon != NULL);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - control), control);
    port = atoi(colon + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    CHECK_MSG(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "control channel %s", control);
    char line[256];
    int n = snprintf(line, sizeof(line), "%s\n", cmd);
    CHECK(write(fd, line, (size_t)n) == n);
    char reply[256] = "";
    size_t got = 0;
    while (got < sizeof(reply) - 1 && strchr(reply, '\n') == NULL) {
        ssize_t r = read(fd, reply + got, sizeof(reply) - 1 - got);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
        reply[got] = '\0';
    }
    close(fd);
    CHECK_MSG(strncmp(reply, "ok", 2) == 0, "broker control \"%s\": %s", cmd, reply);
}

static void cancel(const struct it_service *s, const char *token, const char *code)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/topup-orders/%s/cancel", code);
    struct it_resp r;
    it_call(s, "POST", path, token, NULL, NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200, "cancel %s: %d", code, r.status);
    it_resp_free(&r);
}

static int count_kind(struct it_consumer *c, enum it_event_kind kind, const char *code)
{
    int n = 0;
    const struct it_event *ev = it_events(c, &n);
    int k = 0;
    for (int i = 0; i < n; i++) {
        k += ev[i].kind == kind && strcmp(ev[i].code, code) == 0;
    }
    return k;
}

int main(int argc, char **argv)
{
    it_init(argc, argv, "order_intake_broker_down");
    CHECK_MSG(argc >= 3, "usage: %s <order-intake> <topup-devbroker>", argv[0]);
    const char *down_env = getenv("INTAKE_IT_BROKER_DOWN_S");
    int down_s = down_env != NULL ? atoi(down_env) : DOWN_S_DEFAULT;

    char bootstrap[256], control[256];
    broker_start(argv[2], bootstrap, control, sizeof(bootstrap));
    it_step("own dev broker at %s (control %s)", bootstrap, control);
    struct it_consumer *cons = it_consumer_new(bootstrap);

    char kafka_env[300];
    snprintf(kafka_env, sizeof(kafka_env), "KAFKA_BOOTSTRAP_SERVERS=%s", bootstrap);
    const char *env[] = {kafka_env, "KAFKA_MESSAGE_TIMEOUT_MS=5000", "INTAKE_OUTBOX_POLL_MS=200",
                         NULL};
    struct it_service svc;
    it_start(&svc, env);
    it_wait_ready(&svc);
    char acct[IT_ID_MAX], tok[TOKEN_STR_MAX];
    it_id(acct, "acct-bd");
    it_token(tok, acct, 3600);

    it_step("broker up: orders flow");
    enum { BEFORE = 10, DURING = 30, CANCELS = 5 };
    char codes[BEFORE + DURING][REFCODE_STR_LEN];
    for (int i = 0; i < BEFORE; i++) {
        it_create_ok(&svc, tok, "120", codes[i]);
    }
    CHECK(it_collect(cons, acct, BEFORE, IT_WAIT_MS) == BEFORE);

    it_step("broker down for %d s: orders and cancels still accepted", down_s);
    broker_ctl(control, "broker-down 1");
    int64_t down_at = it_now_ms();
    for (int i = BEFORE; i < BEFORE + DURING; i++) {
        it_create_ok(&svc, tok, "130", codes[i]);
    }
    for (int i = BEFORE; i < BEFORE + CANCELS; i++) {
        cancel(&svc, tok, codes[i]);
    }
    int64_t left = down_at + down_s * 1000LL - it_now_ms();
    if (left > 0) {
        it_sleep_ms((int)left);
    }
    const char *pa[] = {acct};
    int64_t waiting =
        it_i64("SELECT count(*) FROM outbox WHERE kafka_key = $1 AND published_at IS NULL", 1, pa);
    CHECK_MSG(waiting > 0, "nothing waited for the broker: was it really down?");
    it_step("%lld events waiting in the outbox", (long long)waiting);

    it_step("broker back: every event delivered, once");
    broker_ctl(control, "broker-up 1");
    it_wait_i64("outbox drained",
                "SELECT count(*) FROM outbox WHERE kafka_key = $1"
                " AND published_at IS NULL",
                1, pa, 0);
    int want = BEFORE + DURING + CANCELS;
    int got = it_collect(cons, acct, want, IT_WAIT_MS);
    CHECK_MSG(got >= want, "received %d of %d events", got, want);
    it_collect(cons, acct, want + 1000, 3000);
    int n = 0;
    it_events(cons, &n);
    CHECK_MSG(n == want, "%d events, want exactly %d", n, want);
    for (int i = 0; i < BEFORE + DURING; i++) {
        CHECK_MSG(count_kind(cons, IT_REQUESTED, codes[i]) == 1, "%s requested %d times", codes[i],
                  count_kind(cons, IT_REQUESTED, codes[i]));
        bool cancelled = i >= BEFORE && i < BEFORE + CANCELS;
        CHECK(count_kind(cons, IT_CANCELLED, codes[i]) == (cancelled ? 1 : 0));
    }
    CHECK(it_stop(&svc, SIGTERM) == 0);
    it_consumer_free(cons);
    broker_kill();
    it_step("ok");
    return 0;
}
