-- zmsync schema v7 (SQLite): nothing to change. PostgreSQL's version 7 makes its writes cheaper (JSON kept as
-- text, room on the journal's pages for its outcome updates); SQLite already keeps JSON as text. Both dialects
-- keep the same version numbers.
SELECT 1;
