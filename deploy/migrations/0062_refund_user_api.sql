-- Refunds asked for by the user over order-intake's API (issue #14 item 2, user side), and the
-- end of a reservation the ledger refused.
-- - refund_idempotency_keys: POST /v1/refunds takes an Idempotency-Key like order creation: the
--   same key with the same request (request_hash, SHA-256 of the validated values) answers the
--   same refund; with another request it is refused (409).
-- - state 'refused': an approved refund whose reservation the ledger refused (its credit lot was
--   used between the approval and the ledger's batch). Nothing was reserved, nothing is paid;
--   the ledger moves the request there in the batch transaction that records the refusal, with
--   the reason in state_reason and an audit row (actor 'ledger').
-- - state_reason: why a refund ended refused or failed (shown to the user).
CREATE TABLE refund_idempotency_keys (
    account_id   text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    request_id   bigint NOT NULL REFERENCES refund_requests (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);

ALTER TABLE refund_requests ADD COLUMN state_reason text;
ALTER TABLE refund_requests DROP CONSTRAINT refund_requests_state_check;
ALTER TABLE refund_requests ADD CONSTRAINT refund_requests_state_check
    CHECK (state IN ('requested', 'approved', 'rejected', 'refused', 'sent', 'paid_out',
                     'failed'));
-- A refused review-queue refund frees its record for another request, like a rejected one.
DROP INDEX refund_requests_one_per_unmatched_record;
CREATE UNIQUE INDEX refund_requests_one_per_unmatched_record ON refund_requests (record_id)
    WHERE account_id IS NULL AND state NOT IN ('rejected', 'refused', 'failed');
