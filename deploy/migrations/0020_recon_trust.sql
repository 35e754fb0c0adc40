-- Reconciliation trust (issue #15 items 1 and 4; services/reconciliation/README.md "Trust").
--
-- account_payers: the payer names an account owns, set by support with `topupctl payers` and
-- audited. Rule 2 (name and amount) credits an order only when the transfer's normalised
-- counterparty name is an active payer of the order's account; any other name match goes to
-- review (unverified_payer). A row is never deleted: removing a payer stamps removed_by/at/reason,
-- and the name can be added again later as a new row. The trigger below keeps it that way.
CREATE TABLE account_payers (
    id             bigserial PRIMARY KEY,
    account_id     text NOT NULL CHECK (length(account_id) BETWEEN 1 AND 64),
    name_norm      text NOT NULL CHECK (name_norm <> ''),  -- names_normalize() of display_name
    display_name   text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    added_by       text NOT NULL CHECK (length(added_by) BETWEEN 1 AND 100),
    added_at       timestamptz NOT NULL DEFAULT now(),
    reason         text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    removed_by     text CHECK (length(removed_by) BETWEEN 1 AND 100),
    removed_at     timestamptz,
    removed_reason text CHECK (length(removed_reason) BETWEEN 1 AND 1000),
    CONSTRAINT account_payers_removal_audited CHECK (
        (removed_at IS NULL AND removed_by IS NULL AND removed_reason IS NULL)
        OR (removed_at IS NOT NULL AND removed_by IS NOT NULL AND removed_reason IS NOT NULL))
);
-- One active row per account and name; rule 2's probe (account, name) uses it.
CREATE UNIQUE INDEX account_payers_active_idx ON account_payers (account_id, name_norm)
    WHERE removed_at IS NULL;

-- Audited means nothing is deleted and nothing but the removal is ever written after the insert.
CREATE FUNCTION account_payers_audited() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'account_payers rows are never deleted (remove a payer with topupctl payers remove)'
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.removed_at IS NOT NULL
       OR NEW.id <> OLD.id OR NEW.account_id <> OLD.account_id OR NEW.name_norm <> OLD.name_norm
       OR NEW.display_name <> OLD.display_name OR NEW.added_by <> OLD.added_by
       OR NEW.added_at <> OLD.added_at OR NEW.reason <> OLD.reason THEN
        RAISE EXCEPTION 'account_payers: only an active payer''s removal may be written'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER account_payers_audited BEFORE UPDATE OR DELETE ON account_payers
    FOR EACH ROW EXECUTE FUNCTION account_payers_audited();

-- The review reasons of the trust checks: above_ceiling (a record above RECON_MAX_RECORD_FEN is
-- never matched automatically), unverified_payer (a name match to an account that does not own
-- the name), late_order (a name match to an order created after the transfer arrived).
ALTER TABLE review_queue DROP CONSTRAINT review_queue_reason_check;
ALTER TABLE review_queue ADD CONSTRAINT review_queue_reason_check CHECK (
    reason IN ('order_not_pending', 'ambiguous', 'amount_mismatch', 'aged_unmatched',
               'unknown_reference', 'above_ceiling', 'unverified_payer', 'late_order'));
