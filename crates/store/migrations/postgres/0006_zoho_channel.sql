-- The Zoho Notification API channel that `zmsync zoho watch` subscribed: at most one row (the channel id is a
-- number zmsync chose; Zoho echoes it in every callback).
CREATE TABLE zoho_channel (
    channel_id     TEXT PRIMARY KEY,
    notify_url     TEXT NOT NULL,
    events         JSONB NOT NULL,
    expiry         TIMESTAMPTZ NOT NULL,
    subscribed_at  TIMESTAMPTZ NOT NULL,
    renewed_at     TIMESTAMPTZ NOT NULL
);
