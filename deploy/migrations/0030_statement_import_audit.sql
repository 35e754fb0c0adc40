-- statement-import: what finance accepted, what the file said of its balances, and which bank ids
-- do not identify one transaction (services/statement-import/README.md).

-- An import whose balances do not add up is refused unless finance accepts the gap with
-- --accept-balance-gap --reason: who (the operating-system user and host, and the PostgreSQL
-- role), when, why, and every gap (kind, statement, account, currency, expected, stated, gap in
-- fen) are kept with the import. records_sha256 is the SHA-256 over the records' provenance
-- digests in publication order (statement_import_records): a resumed import checks that it
-- reads the file as the first run did. notes: the deviations from the format that were accepted
-- (a booked entry without BookgDt, ...), with how often they occurred.
ALTER TABLE statement_imports
    ADD COLUMN records_sha256 text CHECK (records_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN balance_gaps jsonb CHECK (jsonb_typeof(balance_gaps) = 'array'),
    ADD COLUMN gap_accepted_by text,
    ADD COLUMN gap_accepted_role text,
    ADD COLUMN gap_accepted_at timestamptz,
    ADD COLUMN gap_reason text,
    ADD COLUMN notes jsonb CHECK (jsonb_typeof(notes) = 'array'),
    ADD CONSTRAINT statement_imports_gap_audited CHECK (
        (balance_gaps IS NULL AND gap_accepted_by IS NULL AND gap_accepted_role IS NULL
            AND gap_accepted_at IS NULL AND gap_reason IS NULL)
        OR (balance_gaps IS NOT NULL AND gap_accepted_by <> '' AND gap_accepted_role <> ''
            AND gap_accepted_at IS NOT NULL AND length(btrim(gap_reason)) > 0));

-- What each import said of an account's balance at its start and at its end (per currency): the
-- next file's opening must be the closing of the import before it, or it is a gap.
CREATE TABLE statement_import_balances (
    import_id         bigint NOT NULL REFERENCES statement_imports (id),
    receiving_account text NOT NULL,
    currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    statement         text NOT NULL, -- how the import named the statement that opens the span
    opening_date      date NOT NULL,
    opening_fen       bigint NOT NULL,
    closing_date      date NOT NULL,
    closing_fen       bigint NOT NULL,
    PRIMARY KEY (import_id, receiving_account, currency)
);
CREATE INDEX statement_import_balances_account_idx
    ON statement_import_balances (receiving_account, currency, closing_date);

-- Bank ids found repeating inside one file for different transactions: their records are
-- identified by a fingerprint instead, in that import and in every later one (so overlapping
-- files agree). first_import_id is the import that found it.
CREATE TABLE statement_shared_ids (
    receiving_account text NOT NULL,
    bank_txn_id       text NOT NULL,
    first_import_id   bigint NOT NULL REFERENCES statement_imports (id),
    PRIMARY KEY (receiving_account, bank_txn_id)
);

-- Whether an id found repeating now was published alone by an earlier import (then the file is
-- refused: which of its records that one was cannot be told). Only the bank's own ids: a
-- fingerprint is never looked up, and leaving them out keeps a CSV import's COPY cheap.
CREATE INDEX statement_import_records_bank_id_idx
    ON statement_import_records (receiving_account, bank_txn_id)
    WHERE bank_txn_id NOT LIKE 'fp:%';
