-- "I have paid" claims: a user says a transfer was made for an order the reconciliation did not
-- recognise. Written by order-intake (POST /v1/topup-orders/{code}/claim), read by support in
-- `topupctl review claims` next to the unmatched records that could fit it. The row is the audit
-- of what the user stated, by which account and when; it is never updated by the API.
CREATE TABLE payment_claims (
    id              bigserial PRIMARY KEY,
    order_id        bigint NOT NULL REFERENCES topup_orders (id),
    account_id      text NOT NULL,
    payer_name      text NOT NULL,
    payer_name_norm text NOT NULL,
    amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
    transfer_date   date NOT NULL,
    bank_serial     text NOT NULL DEFAULT '',
    note            text NOT NULL DEFAULT '',
    order_status    text NOT NULL,          -- the order's status when the claim was filed
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- One claim per order: a second one is refused (409 claim_exists); support has the first.
CREATE UNIQUE INDEX payment_claims_one_per_order ON payment_claims (order_id);
CREATE INDEX payment_claims_amount_idx ON payment_claims (amount_fen, transfer_date);
