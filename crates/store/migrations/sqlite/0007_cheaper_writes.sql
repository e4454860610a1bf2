-- zmsync schema v7 (SQLite): cheaper writes (issue #25). No query looks the journal up by (entity, key) since
-- `history` goes by subject (version 5): one index less to keep per journalled op. (PostgreSQL's version 7 also
-- keeps its JSON as text, as SQLite always has.)
DROP INDEX IF EXISTS journal_entity_key;
