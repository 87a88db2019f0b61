-- Named queries of the SQLite store where its SQL differs from PostgreSQL's; the portable ones
-- are in ../queries.sql. Each starts with a "-- name:" line; parameters are :named.

-- name: job_list
SELECT * FROM jobs
WHERE (:status IS NULL OR status = :status)
  AND (:after IS NULL OR seq < (SELECT seq FROM jobs WHERE id = :after))
ORDER BY seq DESC
LIMIT :limit;

-- name: job_claim
UPDATE jobs SET claimed_by = :worker, claimed_until = :until
WHERE seq IN (
    SELECT seq FROM jobs
    WHERE next_check_at <= :now
      AND (claimed_until IS NULL OR claimed_until < :now)
      AND provider NOT IN (SELECT value FROM json_each(:skip_providers))
    ORDER BY next_check_at
    LIMIT :limit)
RETURNING *;

-- name: job_record_submission
UPDATE jobs SET
    provider_job_id = :provider_job_id,
    status = CASE WHEN :status = 'in_progress' THEN 'in_progress' ELSE status END,
    progress = max(progress, coalesce(:progress, 0)),
    attempts = :attempts,
    submitted_at = :now,
    updated_at = :now,
    next_check_at = :next_check_at,
    check_count = 0,
    claimed_by = NULL,
    claimed_until = NULL
WHERE id = :id AND attempt_no = :attempt_no AND claimed_by = :worker
  AND status IN ('queued', 'in_progress');

-- name: job_record_progress
UPDATE jobs SET
    status = CASE WHEN :status = 'in_progress' THEN 'in_progress' ELSE status END,
    progress = max(progress, coalesce(:progress, 0)),
    provider_job_id = coalesce(provider_job_id, :provider_job_id),
    updated_at = CASE
        WHEN (:status = 'in_progress' AND status = 'queued') OR coalesce(:progress, 0) > progress
        THEN :now ELSE updated_at END
WHERE id = :id AND attempt_no = :attempt_no AND status IN ('queued', 'in_progress');

-- name: job_record_poll
UPDATE jobs SET
    status = CASE WHEN :status = 'in_progress' THEN 'in_progress' ELSE status END,
    progress = max(progress, coalesce(:progress, 0)),
    updated_at = CASE
        WHEN (:status = 'in_progress' AND status = 'queued') OR coalesce(:progress, 0) > progress
        THEN :now ELSE updated_at END,
    next_check_at = :next_check_at,
    check_count = check_count + 1,
    claimed_by = NULL,
    claimed_until = NULL
WHERE id = :id AND attempt_no = :attempt_no AND claimed_by = :worker
  AND status IN ('queued', 'in_progress');

-- name: job_poke
UPDATE jobs SET next_check_at = min(next_check_at, :now)
WHERE id = :id AND status IN ('queued', 'in_progress') AND next_check_at IS NOT NULL;

-- name: event_list
SELECT * FROM events
WHERE (:type IS NULL OR type = :type)
  AND (:after IS NULL OR seq < (SELECT seq FROM events WHERE id = :after))
ORDER BY seq DESC
LIMIT :limit;

-- name: webhook_claim
UPDATE inbound_webhooks SET claimed_by = :worker, claimed_until = :until
WHERE id IN (
    SELECT id FROM inbound_webhooks
    WHERE processed_at IS NULL AND (claimed_until IS NULL OR claimed_until < :now)
    ORDER BY id
    LIMIT :limit)
RETURNING id, job_id, provider, attempt_no, trusted, report, received_at;

-- name: subscription_list
SELECT * FROM subscriptions
WHERE (:after IS NULL OR seq < (SELECT seq FROM subscriptions WHERE id = :after))
ORDER BY seq DESC
LIMIT :limit;

-- name: delivery_list
SELECT * FROM deliveries
WHERE (:status IS NULL OR status = :status)
  AND (:subscription_id IS NULL OR subscription_id = :subscription_id)
  AND (:event_id IS NULL OR event_id = :event_id)
  AND (:since IS NULL OR created_at >= :since)
  AND (:after IS NULL OR seq < (SELECT seq FROM deliveries WHERE id = :after))
ORDER BY seq DESC
LIMIT :limit;

-- name: attempt_list
SELECT delivery_seq, attempted_at, status_code, duration_ms, error, error_class, response_body
FROM delivery_attempts
WHERE delivery_seq IN (SELECT value FROM json_each(:seqs))
ORDER BY id;

