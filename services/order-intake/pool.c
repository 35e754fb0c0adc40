/*
 * Database workers: a bounded queue of jobs that HTTP threads hand over (their connection is
 * suspended meanwhile), served by INTAKE_PG_CONNS threads with a PostgreSQL connection each.
 * Order creations waiting together are committed together (group commit, up to INTAKE_BATCH_MAX).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "intake.h"
#include "topup/log.h"
#include "topup/mem.h"
#include "topup/pg.h"

/* A worker without a connection tries again at most this often, answering 503 meanwhile. */
#define POOL_CONNECT_TIMEOUT_MS    2000
#define POOL_RECONNECT_INTERVAL_MS 1000

struct pool_queue {
    struct intake_job *head;
    struct intake_job *tail;
    int len;
};

struct intake_pool {
    struct intake *app;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pool_queue creates;
    struct pool_queue others;
    int queued;
    bool stopping;
    int nworkers;
    pthread_t *threads;
};

struct pool_worker {
    struct intake_pool *pool;
    int index;
    struct pg_conn *pg;
    int64_t next_connect_ms;
};

static int64_t pool_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct intake_job *pool_job_new(enum intake_job_kind kind, struct http_request *req,
                                const char *account)
{
    struct intake_job *job = mem_calloc(1, sizeof(*job));
    job->kind = kind;
    job->req = req;
    if (account != NULL) {
        snprintf(job->account, sizeof(job->account), "%s", account);
    }
    return job;
}

void pool_job_free(struct intake_job *job)
{
    if (job != NULL) {
        validate_order_deinit(&job->order);
        free(job->refund);
        free(job->claim);
        free(job);
    }
}

static void pool_push(struct pool_queue *q, struct intake_job *job)
{
    job->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = job;
    } else {
        q->head = job;
    }
    q->tail = job;
    q->len++;
}

static struct intake_job *pool_pop(struct pool_queue *q)
{
    struct intake_job *job = q->head;
    if (job != NULL) {
        q->head = job->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        q->len--;
        job->next = NULL;
    }
    return job;
}

