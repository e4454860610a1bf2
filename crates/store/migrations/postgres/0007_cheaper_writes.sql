-- zmsync schema v7 (PostgreSQL): cheaper writes (issue #25).
-- The JSON that zmsync writes and reads back whole is kept as JSON (its text, checked) instead of JSONB (parsed
-- into a binary tree on the way in, rendered back to text on the way out): zmsync never searches inside these
-- values, and the parse and render were a large share of PostgreSQL's work in a run. `->`, `->>` and `::jsonb`
-- still work on them in psql.
ALTER TABLE records ALTER COLUMN fields TYPE JSON USING fields::json;
ALTER TABLE records_staging ALTER COLUMN fields TYPE JSON USING fields::json;
ALTER TABLE sync_state ALTER COLUMN fields TYPE JSON USING fields::json;
ALTER TABLE journal
    ALTER COLUMN changes TYPE JSON USING changes::json,
    ALTER COLUMN fingerprints TYPE JSON USING fingerprints::json,
    ALTER COLUMN before_values TYPE JSON USING before_values::json,
    ALTER COLUMN base_values TYPE JSON USING base_values::json,
    ALTER COLUMN refs TYPE JSON USING refs::json;
-- A journal row is written once when planned and updated once with its outcome. Half-empty pages let that
-- update stay on the row's page without touching the journal's indexes (a HOT update): a run's outcome writes
-- take a third of the time.
ALTER TABLE journal SET (fillfactor = 50);
-- No query looks the journal up by (entity, key) since `history` goes by subject (version 5): one index less to
-- keep per journalled op.
DROP INDEX IF EXISTS journal_entity_key;
