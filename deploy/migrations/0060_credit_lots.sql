-- Credit lots (issue #14 item 1): every recharge flow opens a lot that keeps the credit's lineage
-- (order, statement record, remitter name, account and bank as the bank reported them, paid
-- amount) and what is left of it. Lots are written only by the ledger's batch transaction, under
-- the lock of their account, in the same transaction as the flows that move them:
-- - a recharge opens its lot with left = the part of the credit that raised the positive balance
--   (a recharge into a negative balance first pays the debt: that part is spent at once);
-- - a flow that lowers the positive part of the balance (consume, a payout) draws what it lowers
--   from the account's lots, oldest first;
-- - a flow that raises it without being a recharge (a usage refund) gives it back to the lots,
--   newest drawn first, never above a lot's paid amount.
-- Invariant (topupctl verify lots_left_mismatch): sum(left_fen) of an account = max(balance, 0).
CREATE TABLE credit_lots (
    id              bigserial PRIMARY KEY,
    account_id      text NOT NULL REFERENCES accounts (account_id),
    flow_id         bigint NOT NULL UNIQUE REFERENCES account_flows (id),
    order_code      text NOT NULL UNIQUE,
    record_id       bigint REFERENCES statement_records (id),
    remitter_name   text NOT NULL DEFAULT '',
    remitter_account text NOT NULL DEFAULT '',
    remitter_bank   text NOT NULL DEFAULT '',
    paid_fen        bigint NOT NULL CHECK (paid_fen > 0),
    left_fen        bigint NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (left_fen >= 0 AND left_fen <= paid_fen)
);
-- The ledger reads the lots of its batch's accounts that still hold something, oldest first.
CREATE INDEX credit_lots_open_idx ON credit_lots (account_id, id) WHERE left_fen > 0;
CREATE INDEX credit_lots_account_idx ON credit_lots (account_id, id);

-- Recharges applied before lots existed: one lot each, with its lineage where the match decision
-- names the record; what is left of the positive balance sits in the newest lots (consumes drew
-- oldest first), each at most its paid amount.
INSERT INTO credit_lots (account_id, flow_id, order_code, record_id, remitter_name,
                         remitter_account, remitter_bank, paid_fen, left_fen, opened_at)
SELECT x.account_id, x.id, x.reference, r.id, COALESCE(r.counterparty_name, ''),
       COALESCE(r.counterparty_account, ''), COALESCE(r.counterparty_bank, ''), x.amount_fen,
       GREATEST(0, LEAST(x.amount_fen, GREATEST(a.balance_fen, 0) - x.newer_fen)),
       x.created_at
FROM (SELECT f.id, f.account_id, f.reference, f.amount_fen, f.created_at,
             COALESCE(sum(f.amount_fen) OVER (PARTITION BY f.account_id ORDER BY f.id DESC
                                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                      0) AS newer_fen
      FROM account_flows f WHERE f.flow_type = 'recharge' AND f.amount_fen > 0) x
JOIN accounts a ON a.account_id = x.account_id
LEFT JOIN topup_orders o ON o.code = x.reference
LEFT JOIN match_decisions d ON d.order_id = o.id AND d.outcome = 'matched'
LEFT JOIN statement_records r ON r.id = d.record_id
ORDER BY x.id;
