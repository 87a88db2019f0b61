-- A webhook that repeats one already recorded for the same job attempt (a provider's retry, a
-- duplicate send) is not recorded again: `digest` names what it reports (see add_webhook), and
-- the unique index makes the insert of a repeat do nothing, however many arrive at once. Rows
-- from before this migration have no digest, and NULLs never conflict.
ALTER TABLE inbound_webhooks ADD COLUMN digest TEXT;
CREATE UNIQUE INDEX inbound_webhooks_once ON inbound_webhooks (job_id, attempt_no, digest);
