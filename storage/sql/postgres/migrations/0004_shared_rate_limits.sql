-- Rate limits shared by every worker: when the subscription's token bucket is next empty (GCRA's
-- "theoretical arrival time"); NULL while it has never been used.
ALTER TABLE subscriptions ADD COLUMN rate_tat double precision;
