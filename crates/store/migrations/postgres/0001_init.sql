-- zmsync schema v1 (PostgreSQL). Timestamps are timestamptz; JSON is jsonb.
CREATE TABLE app_settings (
    key         TEXT PRIMARY KEY,
    value       JSONB NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Zoho's short-lived access token, cached so that separate runs share it (Zoho allows 10 refreshes per
-- 10 minutes). The refresh token and client secret never come here: they stay in the environment.
CREATE TABLE zoho_tokens (
    client_id     TEXT PRIMARY KEY,
    accounts_url  TEXT NOT NULL,
    api_domain    TEXT NOT NULL,
    access_token  TEXT NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    refreshed_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE runs (
    id                 BIGSERIAL PRIMARY KEY,
    kind               TEXT NOT NULL,
    module             TEXT,
    status             TEXT NOT NULL,
    dry_run            BOOLEAN NOT NULL DEFAULT FALSE,
    allow_mass_change  BOOLEAN NOT NULL DEFAULT FALSE,
    started_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ,
    host               TEXT,
    pid                INTEGER,
    summary            JSONB,
    error              TEXT
);

-- The last snapshot of each side.
CREATE TABLE records (
    source       TEXT NOT NULL,
    entity       TEXT NOT NULL,
    key          TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    fields       JSONB NOT NULL,
    fetched_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, entity, key)
);

CREATE TABLE links (
    entity      TEXT NOT NULL,
    zoho_id     TEXT NOT NULL,
    moodle_id   TEXT NOT NULL,
    key         TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entity, zoho_id),
    UNIQUE (entity, moodle_id)
);

-- What both sides agreed on after the last successful sync: the base of the 3-way diff.
CREATE TABLE sync_state (
    entity       TEXT NOT NULL,
    key          TEXT NOT NULL,
    fields       JSONB NOT NULL,
    fingerprint  TEXT NOT NULL,
    synced_at    TIMESTAMPTZ NOT NULL,
    run_id       BIGINT,
    PRIMARY KEY (entity, key)
);

-- Every planned op and its outcome, written as each op completes.
CREATE TABLE journal (
    id            BIGSERIAL PRIMARY KEY,
    run_id        BIGINT NOT NULL REFERENCES runs(id),
    seq           INTEGER NOT NULL,
    entity        TEXT NOT NULL,
    key           TEXT NOT NULL,
    target        TEXT NOT NULL,
    op            TEXT NOT NULL,
    changes       JSONB,
    fingerprints  JSONB,
    outcome       TEXT NOT NULL,
    target_id     TEXT,
    message       TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    completed_at  TIMESTAMPTZ,
    UNIQUE (run_id, seq)
);
CREATE INDEX journal_entity_key ON journal (entity, key);

CREATE TABLE integration_events_log (
    id             BIGSERIAL PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    source         TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    module         TEXT,
    entity_type    TEXT,
    record_id      TEXT,
    payload        JSONB NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending',
    retry_count    INTEGER NOT NULL DEFAULT 0,
    error_message  TEXT,
    processed_at   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX integration_events_log_status ON integration_events_log (status, created_at);

CREATE TABLE dirty (
    source          TEXT NOT NULL,
    entity          TEXT NOT NULL,
    key             TEXT NOT NULL,
    first_event_id  TEXT,
    marked_at       TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    PRIMARY KEY (source, entity, key)
);

-- Incremental cursors (largest Modified_Time seen per module), for If-Modified-Since.
CREATE TABLE cursors (
    source      TEXT NOT NULL,
    entity      TEXT NOT NULL,
    cursor      TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, entity)
);
