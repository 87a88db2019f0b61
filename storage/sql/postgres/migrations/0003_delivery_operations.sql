-- Delivery operations: disabling (410 Gone, continuous failure), secret rotation, per-subscription
-- isolation, the attempt log's error class, and the indexes that finding, claiming and retention
-- need.

ALTER TABLE subscriptions ADD COLUMN disabled_reason text;
-- The first failed attempt since the last success; NULL while the subscriber is healthy.
ALTER TABLE subscriptions ADD COLUMN failing_since double precision;
ALTER TABLE subscriptions ADD COLUMN previous_secret text;
ALTER TABLE subscriptions ADD COLUMN previous_secret_expires_at double precision;
ALTER TABLE subscriptions ADD COLUMN max_in_flight integer;
ALTER TABLE subscriptions ADD COLUMN rate_limit double precision;

ALTER TABLE delivery_attempts ADD COLUMN error_class text;

CREATE INDEX deliveries_in_flight ON deliveries (claimed_until) WHERE claimed_until IS NOT NULL;
CREATE INDEX deliveries_by_status ON deliveries (status, seq);
CREATE INDEX events_by_created ON events (created_at);
CREATE INDEX inbound_webhooks_by_received ON inbound_webhooks (received_at);
