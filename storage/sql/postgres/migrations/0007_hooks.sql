-- REST hooks (the Zapier convention) are subscriptions of another kind: the same rows, outbox,
-- dispatcher, retries and isolation; only a 410 Gone removes a hook where it disables a
-- subscription. Lookups by URL (n8n's checkExists, ?url=) get an index.
ALTER TABLE subscriptions ADD COLUMN kind text NOT NULL DEFAULT 'subscription'
    CHECK (kind IN ('subscription', 'hook'));
CREATE INDEX subscriptions_by_kind_url ON subscriptions (kind, url);
