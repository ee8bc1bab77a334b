-- Decisions of the built-in ledger. The JSONB document is the record (the
-- same JSON the file store writes); the columns copy what is queried.
-- The idempotency key is bytea: keys may contain NUL bytes, which text
-- cannot hold.
CREATE TABLE remediator_decisions (
    id             text        PRIMARY KEY CHECK (id ~ '^dec_[0-9a-f]{24}$'),
    key            bytea       NOT NULL,
    remediation_id text        NOT NULL,
    repo           text        NOT NULL,
    status         text        NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    doc            jsonb       NOT NULL,
    CONSTRAINT remediator_decisions_key_key UNIQUE (key)
);

CREATE INDEX remediator_decisions_remediation_id_idx ON remediator_decisions (remediation_id);
CREATE INDEX remediator_decisions_repo_created_at_idx ON remediator_decisions (repo, created_at);
CREATE INDEX remediator_decisions_status_idx ON remediator_decisions (status);
