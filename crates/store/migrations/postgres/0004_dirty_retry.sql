-- zmsync schema v4 (PostgreSQL): a key whose sync failed stays dirty with its error (issue #7).
-- `failed_at` is when its last attempt failed, `retry_after` when it may be claimed again (exponential back-off
-- from retry.policy); a new event after the failure (marked_at > failed_at) makes it due at once.
ALTER TABLE dirty ADD COLUMN failed_at TIMESTAMPTZ;
ALTER TABLE dirty ADD COLUMN retry_after TIMESTAMPTZ;
