/* libFuzzer target: every topup.v1 message decoder and the envelope check on arbitrary bytes. */
#include <stdint.h>
#include <string.h>

#include "topup/event.h"

#define FUZZ_DECODE(type, fn)                                                                      \
    do {                                                                                           \
        type *m = fn##__unpack(NULL, size, data);                                                  \
        if (m != NULL) {                                                                           \
            (void)event_envelope_check(m->envelope, 1, NULL);                                      \
            fn##__free_unpacked(m, NULL);                                                          \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_DECODE(Topup__V1__TopUpRequested, topup__v1__top_up_requested);
    FUZZ_DECODE(Topup__V1__TopUpCancelled, topup__v1__top_up_cancelled);
    FUZZ_DECODE(Topup__V1__TopUpExpired, topup__v1__top_up_expired);
    FUZZ_DECODE(Topup__V1__BankStatementRecord, topup__v1__bank_statement_record);
    FUZZ_DECODE(Topup__V1__PaymentMatched, topup__v1__payment_matched);
    FUZZ_DECODE(Topup__V1__UsageRecorded, topup__v1__usage_recorded);
    FUZZ_DECODE(Topup__V1__RefundIssued, topup__v1__refund_issued);
    FUZZ_DECODE(Topup__V1__AccountFlowRecorded, topup__v1__account_flow_recorded);
    return 0;
}
