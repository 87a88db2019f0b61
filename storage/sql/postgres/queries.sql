-- Named queries of the PostgreSQL store where its SQL differs from SQLite's; the portable ones
-- are in ../queries.sql. Each starts with a "-- name:" line; parameters are
-- :named (turned into $1, $2 … when loaded). A parameter whose type PostgreSQL cannot infer
-- (compared only with IS NULL, say) carries a cast.

-- name: job_claim
UPDATE jobs SET claimed_by = :worker, claimed_until = :until
WHERE seq IN (
    SELECT seq FROM jobs
    WHERE next_check_at <= :now
      AND (claimed_until IS NULL OR claimed_until < :now)
      AND NOT (provider = ANY(:skip_providers::text[]))
    ORDER BY next_check_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING *;

-- name: webhook_claim
UPDATE inbound_webhooks SET claimed_by = :worker, claimed_until = :until
WHERE id IN (
    SELECT id FROM inbound_webhooks
    WHERE processed_at IS NULL AND (claimed_until IS NULL OR claimed_until < :now)
    ORDER BY id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED)
RETURNING id, job_id, provider, attempt_no, trusted, report, received_at;

-- name: attempt_list
SELECT delivery_seq, attempted_at, status_code, duration_ms, error, error_class, response_body
FROM delivery_attempts
WHERE delivery_seq = ANY(:seqs::bigint[])
ORDER BY id;

-- name: deliveries_recover
UPDATE deliveries SET status = 'pending', attempt_count = 0, next_attempt_at = :now,
                      updated_at = :now
WHERE seq IN (
    SELECT seq FROM deliveries
    WHERE subscription_id = :subscription_id AND status IN ('failed', 'skipped')
      AND created_at >= :since AND created_at < :until
    ORDER BY seq
    LIMIT :limit
    FOR UPDATE SKIP LOCKED);

-- name: delivery_claim_lock
-- Claims take turns, so that each sees the others' claims when it counts what is in flight per
-- target: the per-target cap holds exactly across workers. A claim takes milliseconds.
SELECT pg_advisory_xact_lock(8532461355853705072);  -- the migration lock's key + 1

-- name: retention_lock
-- Retention and the operations that queue an old event again (redeliver, recover) take turns:
-- retention removes only events with no pending delivery, and must see one queued meanwhile.
SELECT pg_advisory_xact_lock(8532461355853705073);  -- the migration lock's key + 2

-- name: delivery_claim
-- Due deliveries, oldest first, with at most max_in_flight (the subscription's, else :cap) in
-- flight per target - a subscription, or a callback URL: a target at its cap is skipped, so one
-- slow receiver can never take every slot. Candidates are locked (SKIP LOCKED), then ranked.
WITH in_flight AS (
    SELECT coalesce(subscription_id, url) AS target, count(*) AS n
    FROM deliveries
    WHERE claimed_until >= :now AND status = 'pending'
    GROUP BY 1
),
at_cap AS (
    SELECT f.target FROM in_flight AS f
    LEFT JOIN subscriptions AS s ON s.id = f.target
    WHERE f.n >= coalesce(s.max_in_flight, :cap)
),
candidates AS (
    SELECT seq, subscription_id, coalesce(subscription_id, url) AS target, next_attempt_at
    FROM deliveries
    WHERE status = 'pending' AND next_attempt_at <= :now
      AND (claimed_until IS NULL OR claimed_until < :now)
      AND coalesce(subscription_id, url) NOT IN (SELECT target FROM at_cap)
    ORDER BY next_attempt_at
    LIMIT :scan
    FOR UPDATE SKIP LOCKED
),
eligible AS (
    SELECT c.seq, c.next_attempt_at
    FROM (
        SELECT c.*, row_number() OVER (PARTITION BY c.target ORDER BY c.next_attempt_at) AS nth
        FROM candidates AS c
    ) AS c
    LEFT JOIN subscriptions AS s ON s.id = c.subscription_id
    LEFT JOIN in_flight AS f ON f.target = c.target
    WHERE (s.status IS NULL OR s.status = 'active')
      AND c.nth + coalesce(f.n, 0) <= coalesce(s.max_in_flight, :cap)
    ORDER BY c.next_attempt_at
    LIMIT :limit
)
UPDATE deliveries AS d SET claimed_by = :worker, claimed_until = :until
FROM eligible
WHERE d.seq = eligible.seq
RETURNING d.seq;

-- name: delivery_tasks
SELECT d.seq, d.id, d.event_id, d.subscription_id, d.url, d.attempt_count, e.payload, s.secret,
       CASE WHEN s.previous_secret_expires_at > :now THEN s.previous_secret END,
       s.rate_limit
FROM deliveries AS d
JOIN events AS e ON e.id = d.event_id
LEFT JOIN subscriptions AS s ON s.id = d.subscription_id
WHERE d.seq = ANY(:seqs::bigint[]);

-- name: job_finish_at_once
-- The terminal transition, its event and its deliveries in one statement (one round trip, atomic
-- on its own). The deliveries come routed from the caller; each subscription is checked again
-- here: gone since it was read, it gets none; disabled since, its delivery is kept as skipped.
WITH finished AS (
    UPDATE jobs SET
        status = :status,
        progress = :progress,
        outputs = :outputs,
        error = :error,
        attempts = :attempts,
        updated_at = :completed_at,
        completed_at = :completed_at,
        next_check_at = NULL,
        submission_state = NULL,
        claimed_by = NULL,
        claimed_until = NULL
    WHERE id = :id AND attempt_no = :attempt_no AND status IN ('queued', 'in_progress')
      AND (NOT CAST(:unsubmitted AS BOOLEAN) OR provider_job_id IS NULL)
    RETURNING id
),
event AS (
    INSERT INTO events (id, type, job_id, payload, created_at)
    SELECT :event_id, :event_type, id, :payload, :created_at FROM finished
    RETURNING id
),
delivered AS (
    INSERT INTO deliveries (id, event_id, subscription_id, url, status, next_attempt_at,
                            created_at, updated_at)
    SELECT d.id, event.id, d.subscription_id, d.url, routed.status,
           CASE WHEN routed.status = 'pending' THEN :created_at END, :created_at, :created_at
    FROM event
    CROSS JOIN unnest(:delivery_ids::text[], :subscription_ids::text[], :urls::text[],
                      :statuses::text[]) AS d (id, subscription_id, url, status)
    LEFT JOIN subscriptions AS s ON s.id = d.subscription_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN s.status = 'disabled' THEN 'skipped' ELSE d.status END AS status
    ) AS routed
    WHERE d.subscription_id IS NULL OR s.id IS NOT NULL
    RETURNING 1
),
told AS (
    -- The job's story gets its ending in the same statement.
    INSERT INTO job_log (job_id, at, kind, detail)
    SELECT id, :created_at, :note_kind, :note_detail FROM finished
    WHERE CAST(:note_kind AS TEXT) IS NOT NULL
    RETURNING 1
)
SELECT count(*) AS finished FROM event;

-- name: job_insert_at_once
-- A new job and the first line of its story in one statement (one round trip instead of BEGIN,
-- two INSERTs and COMMIT); the line only when the job is new. No row: the Idempotency-Key was
-- taken.
WITH inserted AS (
    INSERT INTO jobs (id, status, model, provider, provider_job_id, progress, outputs, error,
                      metadata, callback_url, request, attempts, attempt_no, idempotency_key,
                      request_hash, created_at, updated_at, completed_at, deadline_at,
                      next_check_at, check_count, submitted_at)
    VALUES (:id, :status, :model, :provider, :provider_job_id, :progress, :outputs, :error,
            :metadata, :callback_url, :request, :attempts, :attempt_no, :idempotency_key,
            :request_hash, :created_at, :updated_at, :completed_at, :deadline_at,
            :next_check_at, :check_count, :submitted_at)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
),
told AS (
    INSERT INTO job_log (job_id, at, kind, detail)
    SELECT id, :created_at, :note_kind, :note_detail FROM inserted
    WHERE CAST(:note_kind AS TEXT) IS NOT NULL
    RETURNING 1
)
SELECT count(*) AS created FROM inserted;

-- name: notify
SELECT pg_notify(:channel, '');

-- name: migration_lock
-- Held until the migrating transaction ends: processes starting together migrate one by one.
SELECT pg_advisory_xact_lock(:key);

-- name: job_list
-- Newest first, after a cursor; every filter optional (metadata: one key equal to a value).
SELECT * FROM jobs
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:provider AS TEXT) IS NULL OR provider = :provider)
  AND (CAST(:model AS TEXT) IS NULL OR model = :model)
  AND (CAST(:meta_key AS TEXT) IS NULL
       OR metadata ->> CAST(:meta_key AS TEXT) = :meta_value)
  AND (CAST(:after AS TEXT) IS NULL OR seq < (SELECT seq FROM jobs WHERE id = :after))
ORDER BY seq DESC
LIMIT :limit;

-- name: job_get_many
-- Jobs by id, many at once (reads made together: storage/sqlstore.py Batched).
SELECT * FROM jobs WHERE id = ANY(:ids::text[]);
