-- Named queries of the SQLite store where its SQL differs from PostgreSQL's; the portable ones
-- are in ../queries.sql. Each starts with a "-- name:" line; parameters are :named.

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

-- name: webhook_claim
UPDATE inbound_webhooks SET claimed_by = :worker, claimed_until = :until
WHERE id IN (
    SELECT id FROM inbound_webhooks
    WHERE processed_at IS NULL AND (claimed_until IS NULL OR claimed_until < :now)
    ORDER BY id
    LIMIT :limit)
RETURNING id, job_id, provider, attempt_no, trusted, report, received_at;

-- name: attempt_list
SELECT delivery_seq, attempted_at, status_code, duration_ms, error, error_class, response_body
FROM delivery_attempts
WHERE delivery_seq IN (SELECT value FROM json_each(:seqs))
ORDER BY id;

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

-- name: retention_lock
-- SQLite's single writer already makes retention and redelivery take turns.
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

-- name: job_list
-- Newest first, after a cursor; every filter optional (metadata: one key equal to a value).
SELECT * FROM jobs
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:provider AS TEXT) IS NULL OR provider = :provider)
  AND (CAST(:model AS TEXT) IS NULL OR model = :model)
  AND (CAST(:meta_key AS TEXT) IS NULL
       OR EXISTS (SELECT 1 FROM json_each(metadata) AS m
                WHERE m.key = :meta_key AND m.value = :meta_value))
  AND (CAST(:after AS TEXT) IS NULL OR seq < (SELECT seq FROM jobs WHERE id = :after))
ORDER BY seq DESC
LIMIT :limit;

-- name: job_get_many
-- Jobs by id, many at once (reads made together: storage/sqlstore.py Batched).
SELECT * FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));
