-- Payout files (issue #14 item 3): approved refunds whose reservation the ledger applied (or
-- review-queue refunds, which reserve nothing) written as one bank batch file. The file's bytes
-- are recorded here, with their SHA-256, in the transaction that moves its refunds to 'sent' and
-- stores each one's end-to-end id; the file is written to disk from this row afterwards
-- (written_at), so a crash between the two writes the same bytes again, never a second batch.
CREATE TABLE payout_files (
    id          bigserial PRIMARY KEY,
    msg_id      text NOT NULL UNIQUE,
    format      text NOT NULL CHECK (format IN ('pain001', 'cn-csv')),
    encoding    text NOT NULL CHECK (encoding IN ('utf-8', 'gbk')),
    file_name   text NOT NULL UNIQUE,
    content     bytea NOT NULL,
    sha256      text NOT NULL UNIQUE,
    refunds     integer NOT NULL CHECK (refunds > 0),
    total_fen   bigint NOT NULL CHECK (total_fen > 0),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    written_at  timestamptz
);

CREATE TABLE payout_file_items (
    file_id       bigint NOT NULL REFERENCES payout_files (id),
    request_id    bigint NOT NULL UNIQUE REFERENCES refund_requests (id),
    end_to_end_id text NOT NULL UNIQUE,
    amount_fen    bigint NOT NULL CHECK (amount_fen > 0),
    PRIMARY KEY (file_id, request_id)
);
