-- zmsync schema v3 (PostgreSQL): what the webhook receiver and the follow mode need.
-- A claimed dirty mark carries the time it was claimed; a new event for the same key clears it again, so a
-- change that arrives while the record is being synced is never lost.
ALTER TABLE dirty ADD COLUMN claimed_at TIMESTAMPTZ;
CREATE INDEX dirty_unclaimed ON dirty (claimed_at, marked_at);
-- Events are found by their dirty key (source, entity_type, record_id) when a mark is claimed or settled.
CREATE INDEX integration_events_log_key ON integration_events_log (source, entity_type, record_id);
