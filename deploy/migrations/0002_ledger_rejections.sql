-- Ledger: money events the ledger refused (valid messages its state cannot apply), kept durably.
-- A rejected event stays rejected on every redelivery (same reason, dead-lettered again) instead
-- of being judged again against a balance that moved on; finance reads this table, not only the
-- DLQ topic, to follow up (e.g. a second PaymentMatched for an order that is already credited).
CREATE TABLE ledger_rejections (
    event_id         text PRIMARY KEY,
    account_id       text NOT NULL,
    flow_type        text NOT NULL CHECK (flow_type IN ('recharge', 'consume', 'refund')),
    amount_fen       bigint NOT NULL,
    reference        text NOT NULL,
    reason           text NOT NULL,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    occurred_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_rejections_account_idx ON ledger_rejections (account_id, created_at);
