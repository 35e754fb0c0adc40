-- Refund requests (issue #14 item 2): paid credit not yet used goes back to the account it came
-- from, never to one typed by anyone. A request names the credit lot it pays back (its remitter,
-- as the bank reported it, is the destination, copied here at request time) or, for a transfer
-- that matched nothing (review queue), the statement record alone (no ledger account).
-- requested -> approved -> sent -> paid_out, or requested -> rejected, or sent -> failed (the
-- credit is restored). Approval queues, in the same transaction, the RefundIssued (bank payout,
-- negative) that reserves the amount through the ledger: reserve_event_id is its event id, one per
-- request, so approving twice reserves once.
CREATE TABLE refund_requests (
    id               bigserial PRIMARY KEY,
    refund_id        text NOT NULL UNIQUE,
    account_id       text REFERENCES accounts (account_id),
    lot_id           bigint REFERENCES credit_lots (id),
    record_id        bigint NOT NULL REFERENCES statement_records (id),
    amount_fen       bigint NOT NULL CHECK (amount_fen > 0),
    dest_name        text NOT NULL,
    dest_account     text NOT NULL,
    dest_bank        text NOT NULL,
    state            text NOT NULL DEFAULT 'requested'
                     CHECK (state IN ('requested', 'approved', 'rejected', 'sent', 'paid_out',
                                      'failed')),
    reason           text NOT NULL,
    requested_by     text NOT NULL,
    reserve_event_id text UNIQUE,
    end_to_end_id    text UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((account_id IS NULL) = (lot_id IS NULL)),
    CHECK (state IN ('requested', 'rejected') OR account_id IS NULL OR reserve_event_id IS NOT NULL)
);
CREATE INDEX refund_requests_account_idx ON refund_requests (account_id, id DESC);
CREATE INDEX refund_requests_lot_idx ON refund_requests (lot_id) WHERE lot_id IS NOT NULL;
-- A review-queue transfer is paid back at most once while a refund of it is open or done.
CREATE UNIQUE INDEX refund_requests_one_per_unmatched_record ON refund_requests (record_id)
    WHERE account_id IS NULL AND state NOT IN ('rejected', 'failed');

-- Audit: who moved a request from which state to which, when and why.
CREATE TABLE refund_transitions (
    id         bigserial PRIMARY KEY,
    request_id bigint NOT NULL REFERENCES refund_requests (id),
    from_state text,
    to_state   text NOT NULL,
    actor      text NOT NULL,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refund_transitions_request_idx ON refund_transitions (request_id, id);
