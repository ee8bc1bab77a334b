-- The audit chain: one row per record, in chain order (chain_index from 1).
-- Every event field is a column; the hash covers them all (see the audit
-- package documentation). UNIQUE (prev_hash) means no two records can link
-- to the same predecessor: the chain cannot fork, even if the append lock
-- were bypassed.
CREATE TABLE audit_events (
    chain_index    bigint      PRIMARY KEY CHECK (chain_index >= 1),
    event_id       text        NOT NULL,
    remediation_id text        NOT NULL,
    seq            integer     NOT NULL CHECK (seq >= 0),
    kind           text        NOT NULL,
    phase          text        NOT NULL,
    actor          text        NOT NULL,
    roles          text[]      NOT NULL,
    channel        text        NOT NULL,
    at             timestamptz NOT NULL,
    correlation_id text        NOT NULL,
    digest         text        NOT NULL,
    base           text        NOT NULL,
    detail         text        NOT NULL,
    prev_hash      text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash           text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    recorded_at    timestamptz NOT NULL,
    CONSTRAINT audit_events_event_id_key UNIQUE (event_id),
    CONSTRAINT audit_events_prev_hash_key UNIQUE (prev_hash)
);

CREATE INDEX audit_events_remediation_id_idx ON audit_events (remediation_id, chain_index);

-- Append-only: rows are never updated or deleted, the table never
-- truncated. The owner (or a superuser) can still disable the triggers;
-- the hash chain is what shows that a row changed.
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
