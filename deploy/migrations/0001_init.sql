-- Initial schema of the top-up platform: accounts, orders, outbox, statements, matching, ledger.
-- All money is bigint fen. Times are timestamptz. Applied once by `topupctl migrate`.

CREATE TABLE accounts (
    account_id      text PRIMARY KEY CHECK (length(account_id) BETWEEN 1 AND 64),
    balance_fen     bigint NOT NULL DEFAULT 0,
    -- Bumped by every ledger batch that changes the balance; the Redis cache keeps the newest.
    balance_version bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE topup_orders (
    id                 bigserial PRIMARY KEY,
    code               text NOT NULL UNIQUE,
    account_id         text NOT NULL CHECK (length(account_id) BETWEEN 1 AND 64),
    amount_fen         bigint NOT NULL CHECK (amount_fen > 0),
    currency           text NOT NULL DEFAULT 'CNY',
    channel            text NOT NULL CHECK (channel IN ('bank_transfer')),
    remitter_name      text NOT NULL,
    remitter_name_norm text NOT NULL,
    remitter_bank      text NOT NULL,
    remarks            text NOT NULL DEFAULT '',
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'processing', 'completed', 'cancelled', 'expired')),
    credited_fen       bigint CHECK (credited_fen IS NULL OR credited_fen > 0),
    amount_mismatch    boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    cancelled_at       timestamptz,
    expired_at         timestamptz,
    matched_at         timestamptz,
    completed_at       timestamptz
);
-- Listing newest first with a stable (created_at, id) cursor.
CREATE INDEX topup_orders_account_idx ON topup_orders (account_id, id DESC);
CREATE INDEX topup_orders_expiry_idx ON topup_orders (expires_at) WHERE status = 'pending';
CREATE INDEX topup_orders_name_amount_idx ON topup_orders (remitter_name_norm, amount_fen)
    WHERE status = 'pending';

CREATE TABLE idempotency_keys (
    account_id   text NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash bytea NOT NULL,   -- SHA-256 of the canonical request body
    order_id     bigint NOT NULL REFERENCES topup_orders (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);

-- Transactional outbox: a state change and its event commit together; a relay per source
-- publishes rows in id order and marks them only after Kafka's delivery report.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    source       text NOT NULL,           -- relay that owns the row, e.g. 'order-intake'
    topic        text NOT NULL,
    kafka_key    text NOT NULL,
    payload      bytea NOT NULL,
    event_id     text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (source, id) WHERE published_at IS NULL;

CREATE TABLE statement_imports (
    id           bigserial PRIMARY KEY,
    sha256       text NOT NULL UNIQUE,
    file_name    text NOT NULL,
    format       text NOT NULL,
    record_count integer NOT NULL DEFAULT 0,
    status       text NOT NULL DEFAULT 'publishing' CHECK (status IN ('publishing', 'completed')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);

-- Every bank statement record the reconciliation worker received, stored once by identity.
CREATE TABLE statement_records (
    id                     bigserial PRIMARY KEY,
    receiving_account      text NOT NULL,
    bank_txn_id            text NOT NULL,
    id_is_fingerprint      boolean NOT NULL DEFAULT false,
    booking_date           date,
    value_date             date NOT NULL,
    amount_fen             bigint NOT NULL,
    currency               text NOT NULL,
    direction              text NOT NULL CHECK (direction IN ('credit', 'debit')),
    reversal               boolean NOT NULL DEFAULT false,
    counterparty_name      text NOT NULL DEFAULT '',
    counterparty_name_norm text NOT NULL DEFAULT '',
    counterparty_account   text NOT NULL DEFAULT '',
    counterparty_bank      text NOT NULL DEFAULT '',
    remittance_info        text NOT NULL DEFAULT '',
    source_file            text NOT NULL DEFAULT '',
    source_location        text NOT NULL DEFAULT '',
    format                 text NOT NULL DEFAULT '',
    event_id               text NOT NULL,
    -- ignored: debit or not into a receiving account; unmatched: waiting for an order;
    -- matched: credited to an order; review: in the review queue; refund / dismissed: by support.
    state                  text NOT NULL
                           CHECK (state IN ('ignored', 'unmatched', 'matched', 'review', 'refund',
                                            'dismissed')),
    received_at            timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (receiving_account, bank_txn_id)
);
CREATE INDEX statement_records_unmatched_idx ON statement_records (counterparty_name_norm, amount_fen)
    WHERE state = 'unmatched';

-- Why a record went where it went: one row per decision, automatic or manual.
CREATE TABLE match_decisions (
    id           bigserial PRIMARY KEY,
    record_id    bigint NOT NULL REFERENCES statement_records (id),
    order_id     bigint REFERENCES topup_orders (id),
    outcome      text NOT NULL CHECK (outcome IN ('matched', 'review', 'unmatched', 'ignored',
                                                  'refund', 'dismissed')),
    rule         text NOT NULL CHECK (rule IN ('reference', 'name_amount', 'manual', 'none')),
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,  -- fields that matched, candidates considered
    decided_by   text NOT NULL,                       -- 'reconciliation' or the support user
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- An order is credited by at most one transfer through matching.
CREATE UNIQUE INDEX match_decisions_one_match_per_order ON match_decisions (order_id)
    WHERE outcome = 'matched';
CREATE UNIQUE INDEX match_decisions_one_match_per_record ON match_decisions (record_id)
    WHERE outcome = 'matched';

CREATE TABLE review_queue (
    id          bigserial PRIMARY KEY,
    record_id   bigint NOT NULL REFERENCES statement_records (id),
    order_id    bigint REFERENCES topup_orders (id),
    reason      text NOT NULL CHECK (reason IN ('order_not_pending', 'ambiguous', 'amount_mismatch',
                                                'aged_unmatched', 'unknown_reference')),
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolution  text CHECK (resolution IN ('matched', 'refund', 'ignored')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolved_by text
);
CREATE UNIQUE INDEX review_queue_one_open_per_record ON review_queue (record_id, reason)
    WHERE status = 'open';

-- Audit trail of every support action on the review queue.
CREATE TABLE review_actions (
    id         bigserial PRIMARY KEY,
    review_id  bigint NOT NULL REFERENCES review_queue (id),
    actor      text NOT NULL,
    action     text NOT NULL CHECK (action IN ('match', 'refund', 'ignore')),
    reason     text NOT NULL,
    order_id   bigint REFERENCES topup_orders (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The ledger: one row per money event, ever. Also the outbox of account.flows.
CREATE TABLE account_flows (
    id                bigserial PRIMARY KEY,
    event_id          text NOT NULL UNIQUE,
    account_id        text NOT NULL REFERENCES accounts (account_id),
    flow_type         text NOT NULL CHECK (flow_type IN ('recharge', 'consume', 'refund')),
    amount_fen        bigint NOT NULL CHECK (amount_fen <> 0),
    balance_after_fen bigint NOT NULL,
    reference         text NOT NULL,
    occurred_at       timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz,
    CHECK ((flow_type = 'recharge' AND amount_fen > 0) OR (flow_type = 'consume' AND amount_fen < 0)
           OR flow_type = 'refund')
);
CREATE INDEX account_flows_account_idx ON account_flows (account_id, id DESC);
CREATE INDEX account_flows_account_type_idx ON account_flows (account_id, flow_type, id DESC);
CREATE INDEX account_flows_unpublished_idx ON account_flows (id) WHERE published_at IS NULL;
-- Each order is recharged at most once.
CREATE UNIQUE INDEX account_flows_one_recharge_per_order ON account_flows (reference)
    WHERE flow_type = 'recharge';
