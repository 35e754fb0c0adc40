/* topupctl migrate: applies the .sql files of deploy/migrations in name order, each once, locked.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"

#define MIGRATE_FILES_MAX              10000
#define MIGRATE_FILE_MAX_BYTES         (16 * 1024 * 1024)
#define MIGRATE_CONNECT_TIMEOUT_MS     10000
#define MIGRATE_LOCK_TIMEOUT_S_DEFAULT 60
/* pg_advisory_lock key shared by every migrator: the bytes of "topupmig". */
#define MIGRATE_LOCK_KEY "8390048280514226535"
#define MIGRATE_PATH_MAX 4096
/* While a migration runs, who blocks it is looked up this often (from a second connection). */
#define MIGRATE_WATCH_INTERVAL_MS     200
#define MIGRATE_WATCH_CONNECT_MS      2000
#define MIGRATE_HOLDERS_MAX           5
#define MIGRATE_HOLDERS_TEXT_MAX      4096
#define MIGRATE_SQLSTATE_LOCK_TIMEOUT "55P03" /* lock_not_available */

/*
 * The sessions that block a lock request of backend $1, with the lock it waits for: what an
 * operator needs to find the long transaction a migration is stuck behind.
 */
static const char migrate_sql_holders[] =
    "SELECT coalesce(l.relation::regclass::text, l.locktype), l.mode, b.pid,"
    " coalesce(b.usename::text, ''), coalesce(b.application_name, ''),"
    " coalesce(host(b.client_addr), 'local socket'), coalesce(b.state, ''),"
    " coalesce(floor(extract(epoch FROM now() - b.xact_start))::bigint, -1),"
    " left(regexp_replace(coalesce(b.query, ''), '\\s+', ' ', 'g'), 200)"
    " FROM pg_locks l CROSS JOIN LATERAL unnest(pg_blocking_pids(l.pid)) AS bp(pid)"
    " JOIN pg_stat_activity b ON b.pid = bp.pid"
    " WHERE l.pid = $1::int AND NOT l.granted ORDER BY b.xact_start NULLS LAST LIMIT "
    "5";

static const char migrate_usage[] =
    "usage: topupctl migrate [--dir DIR] [--status] [--lock-timeout SECONDS]\n"
    "\n"
    "Applies every DIR/*.sql not yet recorded in schema_migrations, in name order, each in its\n"
    "own transaction together with its schema_migrations row (version, SHA-256 checksum,\n"
    "applied_at). Re-running is a no-op; an applied file whose content changed is an error (exit\n"
    "3). An advisory lock keeps concurrent migrators apart (exit 4 if not obtained in time).\n"
    "A statement waiting longer than TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS (default 5000) for a table\n"
    "lock gives up: its file rolls back, the sessions holding the lock are named, exit 4; run\n"
    "it again once they are done.\n"
    "\n"
    "  --dir DIR             migrations folder (default: $TOPUP_MIGRATIONS_DIR, else the\n"
    "                        checkout's deploy/migrations)\n"
    "  --status              list each file as applied, pending or CHANGED; apply nothing\n"
    "  --lock-timeout SECS   wait at most this long for another migrator (default 60)\n"
    "\n"
    "Connects with PG_CONNINFO.\n";

struct migration {
    char name[256];    /* file name, e.g. 0001_init.sql */
    char version[256]; /* file name without .sql: the schema_migrations key */
    char checksum[65]; /* SHA-256 of the file, hex */
    char *sql;         /* file content, NUL-terminated */
};

struct migrate_run {
    const char *dir;
    struct migration *files;
    size_t nfiles;
    struct pg_conn *pg;
    PGresult *applied; /* version, checksum, applied_at of every recorded migration */
    /* Who blocked the running migration when last looked (second connection, opened on need). */
    struct pg_conn *watch_pg;
    bool watch_failed;
    char holders[MIGRATE_HOLDERS_TEXT_MAX]; /* "" when nothing blocked it */
};

