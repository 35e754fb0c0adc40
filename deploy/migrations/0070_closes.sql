-- Nightly close (issue #14 item 5): one row per run of `topupctl close --date D`. A run stores
-- its canonical content (the day's figures: statement credits, recharges, every account's
-- roll-forward; the previous day's hash is part of it) and the SHA-256 of that content, so the
-- closes form a chain: changing a closed day changes its hash and every later day's. A day is
-- never overwritten: a rerun whose content differs is stored as a new row naming the row it
-- supersedes (and reported as the break closed_day_changed); a rerun with the same content
-- stores nothing. Runs of one day are serialised by a session advisory lock (see topupctl README).
CREATE TABLE closes (
    id                bigserial PRIMARY KEY,
    business_date     date NOT NULL,             -- Asia/Shanghai calendar day
    run_by            text NOT NULL CHECK (length(run_by) BETWEEN 1 AND 128),
    run_at            timestamptz NOT NULL DEFAULT now(),
    statement_credits bigint NOT NULL,
    statement_credits_fen bigint NOT NULL,
    matched_records   bigint NOT NULL,
    matched_fen       bigint NOT NULL,
    recharge_flows    bigint NOT NULL,
    recharge_fen      bigint NOT NULL,
    consume_fen       bigint NOT NULL,
    refund_fen        bigint NOT NULL,
    opening_fen       bigint NOT NULL,
    closing_fen       bigint NOT NULL,
    breaks            bigint NOT NULL CHECK (breaks >= 0),
    breaks_text       text NOT NULL DEFAULT '',  -- the breaks as printed; not hashed
    content           text NOT NULL,
    content_sha256    text NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    prev_day_sha256   text CHECK (prev_day_sha256 ~ '^[0-9a-f]{64}$'),  -- NULL: no close of D-1
    supersedes        bigint UNIQUE REFERENCES closes (id)
);
CREATE INDEX closes_day_idx ON closes (business_date, id DESC);

-- Each account's roll-forward in a close: the next day's opening comes from here.
CREATE TABLE close_accounts (
    close_id     bigint NOT NULL REFERENCES closes (id),
    account_id   text NOT NULL,
    opening_fen  bigint NOT NULL,
    recharge_fen bigint NOT NULL,
    consume_fen  bigint NOT NULL,
    refund_fen   bigint NOT NULL,
    closing_fen  bigint NOT NULL,
    PRIMARY KEY (close_id, account_id)
);
