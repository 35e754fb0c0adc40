/* The basics of the system tests: failing with context, progress lines, ids, time, files. */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Asia/Shanghai has no daylight saving time: UTC+8 all year. */
#define TL_SHANGHAI_OFFSET_S (8 * 3600)
#define TL_BINS_MAX          16

static struct {
    const char *name;
    char sfx[16];
    char logdir[TL_PATH_MAX];
    int64_t t0_ms;
    uint64_t rng;
    char bins[TL_BINS_MAX][TL_PATH_MAX];
    char bin_names[TL_BINS_MAX][64];
    int nbins;
    bool failing;
} T;

int64_t tl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tl_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void tl_mkdirs(const char *path)
{
    char tmp[TL_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *s = tmp + 1; *s != '\0'; s++) {
        if (*s == '/') {
            *s = '\0';
            mkdir(tmp, 0755);
            *s = '/';
        }
    }
    mkdir(tmp, 0755);
}

void tl_init(const char *name)
{
    T.name = name;
    T.t0_ms = tl_now_ms();
    unsigned char rnd[8] = {0};
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
        fprintf(stderr, "cannot read /dev/urandom\n");
        exit(1);
    }
    close(fd);
    snprintf(T.sfx, sizeof(T.sfx), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    uint64_t seed = 0;
    memcpy(&seed, rnd, sizeof(seed));
    const char *s = getenv("TL_SEED");
    if (s != NULL && s[0] != '\0') {
        seed = strtoull(s, NULL, 10);
    }
    T.rng = seed != 0 ? seed : 0x9e3779b97f4a7c15ULL;
    const char *build = getenv("TOPUP_BUILD_DIR");
    snprintf(T.logdir, sizeof(T.logdir), "%s/test-logs/%s-%s",
             build != NULL && build[0] != '\0' ? build : "/tmp", name, T.sfx);
    tl_mkdirs(T.logdir);
    /* Line-buffered progress even when ctest captures the output. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    tl_step("run %s, seed %" PRIu64 " (TL_SEED=%" PRIu64 " repeats it), logs in %s", T.sfx, seed,
            seed, T.logdir);
}

void tl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL [%s +%.1fs]: ", T.name != NULL ? T.name : "?",
            (double)(tl_now_ms() - T.t0_ms) / 1000.0);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (!T.failing) {
        T.failing = true;
        tl_proc_kill_all();
        fprintf(stderr, "FAIL: logs of the run are in %s\n", T.logdir);
    }
    exit(1);
}

void tl_step(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s +%.1fs] ", T.name != NULL ? T.name : "?",
            (double)(tl_now_ms() - T.t0_ms) / 1000.0);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

const char *tl_sfx(void)
{
    return T.sfx;
}

uint64_t tl_rand(void)
{
    /* xorshift64*: enough for choosing moments and amounts, and repeatable from the seed. */
    T.rng ^= T.rng >> 12;
    T.rng ^= T.rng << 25;
    T.rng ^= T.rng >> 27;
    return T.rng * 0x2545F4914F6CDD1DULL;
}

int64_t tl_rand_range(int64_t lo, int64_t hi)
{
    TL_CHECK(hi >= lo);
    return lo + (int64_t)(tl_rand() % (uint64_t)(hi - lo + 1));
}

const char *tl_env(const char *name)
{
    const char *v = getenv(name);
    TL_CHECK_MSG(v != NULL && v[0] != '\0',
                 "environment variable %s is not set (run the test through tests/with-stack.sh)",
                 name);
    return v;
}

int64_t tl_env_int(const char *name, int64_t def)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        return def;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    TL_CHECK_MSG(errno == 0 && end != v && *end == '\0', "%s=%s is not an integer", name, v);
    return (int64_t)x;
}

const char *tl_logdir(void)
{
    return T.logdir;
}

const char *tl_bin(const char *service)
{
    for (int i = 0; i < T.nbins; i++) {
        if (strcmp(T.bin_names[i], service) == 0) {
            return T.bins[i];
        }
    }
    TL_CHECK(T.nbins < TL_BINS_MAX);
    const char *build = tl_env("TOPUP_BUILD_DIR");
    char *out = T.bins[T.nbins];
    if (strcmp(service, "topup-devbroker") == 0) {
        snprintf(out, TL_PATH_MAX, "%s/services/dev-broker/topup-devbroker", build);
    } else {
        snprintf(out, TL_PATH_MAX, "%s/services/%s/%s", build, service, service);
    }
    TL_CHECK_MSG(access(out, X_OK) == 0, "%s is not built (%s)", service, out);
    snprintf(T.bin_names[T.nbins], sizeof(T.bin_names[0]), "%s", service);
    T.nbins++;
    return out;
}

char *tl_id(char *out, const char *prefix)
{
    snprintf(out, TL_ID_MAX, "%s-%s", prefix, T.sfx);
    return out;
}

void tl_event_id(char out[UUID_STR_LEN])
{
    ids_uuid7(out);
}

void tl_shanghai_date(char out[11], int delta_days)
{
    time_t t = time(NULL) + TL_SHANGHAI_OFFSET_S + (time_t)delta_days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

void tl_fen_str(int64_t fen, char *out, size_t len)
{
    uint64_t a = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    snprintf(out, len, "%s%" PRIu64 ".%02" PRIu64, fen < 0 ? "-" : "", a / 100, a % 100);
}

int64_t tl_fen_parse(const char *s)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    int64_t whole = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        whole = whole * 10 + (*p - '0');
        p++;
        digits++;
    }
    TL_CHECK_MSG(digits > 0 && p[0] == '.' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
                     p[2] <= '9' && p[3] == '\0',
                 "\"%s\" is not an amount with two decimals", s);
    int64_t v = whole * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    return neg ? -v : v;
}

void tl_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    TL_CHECK_MSG(f != NULL, "cannot write %s: %s", path, strerror(errno));
    TL_CHECK_MSG(fwrite(data, 1, len, f) == len && fclose(f) == 0, "cannot write %s", path);
}

char *tl_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    TL_CHECK(buf != NULL);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            TL_CHECK(buf != NULL);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL) {
        *len = n;
    }
    return buf;
}
