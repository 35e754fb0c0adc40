/* Child processes of the system tests: start, restart, kill -9, SIGTERM with a deadline, run. */
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Output of a command run to completion (tl_run); more is an error of the test. */
#define TL_RUN_OUT_MAX (64u << 20)

static struct tl_proc *procs[TL_PROCS_MAX];
static int nprocs;
static pthread_mutex_t procs_mu = PTHREAD_MUTEX_INITIALIZER;
static bool atexit_done;

static void tl_proc_atexit(void)
{
    tl_proc_kill_all();
    /* The command lines are owned copies: give them back so that leak checkers see none. */
    pthread_mutex_lock(&procs_mu);
    for (int i = 0; i < nprocs; i++) {
        for (int k = 0; k <= TL_PROC_ARGS_MAX && procs[i]->argv[k] != NULL; k++) {
            free(procs[i]->argv[k]);
            procs[i]->argv[k] = NULL;
        }
        for (int k = 0; k <= TL_PROC_ENV_MAX && procs[i]->env[k] != NULL; k++) {
            free(procs[i]->env[k]);
            procs[i]->env[k] = NULL;
        }
    }
    nprocs = 0;
    pthread_mutex_unlock(&procs_mu);
}

static void tl_proc_register(struct tl_proc *p)
{
    pthread_mutex_lock(&procs_mu);
    if (!atexit_done) {
        atexit(tl_proc_atexit);
        atexit_done = true;
    }
    bool known = false;
    for (int i = 0; i < nprocs; i++) {
        known = known || procs[i] == p;
    }
    if (!known && nprocs < TL_PROCS_MAX) {
        procs[nprocs++] = p;
    }
    pthread_mutex_unlock(&procs_mu);
}

/* environ with the overrides applied: a new array of borrowed strings (caller frees the array). */
static char **tl_proc_envp(char *const *over)
{
    size_t n = 0, k = 0;
    while (environ[n] != NULL) {
        n++;
    }
    while (over != NULL && over[k] != NULL) {
        k++;
    }
    char **out = calloc(n + k + 1, sizeof(*out));
    TL_CHECK(out != NULL);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t kl = eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool replaced = false;
        for (size_t j = 0; j < k && !replaced; j++) {
            replaced = strncmp(over[j], environ[i], kl) == 0 && over[j][kl] == '=';
        }
        if (!replaced) {
            out[m++] = environ[i];
        }
    }
    for (size_t j = 0; j < k; j++) {
        out[m++] = over[j];
    }
    out[m] = NULL;
    return out;
}

/* In the child: die with the test (ctest's timeout kills only the test), then exec. */
static void tl_proc_exec(char *const *argv, char **envp, int out_fd, int err_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
    }
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    for (int fd = 3; fd < 1024; fd++) {
        close(fd);
    }
    execve(argv[0], argv, envp);
    dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void tl_proc_spawn(struct tl_proc *p)
{
    int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    TL_CHECK_MSG(fd >= 0, "cannot open %s: %s", p->log, strerror(errno));
    dprintf(fd, "---- test harness: start #%d of %s\n", p->starts + 1, p->name);
    char **envp = tl_proc_envp(p->env);
    pid_t pid = fork();
    TL_CHECK_MSG(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        tl_proc_exec(p->argv, envp, fd, fd);
    }
    free(envp);
    close(fd);
    p->pid = pid;
    p->starts++;
    p->started_ms = tl_now_ms();
}

void tl_proc_start(struct tl_proc *p, const char *name, const char *const *argv,
                   const char *const *env)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s/%s.log", tl_logdir(), name);
    for (int i = 0; argv[i] != NULL; i++) {
        TL_CHECK(i < TL_PROC_ARGS_MAX);
        p->argv[i] = strdup(argv[i]);
    }
    for (int i = 0; env != NULL && env[i] != NULL; i++) {
        TL_CHECK(i < TL_PROC_ENV_MAX);
        p->env[i] = strdup(env[i]);
    }
    tl_proc_register(p);
    tl_proc_spawn(p);
}

void tl_proc_restart(struct tl_proc *p)
{
    TL_CHECK_MSG(p->pid == 0, "%s is still running (pid %d)", p->name, (int)p->pid);
    tl_proc_spawn(p);
}

