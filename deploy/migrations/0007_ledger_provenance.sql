-- Ledger provenance (SPEC, Trust: a credit needs its source in PostgreSQL; issue #15 items 1 and 5).
-- - A usage refund names the usage it refunds: refund_of is that consume flow's reference (the
--   gateway's usage request id) on the same account. The ledger credits a usage refund only up to
--   what that usage consumed minus what was refunded of it already; the index finds those refunds.
-- - A usage request id is charged once per account: a second UsageRecorded with the same request
--   id under a new event id (a gateway retry that made a new event) is refused, not charged again.
--   Refused before this index existed by nobody: on a database holding such repeats the index
--   cannot be built and the migration stops, naming them for finance to settle first.
ALTER TABLE account_flows ADD COLUMN refund_of text;
CREATE INDEX account_flows_refund_of_idx ON account_flows (account_id, refund_of)
    WHERE flow_type = 'refund' AND refund_of IS NOT NULL;
CREATE UNIQUE INDEX account_flows_one_consume_per_request ON account_flows (account_id, reference)
    WHERE flow_type = 'consume';

-- Usage refunds waiting for their usage. usage.recorded and refund.issued are two topics, so a
-- refund can reach the ledger before the usage it names (a backlog on one topic, a rebalance).
-- Such a refund waits here, credited nothing, and is applied in the batch that brings its usage
-- (every batch reads the waiting refunds of its accounts, under the account locks) or refused
-- once LEDGER_REFUND_WAIT_S has passed. The offset of its message moves on: this row is it.
CREATE TABLE ledger_pending_refunds (
    event_id         text PRIMARY KEY,
    account_id       text NOT NULL REFERENCES accounts (account_id),
    refund_id        text NOT NULL,
    refund_of        text NOT NULL,
    amount_fen       bigint NOT NULL CHECK (amount_fen > 0),
    occurred_at      timestamptz NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_pending_refunds_account_idx ON ledger_pending_refunds (account_id, created_at);
