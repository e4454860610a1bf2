-- Snapshot pages land here in short transactions; one transaction per module then swaps them into `records`.
CREATE TABLE records_staging (
    snapshot_id  TEXT NOT NULL,
    source       TEXT NOT NULL,
    entity       TEXT NOT NULL,
    key          TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    fields       TEXT NOT NULL,
    fetched_at   TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, key)
);
