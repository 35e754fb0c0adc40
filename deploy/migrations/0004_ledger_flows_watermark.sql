-- Ledger: account.flows progress as one watermark instead of a published_at per flow.
-- Setting published_at rewrote every flow once more (a non-HOT update: a new row version and an
-- entry in each of the table's five indexes), which cost the ledger about a third of its
-- throughput. The publisher now keeps the id up to which every flow is published; flows are
-- final up to an id once no ledger transaction that could still insert below it is running
-- (the ledger holds a shared advisory lock per batch transaction, the publisher takes it
-- exclusively for an instant to read that id). account_flows.published_at is no longer set.
CREATE TABLE ledger_flows_publisher (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    published_upto bigint NOT NULL,   -- every flow with id <= this is on account.flows
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- Flows already marked published by the previous scheme stay published.
INSERT INTO ledger_flows_publisher (published_upto)
SELECT COALESCE((SELECT min(id) - 1 FROM account_flows WHERE published_at IS NULL),
                (SELECT max(id) FROM account_flows), 0);
-- Nothing sets published_at any more: this index would hold every flow for nothing.
DROP INDEX account_flows_unpublished_idx;
