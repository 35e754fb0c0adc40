/* Publishing records to bank.statement.records with the idempotent producer, counting acks. */
#include "publish.h"

#include <assert.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "topup/event.h"
#include "topup/kafka.h"
#include "topup/log.h"
#include "topup/mem.h"

struct publisher {
    struct kafka_producer *producer;
    uint64_t sent, acked, failed;
    bool fatal;
    char first_failure[256];
};

/* The message for r without its envelope (strings borrowed from r and m). */
static void publish_fill(Topup__V1__BankStatementRecord *msg, const struct record *r,
                         const struct record_meta *m)
{
    *msg = (Topup__V1__BankStatementRecord)TOPUP__V1__BANK_STATEMENT_RECORD__INIT;
    msg->receiving_account = (char *)r->receiving_account;
    msg->bank_txn_id = (char *)r->bank_txn_id;
    msg->id_is_fingerprint = r->id_is_fingerprint;
    msg->booking_date = (char *)r->booking_date;
    msg->value_date = (char *)r->value_date;
    msg->amount_fen = r->amount_fen;
    msg->currency = (char *)r->currency;
    msg->direction = r->amount_fen < 0 ? TOPUP__V1__DIRECTION__DIRECTION_DEBIT
                                       : TOPUP__V1__DIRECTION__DIRECTION_CREDIT;
    msg->counterparty_name = (char *)r->counterparty_name;
    msg->counterparty_account = (char *)r->counterparty_account;
    msg->counterparty_bank = (char *)r->counterparty_bank;
    msg->remittance_info = (char *)r->remittance;
    msg->source_file = (char *)m->source_file;
    msg->source_location = (char *)r->location;
    msg->import_sha256 = (char *)m->sha256;
    msg->format = (char *)m->format;
    msg->reversal = r->reversal;
}

/*
 * event_bsr_digest(), computed the same way (SHA-256 of the message packed without its envelope)
 * but packed into one buffer and hashed with the algorithm fetched once per thread: a million
 * records take about half the time (event_bsr_digest hashes field by field, with a fresh context
 * and fetch each call). test_si_output checks both agree, on records decoded as a consumer does.
 */
void publish_digest(const struct record *r, const struct record_meta *m,
                    uint8_t out[EVENT_DIGEST_LEN])
{
    static _Thread_local EVP_MD *md;
    static _Thread_local EVP_MD_CTX *ctx;
    uint8_t buf[PUBLISH_MESSAGE_MAX];
    Topup__V1__BankStatementRecord msg;
    publish_fill(&msg, r, m);
    size_t n = topup__v1__bank_statement_record__get_packed_size(&msg);
    assert(n <= PUBLISH_MESSAGE_MAX);
    n = topup__v1__bank_statement_record__pack(&msg, buf);
    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        ctx = EVP_MD_CTX_new();
        if (md == NULL || ctx == NULL) {
            abort(); /* libcrypto without SHA-256 is a broken installation */
        }
    }
    unsigned int len = 0;
    if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, buf, n) != 1 ||
        EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != EVENT_DIGEST_LEN) {
        abort();
    }
}

size_t publish_encode(const struct record *r, const struct record_meta *m,
                      uint8_t buf[PUBLISH_MESSAGE_MAX])
{
    struct event_envelope_buf env;
    Topup__V1__BankStatementRecord msg;
    publish_fill(&msg, r, m);
    /* The payer's platform account is not known yet: matching finds it. */
    msg.envelope = event_envelope_init(&env, PUBLISH_PRODUCER, "");
    size_t n = topup__v1__bank_statement_record__get_packed_size(&msg);
    /* Field maxima bound the size; exceeding it is a programming error. */
    assert(n <= PUBLISH_MESSAGE_MAX);
    return topup__v1__bank_statement_record__pack(&msg, buf);
}

static void publisher_on_delivery(void *ctx, void *opaque, enum tp_status status,
                                  const char *reason)
{
    struct publisher *p = ctx;
    (void)opaque;
    if (status == TP_OK) {
        p->acked++;
        return;
    }
    p->failed++;
    if (status == TP_FATAL) {
        p->fatal = true;
    }
    if (p->first_failure[0] == '\0') {
        snprintf(p->first_failure, sizeof p->first_failure, "%s", reason);
    }
}

struct publisher *publisher_new(struct tp_error *err)
{
    struct publisher *p = mem_calloc(1, sizeof *p);
    p->producer = kafka_producer_new(PUBLISH_PRODUCER, publisher_on_delivery, p, err);
    if (p->producer == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

void publisher_free(struct publisher *p)
{
    if (p == NULL) {
        return;
    }
    kafka_producer_free(p->producer);
    free(p);
}

static int64_t publisher_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum tp_status publisher_send(struct publisher *p, const struct record *r,
                              const struct record_meta *m, int wait_ms, struct tp_error *err)
{
    uint8_t buf[PUBLISH_MESSAGE_MAX];
    size_t len = publish_encode(r, m, buf);
    int64_t deadline = publisher_now_ms() + wait_ms;
    for (;;) {
        enum tp_status st =
            kafka_producer_send(p->producer, TOPIC_BANK_STATEMENT_RECORDS, r->receiving_account,
                                strlen(r->receiving_account), buf, len, NULL, err);
        if (st == TP_OK) {
            p->sent++;
            return TP_OK;
        }
        if (st != TP_RETRY) {
            return st;
        }
        /* Queue full: backpressure until the broker acknowledges some. */
        if (publisher_now_ms() >= deadline) {
            return error_set(err, TP_RETRY,
                             "the producer queue stayed full for %d ms (broker unreachable?)",
                             wait_ms);
        }
        kafka_producer_poll(p->producer, 50);
    }
}

void publisher_poll(struct publisher *p)
{
    kafka_producer_poll(p->producer, 0);
}

enum tp_status publisher_finish(struct publisher *p, int timeout_ms, struct tp_error *err)
{
    enum tp_status st = kafka_producer_flush(p->producer, timeout_ms, err);
    kafka_producer_poll(p->producer, 0);
    if (p->failed > 0) {
        return error_set(err, p->fatal ? TP_FATAL : TP_RETRY,
                         "%llu of %llu records were not acknowledged (first: %s)",
                         (unsigned long long)p->failed, (unsigned long long)p->sent,
                         p->first_failure);
    }
    if (st != TP_OK) {
        return st;
    }
    if (p->acked != p->sent) {
        return error_set(err, TP_RETRY, "%llu of %llu records acknowledged",
                         (unsigned long long)p->acked, (unsigned long long)p->sent);
    }
    return TP_OK;
}

uint64_t publisher_sent(const struct publisher *p)
{
    return p->sent;
}

uint64_t publisher_acked(const struct publisher *p)
{
    return p->acked;
}

uint64_t publisher_failed(const struct publisher *p)
{
    return p->failed;
}