static bool migrate_is_dir(const char *path)
{
    struct stat st;
    return path != NULL && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --dir, else TOPUP_MIGRATIONS_DIR, else this checkout's folder, else ./deploy/migrations. */
static const char *migrate_pick_dir(const char *opt)
{
    if (opt != NULL) {
        return opt;
    }
    if (topupctl_cfg.migrations_dir != NULL && topupctl_cfg.migrations_dir[0] != '\0') {
        return topupctl_cfg.migrations_dir;
    }
    if (migrate_is_dir(TOPUPCTL_SOURCE_MIGRATIONS_DIR)) {
        return TOPUPCTL_SOURCE_MIGRATIONS_DIR;
    }
    return "deploy/migrations";
}

static int migrate_cmp(const void *a, const void *b)
{
    return strcmp(((const struct migration *)a)->name, ((const struct migration *)b)->name);
}

static bool migrate_sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        return false;
    }
    for (unsigned int i = 0; i < mdlen; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    return true;
}

/* Reads path into m->sql and checksums it. Prints the reason and returns false on failure. */
static bool migrate_load_file(const char *dir, struct migration *m)
{
    char path[MIGRATE_PATH_MAX];
    bool ok = false;
    snprintf(path, sizeof(path), "%s/%s", dir, m->name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "topupctl migrate: cannot open %s: %m\n", path);
        return false;
    }
    m->sql = mem_alloc(MIGRATE_FILE_MAX_BYTES + 1);
    size_t len = fread(m->sql, 1, MIGRATE_FILE_MAX_BYTES + 1, f);
    if (ferror(f)) {
        fprintf(stderr, "topupctl migrate: cannot read %s\n", path);
        goto out;
    }
    if (len > MIGRATE_FILE_MAX_BYTES) {
        fprintf(stderr, "topupctl migrate: %s is larger than %d bytes\n", path,
                MIGRATE_FILE_MAX_BYTES);
        goto out;
    }
    if (memchr(m->sql, '\0', len) != NULL) {
        fprintf(stderr, "topupctl migrate: %s contains a NUL byte\n", path);
        goto out;
    }
    m->sql[len] = '\0';
    m->sql = mem_realloc(m->sql, len + 1);
    ok = migrate_sha256_hex(m->sql, len, m->checksum);
    if (!ok) {
        fprintf(stderr, "topupctl migrate: cannot checksum %s\n", path);
    }
out:
    fclose(f);
    return ok;
}

/* Lists and loads the .sql files of run->dir (hidden files skipped), sorted by name. */
static bool migrate_list(struct migrate_run *run)
{
    DIR *d = opendir(run->dir);
    if (d == NULL) {
        fprintf(stderr, "topupctl migrate: cannot open migrations folder %s: %m\n", run->dir);
        return false;
    }
    bool ok = true;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n <= 4 || strcmp(e->d_name + n - 4, ".sql") != 0) {
            continue;
        }
        if (n >= sizeof(run->files[0].name) || run->nfiles >= MIGRATE_FILES_MAX) {
            fprintf(stderr, "topupctl migrate: %s: name too long or too many files\n", e->d_name);
            ok = false;
            break;
        }
        if (run->nfiles == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            run->files = mem_realloc(run->files, cap * sizeof(*run->files));
        }
        struct migration *m = &run->files[run->nfiles++];
        memset(m, 0, sizeof(*m));
        snprintf(m->name, sizeof(m->name), "%s", e->d_name);
        snprintf(m->version, sizeof(m->version), "%.*s", (int)(n - 4), e->d_name);
    }
    closedir(d);
    if (ok && run->nfiles > 0) {
        qsort(run->files, run->nfiles, sizeof(*run->files), migrate_cmp);
    }
    for (size_t i = 0; ok && i < run->nfiles; i++) {
        ok = migrate_load_file(run->dir, &run->files[i]);
    }
    return ok;
}