static int tl_proc_code(int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

void tl_proc_kill9(struct tl_proc *p)
{
    if (p->pid <= 0) {
        return;
    }
    kill(p->pid, SIGKILL);
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    p->pid = 0;
}

int tl_proc_stop(struct tl_proc *p, int sig, int timeout_ms, int64_t *elapsed_ms)
{
    TL_CHECK_MSG(p->pid > 0, "%s is not running", p->name);
    int64_t t0 = tl_now_ms();
    kill(p->pid, sig);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            break;
        }
        if (tl_now_ms() - t0 > timeout_ms) {
            tl_proc_kill9(p);
            if (elapsed_ms != NULL) {
                *elapsed_ms = tl_now_ms() - t0;
            }
            return -1;
        }
        tl_sleep_ms(20);
    }
    p->pid = 0;
    if (elapsed_ms != NULL) {
        *elapsed_ms = tl_now_ms() - t0;
    }
    return tl_proc_code(status);
}

bool tl_proc_alive(struct tl_proc *p, int *status)
{
    if (p->pid <= 0) {
        return false;
    }
    int st = 0;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == 0) {
        return true;
    }
    p->pid = 0;
    if (status != NULL) {
        *status = tl_proc_code(st);
    }
    return false;
}

void tl_proc_check_alive(struct tl_proc *p)
{
    int code = 0;
    if (!tl_proc_alive(p, &code)) {
        tl_proc_log_tail(p, 30);
        tl_fail("%s is not running (exit code %d); log %s", p->name, code, p->log);
    }
}

void tl_proc_log_tail(const struct tl_proc *p, int n)
{
    char cmd[TL_PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", n, p->log);
    fprintf(stderr, "---- last lines of %s (%s)\n", p->name, p->log);
    if (system(cmd) != 0) {
        fprintf(stderr, "(no log)\n");
    }
}

int tl_proc_log_count(const struct tl_proc *p, const char *s)
{
    FILE *f = fopen(p->log, "r");
    if (f == NULL) {
        return 0;
    }
    char line[16384];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        n += strstr(line, s) != NULL;
    }
    fclose(f);
    return n;
}

void tl_proc_kill_all(void)
{
    pthread_mutex_lock(&procs_mu);
    for (int i = 0; i < nprocs; i++) {
        struct tl_proc *p = procs[i];
        if (p->pid > 0) {
            int status = 0;
            bool dead = waitpid(p->pid, &status, WNOHANG) == p->pid;
            if (!dead) {
                tl_proc_kill9(p);
            }
            p->pid = 0;
        }
    }
    pthread_mutex_unlock(&procs_mu);
}

int tl_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    TL_CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    TL_CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    TL_CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

int tl_run(const char *log_name, const char *const *argv, const char *const *env, char **out,
           int timeout_ms)
{
    char log[TL_PATH_MAX];
    snprintf(log, sizeof(log), "%s/%s.log", tl_logdir(), log_name);
    int err_fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    TL_CHECK_MSG(err_fd >= 0, "cannot open %s", log);
    dprintf(err_fd, "---- test harness: run");
    for (int i = 0; argv[i] != NULL; i++) {
        dprintf(err_fd, " %s", argv[i]);
    }
    dprintf(err_fd, "\n");
    int pfd[2];
    TL_CHECK(pipe(pfd) == 0);
    char **envp = tl_proc_envp((char *const *)env);
    pid_t pid = fork();
    TL_CHECK(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        tl_proc_exec((char *const *)argv, envp, pfd[1], err_fd);
    }
    free(envp);
    close(pfd[1]);
    close(err_fd);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    TL_CHECK(buf != NULL);
    int64_t deadline = tl_now_ms() + timeout_ms;
    bool timed_out = false;
    for (;;) {
        int64_t left = deadline - tl_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
        int r = poll(&pf, 1, (int)(left > 1000 ? 1000 : left));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            continue;
        }
        if (cap - n < 2048) {
            TL_CHECK_MSG(cap < TL_RUN_OUT_MAX, "%s printed more than %u bytes", argv[0],
                         TL_RUN_OUT_MAX);
            cap *= 2;
            buf = realloc(buf, cap);
            TL_CHECK(buf != NULL);
        }
        ssize_t got = read(pfd[0], buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        n += (size_t)got;
    }
    close(pfd[0]);
    buf[n] = '\0';
    if (timed_out) {
        kill(pid, SIGKILL);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int code = timed_out ? -1 : tl_proc_code(status);
    if (out != NULL) {
        *out = buf;
    } else {
        free(buf);
    }
    return code;
}
