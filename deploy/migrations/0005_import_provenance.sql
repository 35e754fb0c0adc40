-- Provenance of bank records (SPEC, Trust: a credit needs its source in PostgreSQL).
-- Before statement-import publishes anything of a file, it records here, in one committed
-- transaction, every record it is about to publish: the SHA-256 of the record as published
-- without its envelope (event_bsr_digest() in common/src/event.c). The reconciliation worker
-- takes a bank.statement.records event only when that digest is recorded for an import whose
-- status is 'publishing' or 'completed'; anything else is dead-lettered. A resumed import
-- publishes the same records again, with the same digests (the envelope is left out).
CREATE TABLE statement_import_records (
    import_id         bigint NOT NULL REFERENCES statement_imports (id),
    seq               integer NOT NULL CHECK (seq > 0),  -- position in the import's publication
    digest            bytea NOT NULL CHECK (length(digest) = 32),
    receiving_account text NOT NULL,
    bank_txn_id       text NOT NULL,
    amount_fen        bigint NOT NULL,
    PRIMARY KEY (import_id, seq)
);
CREATE INDEX statement_import_records_digest_idx ON statement_import_records (digest);

-- The import a stored record came from (set by the worker from the digest's row); NULL only for
-- records stored before this migration.
ALTER TABLE statement_records ADD COLUMN import_id bigint REFERENCES statement_imports (id);