/* Takes the session-level advisory lock, polling so that the wait is bounded. */
static int migrate_lock(struct migrate_run *run, int timeout_s)
{
    time_t deadline = time(NULL) + timeout_s;
    bool said = false;
    for (;;) {
        struct tp_error err = {0};
        PGresult *r = NULL;
        if (pg_exec(run->pg, "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, &r,
                    &err) != TP_OK) {
            fprintf(stderr, "topupctl migrate: lock: %s\n", err.msg);
            return TOPUPCTL_EXIT_FAILURE;
        }
        bool got = strcmp(pg_get_str(r, 0, 0), "t") == 0;
        PQclear(r);
        if (got) {
            return TOPUPCTL_EXIT_OK;
        }
        if (time(NULL) >= deadline) {
            fprintf(stderr, "topupctl migrate: another migrator still holds the lock after %d s\n",
                    timeout_s);
            return TOPUPCTL_EXIT_LOCK_BUSY;
        }
        if (!said) {
            fprintf(stderr, "topupctl migrate: waiting for another migrator to finish\n");
            said = true;
        }
        usleep(200 * 1000);
    }
}

static int migrate_load_applied(struct migrate_run *run)
{
    struct tp_error err = {0};
    static const char create[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                 "version text PRIMARY KEY, "
                                 "checksum text NOT NULL, "
                                 "applied_at timestamptz NOT NULL DEFAULT now())";
    if (pg_exec(run->pg, create, 0, NULL, NULL, &err) != TP_OK ||
        pg_exec(run->pg,
                "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version", 0,
                NULL, &run->applied, &err) != TP_OK) {
        fprintf(stderr, "topupctl migrate: schema_migrations: %s\n", err.msg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    return TOPUPCTL_EXIT_OK;
}

/* Row of version in run->applied, or -1. */
static int migrate_find_applied(const struct migrate_run *run, const char *version)
{
    for (int i = 0; i < PQntuples(run->applied); i++) {
        if (strcmp(pg_get_str(run->applied, i, 0), version) == 0) {
            return i;
        }
    }
    return -1;
}

/*
 * PostgreSQL's lock_timeout for this session (local false) or the current transaction (local
 * true): a DDL statement queued behind a long transaction also blocks every query queued behind
 * its own lock request, so it must give up soon rather than wait for the holder.
 */
static bool migrate_set_lock_timeout(struct migrate_run *run, bool local, struct tp_error *err)
{
    char ms[32];
    snprintf(ms, sizeof(ms), "%" PRId64 "ms", topupctl_cfg.migrate_lock_timeout_ms);
    const char *params[] = {ms};
    return pg_exec(run->pg,
                   local ? "SELECT set_config('lock_timeout', $1, true)"
                         : "SELECT set_config('lock_timeout', $1, false)",
                   1, params, NULL, err) == TP_OK;
}

static int64_t migrate_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Looks up (second connection) who blocks backend pid now; keeps the last non-empty answer. */
static void migrate_watch(struct migrate_run *run, int pid)
{
    if (run->watch_pg == NULL && !run->watch_failed) {
        struct tp_error err = {0};
        run->watch_pg = pg_conn_new(topupctl_cfg.pg_conninfo, MIGRATE_WATCH_CONNECT_MS, &err);
        /* Without it the migration runs the same; only a lock timeout is reported less well. */
        run->watch_failed = run->watch_pg == NULL;
    }
    if (run->watch_pg == NULL) {
        return;
    }
    char pidtext[16];
    snprintf(pidtext, sizeof(pidtext), "%d", pid);
    const char *params[] = {pidtext};
    PGresult *r = NULL;
    struct tp_error err = {0};
    if (pg_exec(run->watch_pg, migrate_sql_holders, 1, params, &r, &err) != TP_OK) {
        return;
    }
    int rows = PQntuples(r);
    size_t used = 0;
    for (int i = 0; i < rows && i < MIGRATE_HOLDERS_MAX; i++) {
        int64_t open_s = pg_get_i64(r, i, 7);
        char open_text[48] = "";
        if (open_s >= 0) {
            snprintf(open_text, sizeof(open_text), ", transaction open %" PRId64 " s", open_s);
        }
        int n = snprintf(run->holders + used, sizeof(run->holders) - used,
                         "  pid %s (user %s, application \"%s\", client %s, %s%s) blocks the %s "
                         "this migration needs on %s; its last query: %s\n",
                         pg_get_str(r, i, 2), pg_get_str(r, i, 3), pg_get_str(r, i, 4),
                         pg_get_str(r, i, 5), pg_get_str(r, i, 6), open_text, pg_get_str(r, i, 1),
                         pg_get_str(r, i, 0), pg_get_str(r, i, 8));
        if (n < 0 || (size_t)n >= sizeof(run->holders) - used) {
            break; /* the first holders are the oldest transactions: enough to act on */
        }
        used += (size_t)n;
    }
    PQclear(r);
}

/*
 * Runs a file's statements (several in one string need the simple query protocol, so no
 * parameters) and waits for them, looking up who blocks them while they wait. Returns NULL when
 * every statement succeeded, else the first failure (caller PQclears). *failed with a NULL
 * result: the query could not be sent (PQerrorMessage says why).
 */
static PGresult *migrate_exec_watched(struct migrate_run *run, const char *sql, bool *failed)
{
    PGconn *raw = pg_conn_raw(run->pg);
    PGresult *first_error = NULL;
    *failed = false;
    run->holders[0] = '\0';
    if (!PQsendQuery(raw, sql)) {
        *failed = true;
        return NULL;
    }
    int pid = PQbackendPID(raw);
    int64_t next_watch_ms = migrate_now_ms() + MIGRATE_WATCH_INTERVAL_MS;
    for (;;) {
        while (PQisBusy(raw)) {
            int64_t wait_ms = next_watch_ms - migrate_now_ms();
            struct pollfd pfd = {.fd = PQsocket(raw), .events = POLLIN};
            int n = poll(&pfd, 1, wait_ms > 0 ? (int)wait_ms : 0);
            if ((n < 0 && errno != EINTR) || (n > 0 && !PQconsumeInput(raw))) {
                break; /* the connection broke: PQgetResult reports it */
            }
            if (migrate_now_ms() >= next_watch_ms) {
                migrate_watch(run, pid);
                next_watch_ms = migrate_now_ms() + MIGRATE_WATCH_INTERVAL_MS;
            }
        }
        PGresult *r = PQgetResult(raw);
        if (r == NULL) {
            break;
        }
        ExecStatusType rs = PQresultStatus(r);
        if (rs != PGRES_COMMAND_OK && rs != PGRES_TUPLES_OK && rs != PGRES_EMPTY_QUERY &&
            first_error == NULL) {
            first_error = r;
            *failed = true;
        } else {
            PQclear(r);
        }
    }
    return first_error;
}

/* Says which lock a file could not get in time and who held it; the caller rolls back. */
static void migrate_report_lock_timeout(const struct migrate_run *run, const struct migration *m)
{
    fprintf(stderr,
            "topupctl migrate: %s: a lock it needs was not granted within %" PRId64
            " ms (TOPUPCTL_MIGRATE_LOCK_TIMEOUT_MS); the file was rolled back and nothing of it "
            "is applied\n",
            m->name, topupctl_cfg.migrate_lock_timeout_ms);
    if (run->holders[0] != '\0') {
        fprintf(stderr, "topupctl migrate: blocked by:\n%s", run->holders);
        fprintf(stderr, "topupctl migrate: run migrate again once that transaction has ended (or "
                        "end it with SELECT pg_terminate_backend(<pid>))\n");
    } else {
        fprintf(stderr, "topupctl migrate: the holder was not identified (its transaction may "
                        "have just ended; see pg_locks and pg_stat_activity); run migrate again\n");
    }
}

/* Runs one file and records it, in one transaction. */
static int migrate_apply(struct migrate_run *run, const struct migration *m)
{
    struct tp_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (pg_begin(run->pg, &err) != TP_OK) {
        fprintf(stderr, "topupctl migrate: %s: begin: %s\n", m->name, err.msg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    /* Again for the transaction: a reconnect since the session setting would have lost it. */
    if (!migrate_set_lock_timeout(run, true, &err)) {
        fprintf(stderr, "topupctl migrate: %s: lock_timeout: %s\n", m->name, err.msg);
        pg_rollback(run->pg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    PGconn *raw = pg_conn_raw(run->pg);
    bool failed = false;
    PGresult *r = migrate_exec_watched(run, m->sql, &failed);
    if (failed) {
        const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        int rc = TOPUPCTL_EXIT_FAILURE;
        if (state != NULL && strcmp(state, MIGRATE_SQLSTATE_LOCK_TIMEOUT) == 0) {
            migrate_report_lock_timeout(run, m);
            rc = TOPUPCTL_EXIT_LOCK_BUSY;
        } else {
            const char *where =
                r != NULL ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
            fprintf(stderr, "topupctl migrate: %s failed%s%s: %s", m->name,
                    where != NULL ? " at character " : "", where != NULL ? where : "",
                    r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(raw));
        }
        PQclear(r);
        pg_rollback(run->pg);
        return rc;
    }
    if (PQtransactionStatus(raw) != PQTRANS_INTRANS) {
        /* The file ended our transaction itself; its effects may be committed without a record. */
        fprintf(stderr,
                "topupctl migrate: %s contains transaction control (COMMIT/ROLLBACK); remove it, "
                "each file already runs in its own transaction\n",
                m->name);
        pg_rollback(run->pg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    const char *params[] = {m->version, m->checksum};
    if (pg_exec(run->pg, "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", 2,
                params, NULL, &err) != TP_OK) {
        fprintf(stderr, "topupctl migrate: %s: record: %s\n", m->name, err.msg);
        pg_rollback(run->pg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    if (pg_commit(run->pg, &err) != TP_OK) {
        fprintf(stderr, "topupctl migrate: %s: commit: %s\n", m->name, err.msg);
        return TOPUPCTL_EXIT_FAILURE;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    printf("applied %s (%ld ms)\n", m->version, ms);
    log_info("migration applied", LF_S("version", m->version), LF_S("checksum", m->checksum),
             LF_I("duration_ms", ms));
    return TOPUPCTL_EXIT_OK;
}

/*
 * Compares every file with what is recorded, before anything is applied: one changed file
 * stops the run whatever its position. With status_only, prints one line per file.
 */
static int migrate_check(const struct migrate_run *run, bool status_only, size_t *already)
{
    int rc = TOPUPCTL_EXIT_OK;
    for (size_t i = 0; i < run->nfiles; i++) {
        const struct migration *m = &run->files[i];
        int row = migrate_find_applied(run, m->version);
        if (row >= 0 && strcmp(pg_get_str(run->applied, row, 1), m->checksum) != 0) {
            fprintf(stderr,
                    "topupctl migrate: %s was applied with checksum %s but the file now has %s; "
                    "never edit an applied migration, add a new one\n",
                    m->name, pg_get_str(run->applied, row, 1), m->checksum);
            if (status_only) {
                printf("%-40s CHANGED\n", m->version);
            }
            rc = TOPUPCTL_EXIT_MIGRATION_CHANGED;
        } else if (row >= 0) {
            (*already)++;
            if (status_only) {
                printf("%-40s applied %s\n", m->version, pg_get_str(run->applied, row, 2));
            }
        } else if (status_only) {
            printf("%-40s pending\n", m->version);
        }
    }
    for (int i = 0; i < PQntuples(run->applied); i++) {
        bool known = false;
        for (size_t j = 0; j < run->nfiles && !known; j++) {
            known = strcmp(run->files[j].version, pg_get_str(run->applied, i, 0)) == 0;
        }
        if (!known) {
            fprintf(stderr, "topupctl migrate: note: %s is applied but not in %s\n",
                    pg_get_str(run->applied, i, 0), run->dir);
        }
    }
    return rc;
}

/* Applies what is pending (or only reports with status_only). Called with the lock held. */
static int migrate_run_files(struct migrate_run *run, bool status_only)
{
    size_t applied_now = 0, already = 0;
    int rc = migrate_check(run, status_only, &already);
    if (rc != TOPUPCTL_EXIT_OK || status_only) {
        return rc;
    }
    for (size_t i = 0; i < run->nfiles && rc == TOPUPCTL_EXIT_OK; i++) {
        if (migrate_find_applied(run, run->files[i].version) < 0) {
            rc = migrate_apply(run, &run->files[i]);
            applied_now += rc == TOPUPCTL_EXIT_OK;
        }
    }
    if (rc == TOPUPCTL_EXIT_OK && applied_now == 0) {
        printf("nothing to apply: %zu migrations already applied (%s)\n", already, run->dir);
    } else if (rc == TOPUPCTL_EXIT_OK) {
        printf("%zu applied, %zu already applied (%s)\n", applied_now, already, run->dir);
    }
    return rc;
}

int cmd_migrate(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"status", no_argument, NULL, 's'},
                                         {"lock-timeout", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *dir_opt = NULL;
    bool status_only = false;
    long lock_timeout_s = MIGRATE_LOCK_TIMEOUT_S_DEFAULT;
    int ch;
    while ((ch = getopt_long(argc, argv, "d:l:sh", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'd':
            dir_opt = optarg;
            break;
        case 's':
            status_only = true;
            break;
        case 'l':
            lock_timeout_s = strtol(optarg, &end, 10);
            if (end == optarg || *end != '\0' || lock_timeout_s < 0 || lock_timeout_s > 86400) {
                fprintf(stderr, "topupctl migrate: --lock-timeout takes 0..86400 seconds\n");
                return TOPUPCTL_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(migrate_usage, stdout);
            return TOPUPCTL_EXIT_OK;
        default:
            fputs(migrate_usage, stderr);
            return TOPUPCTL_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(migrate_usage, stderr);
        return TOPUPCTL_EXIT_USAGE;
    }

    struct migrate_run run = {.dir = migrate_pick_dir(dir_opt)};
    struct tp_error err = {0};
    int rc = TOPUPCTL_EXIT_FAILURE;
    if (!migrate_list(&run)) {
        goto out;
    }
    run.pg = pg_conn_new(topupctl_cfg.pg_conninfo, MIGRATE_CONNECT_TIMEOUT_MS, &err);
    if (run.pg == NULL) {
        fprintf(stderr, "topupctl migrate: %s\n", err.msg);
        goto out;
    }
    rc = migrate_lock(&run, (int)lock_timeout_s);
    if (rc != TOPUPCTL_EXIT_OK) {
        goto out;
    }
    if (!migrate_set_lock_timeout(&run, false, &err)) {
        fprintf(stderr, "topupctl migrate: lock_timeout: %s\n", err.msg);
        rc = TOPUPCTL_EXIT_FAILURE;
        goto unlock;
    }
    rc = migrate_load_applied(&run);
    if (rc == TOPUPCTL_EXIT_OK) {
        rc = migrate_run_files(&run, status_only);
    }
unlock:
    /* Closing the session releases the lock too; unlocking says so explicitly. */
    if (pg_exec(run.pg, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL, &err) !=
        TP_OK) {
        log_warn("migrate lock release failed; closing the session releases it",
                 LF_S("error", err.msg));
    }
out:
    PQclear(run.applied);
    pg_conn_free(run.watch_pg);
    pg_conn_free(run.pg);
    for (size_t i = 0; i < run.nfiles; i++) {
        free(run.files[i].sql);
    }
    free(run.files);
    return rc;
}
