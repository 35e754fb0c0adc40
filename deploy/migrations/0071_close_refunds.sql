-- Nightly close, refunds sent vs paid out (issue #14 item 5): the day's refund figures of a close,
-- stored beside the others so finance can query them. The canonical content (content_sha256)
-- lists every refund behind them; these columns are a copy of its figure lines. Closes stored
-- before this migration have zeros here (their content, format v1, had no refund section).
ALTER TABLE closes
    ADD COLUMN refunds_approved        bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_approved_fen    bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_sent            bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_sent_fen        bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_paid_out        bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_paid_out_fen    bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_failed          bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_failed_fen      bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_restored        bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_restored_fen    bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_outstanding     bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunds_outstanding_fen bigint NOT NULL DEFAULT 0;