bool pool_submit(struct intake_pool *p, struct intake_job *job)
{
    pthread_mutex_lock(&p->mu);
    bool ok = !p->stopping && p->queued < p->app->cfg.queue_max;
    if (ok) {
        pool_push(job->kind == JOB_CREATE ? &p->creates : &p->others, job);
        p->queued++;
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static bool pool_same_key(const struct intake_job *a, const struct intake_job *b)
{
    return strcmp(a->account, b->account) == 0 && strcmp(a->idem_key, b->idem_key) == 0;
}

/*
 * Takes up to max create jobs with distinct (account, key): a second request with a key already
 * in the batch stays queued for the next batch, where it finds the first one's order.
 */
static int pool_take_creates(struct intake_pool *p, struct intake_job **out, int max)
{
    int n = 0;
    struct intake_job *prev = NULL;
    struct intake_job *j = p->creates.head;
    while (j != NULL && n < max) {
        struct intake_job *next = j->next;
        bool dup = false;
        for (int i = 0; i < n && !dup; i++) {
            dup = pool_same_key(out[i], j);
        }
        if (dup) {
            prev = j;
        } else {
            if (prev != NULL) {
                prev->next = next;
            } else {
                p->creates.head = next;
            }
            if (p->creates.tail == j) {
                p->creates.tail = prev;
            }
            p->creates.len--;
            j->next = NULL;
            out[n++] = j;
        }
        j = next;
    }
    p->queued -= n;
    return n;
}

/* Connects (or reconnects after a failure) at most once per interval. */
static bool pool_connect(struct pool_worker *w)
{
    if (w->pg != NULL) {
        return true;
    }
    int64_t now = pool_now_ms();
    if (now < w->next_connect_ms) {
        return false;
    }
    w->next_connect_ms = now + POOL_RECONNECT_INTERVAL_MS;
    struct tp_error err = {0};
    struct pg_conn *pg = pg_conn_new(w->pool->app->cfg.pg_conninfo, POOL_CONNECT_TIMEOUT_MS, &err);
    if (pg == NULL) {
        log_warn("database worker cannot connect; answering 503 until it can",
                 LF_I("worker", w->index), LF_S("error", err.msg));
        return false;
    }
    if (store_prepare(pg, &err) != TP_OK) {
        log_error("database worker cannot prepare its statements", LF_I("worker", w->index),
                  LF_S("error", err.msg));
        pg_conn_free(pg);
        return false;
    }
    w->pg = pg;
    return true;
}

static void pool_run_one(struct pool_worker *w, struct intake_job *job)
{
    struct intake *app = w->pool->app;
    switch (job->kind) {
    case JOB_GET_ORDER:
    case JOB_LIST_ORDERS:
    case JOB_CANCEL:
        api_orders_run(app, w->pg, job);
        break;
    case JOB_BALANCE:
    case JOB_LIST_FLOWS:
    case JOB_READY:
        api_account_run(app, w->pg, job);
        break;
    case JOB_CREATE:
        api_orders_create_batch(app, w->pg, &job, 1);
        break;
    case JOB_CLAIM:
        claims_run(app, w->pg, job);
        break;
    case JOB_REFUND_CREATE:
    case JOB_REFUND_LIST:
    case JOB_REFUND_GET:
        api_refunds_run(app, w->pg, job);
        break;
    }
}

static void *pool_worker_main(void *arg)
{
    struct pool_worker *w = arg;
    struct intake_pool *p = w->pool;
    struct intake *app = p->app;
    int batch_max = (int)app->cfg.batch_max;
    struct intake_job **batch = mem_calloc((size_t)batch_max, sizeof(*batch));
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->queued == 0 && !p->stopping) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->queued == 0 && p->stopping) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        int n = 0;
        struct intake_job *one = NULL;
        if (p->creates.len > 0) {
            n = pool_take_creates(p, batch, batch_max);
        }
        if (n == 0) {
            one = pool_pop(&p->others);
            p->queued -= one != NULL ? 1 : 0;
        }
        /* Anything left is for the next idle worker. */
        if (p->queued > 0) {
            pthread_cond_signal(&p->cv);
        }
        pthread_mutex_unlock(&p->mu);

        bool connected = pool_connect(w);
        if (n > 0) {
            if (connected) {
                api_orders_create_batch(app, w->pg, batch, n);
            }
            for (int i = 0; i < n; i++) {
                if (!connected) {
                    api_unavailable(app, batch[i]->req, "database unreachable");
                }
                pool_job_free(batch[i]);
            }
        } else if (one != NULL) {
            if (connected) {
                pool_run_one(w, one);
            } else {
                api_unavailable(app, one->req, "database unreachable");
            }
            pool_job_free(one);
        }
    }
    free(batch);
    pg_conn_free(w->pg);
    free(w);
    return NULL;
}

struct intake_pool *pool_new(struct intake *app, struct tp_error *err)
{
    struct intake_pool *p = mem_calloc(1, sizeof(*p));
    p->app = app;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->nworkers = (int)app->cfg.pg_conns;
    p->threads = mem_calloc((size_t)p->nworkers, sizeof(*p->threads));
    for (int i = 0; i < p->nworkers; i++) {
        struct pool_worker *w = mem_calloc(1, sizeof(*w));
        w->pool = p;
        w->index = i;
        if (pthread_create(&p->threads[i], NULL, pool_worker_main, w) != 0) {
            free(w);
            p->nworkers = i;
            pool_stop(p);
            pool_free(p);
            error_set(err, TP_FATAL, "cannot start database worker %d", i);
            return NULL;
        }
    }
    return p;
}

void pool_stop(struct intake_pool *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    bool was = p->stopping;
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (was) {
        return;
    }
    for (int i = 0; i < p->nworkers; i++) {
        pthread_join(p->threads[i], NULL);
    }
    p->nworkers = 0;
}

void pool_free(struct intake_pool *p)
{
    if (p == NULL) {
        return;
    }
    pool_stop(p);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
