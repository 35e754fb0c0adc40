-- Reconciliation: the reference codes found in a record's remittance text (NFKC, case, spaces and
-- hyphens folded, check character valid), so that an order created after its transfer is matched
-- by reference (rule 1) when its topup.requested arrives, and the sweep can walk unmatched records.
ALTER TABLE statement_records ADD COLUMN ref_codes text[] NOT NULL DEFAULT '{}';

CREATE INDEX statement_records_unmatched_refs_idx ON statement_records USING gin (ref_codes)
    WHERE state = 'unmatched';
CREATE INDEX statement_records_unmatched_id_idx ON statement_records (id)
    WHERE state = 'unmatched';
