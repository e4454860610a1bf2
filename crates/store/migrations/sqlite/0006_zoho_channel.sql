-- The Zoho Notification API channel that `zmsync zoho watch` subscribed: at most one row (the channel id is a
-- number zmsync chose; Zoho echoes it in every callback).
CREATE TABLE zoho_channel (
    channel_id     TEXT PRIMARY KEY,
    notify_url     TEXT NOT NULL,
    events         TEXT NOT NULL,
    expiry         TEXT NOT NULL,
    subscribed_at  TEXT NOT NULL,
    renewed_at     TEXT NOT NULL
);