-- name: deliveries_redeliver
-- Sends an event again to its targets (or one subscription's): due now, a full schedule again.
-- Deliveries in flight are left alone; so are those of subscriptions not active any more.
UPDATE deliveries SET status = 'pending', attempt_count = 0, next_attempt_at = :now,
                      updated_at = :now
WHERE event_id = :event_id
  AND (:subscription_id IS NULL OR subscription_id = :subscription_id)
  AND claimed_by IS NULL
  AND (subscription_id IS NULL
       OR subscription_id IN (SELECT id FROM subscriptions WHERE status = 'active'));

-- name: deliveries_recover
UPDATE deliveries SET status = 'pending', attempt_count = 0, next_attempt_at = :now,
                      updated_at = :now
WHERE seq IN (
    SELECT seq FROM deliveries
    WHERE subscription_id = :subscription_id AND status IN ('failed', 'skipped')
      AND created_at >= :since AND created_at < :until
    ORDER BY seq
    LIMIT :limit);

-- name: delivery_claim_lock
-- SQLite's single writer already makes claims take turns.
SELECT 1;

-- name: delivery_claim
-- Due deliveries, oldest first, with at most max_in_flight (the subscription's, else :cap) in
-- flight per target - a subscription, or a callback URL - across all workers: a target at its
-- cap is skipped, so one slow receiver can never take every slot.
-- INDEXED BY: left alone, the planner prefers deliveries_by_status and reads every pending
-- delivery on each claim, which grows with the backlog; these partial indexes keep a claim
-- proportional to what it takes.
UPDATE deliveries SET claimed_by = :worker, claimed_until = :until
WHERE seq IN (
    WITH in_flight AS (
        SELECT coalesce(subscription_id, url) AS target, count(*) AS n
        FROM deliveries INDEXED BY deliveries_in_flight
        WHERE claimed_until >= :now AND status = 'pending'
        GROUP BY target
    ),
    at_cap AS (
        SELECT f.target FROM in_flight AS f
        LEFT JOIN subscriptions AS s ON s.id = f.target
        WHERE f.n >= coalesce(s.max_in_flight, :cap)
    ),
    candidates AS (
        SELECT d.seq, coalesce(d.subscription_id, d.url) AS target, d.next_attempt_at,
               coalesce(s.max_in_flight, :cap) AS cap
        FROM deliveries AS d INDEXED BY deliveries_due
        LEFT JOIN subscriptions AS s ON s.id = d.subscription_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= :now
          AND (d.claimed_until IS NULL OR d.claimed_until < :now)
          AND (s.status IS NULL OR s.status = 'active')
          AND coalesce(d.subscription_id, d.url) NOT IN (SELECT target FROM at_cap)
        ORDER BY d.next_attempt_at
        LIMIT :scan
    ),
    ranked AS (
        SELECT seq, target, cap,
               row_number() OVER (PARTITION BY target ORDER BY next_attempt_at) AS nth
        FROM candidates
    )
    SELECT ranked.seq FROM ranked
    LEFT JOIN in_flight ON in_flight.target = ranked.target
    WHERE ranked.nth + coalesce(in_flight.n, 0) <= ranked.cap
    LIMIT :limit)
RETURNING seq;

-- name: delivery_tasks
SELECT d.seq, d.id, d.event_id, d.subscription_id, d.url, d.attempt_count, e.payload, s.secret,
       CASE WHEN s.previous_secret_expires_at > :now THEN s.previous_secret END,
       s.rate_limit
FROM deliveries AS d
JOIN events AS e ON e.id = d.event_id
LEFT JOIN subscriptions AS s ON s.id = d.subscription_id
WHERE d.seq IN (SELECT value FROM json_each(:seqs));

-- name: migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL
);

-- name: subscription_rate_take
-- Tokens of the subscription's rate limit, from a bucket every worker shares (GCRA): rate_tat is
-- when the bucket is next empty. It never lags behind :floor (now less a full bucket) and moves
-- on by :amount (the tokens taken, in seconds); the new value is when the last of them may go.
UPDATE subscriptions
SET rate_tat = max(coalesce(rate_tat, 0), :floor) + :amount
WHERE id = :id
RETURNING rate_tat AS last_send_at;
