-- zmsync schema v5 (SQLite): the journal keeps what each op needs to be told and undone (issue #22).
-- `before_values`: the target's values of the changed fields before the op (JSON; for a removal, the record's
-- fields); `base_values`: the agreed base the op was planned against (null: none; a revert restores it);
-- `zoho_id`, `moodle_id`: the records on each side; `refs`: what apply needed besides the fields
-- (Moodle userid/courseid/roleid, the whole row of an upsert); `reason`: why it was planned; `subject`: the
-- Zoho id of the person or record the op is about (a student for their enrolments, grades and payments), so
-- `zmsync history` finds a record and its dependants through one index.
ALTER TABLE journal ADD COLUMN zoho_id TEXT;
ALTER TABLE journal ADD COLUMN moodle_id TEXT;
ALTER TABLE journal ADD COLUMN before_values TEXT;
ALTER TABLE journal ADD COLUMN base_values TEXT;
ALTER TABLE journal ADD COLUMN refs TEXT;
ALTER TABLE journal ADD COLUMN reason TEXT;
ALTER TABLE journal ADD COLUMN subject TEXT;
CREATE INDEX journal_subject ON journal (subject);
-- Ops journalled before this version: the subject their key names (the person of `person|class`).
UPDATE journal SET subject = CASE WHEN instr(key, '|') > 0 THEN substr(key, 1, instr(key, '|') - 1) ELSE key END;
