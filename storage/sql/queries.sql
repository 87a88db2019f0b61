-- Named queries both stores run as written: portable SQL (SQLite 3.35+ and PostgreSQL). Each
-- starts with a "-- name:" line; parameters are :named. What differs between the two lives in
-- sqlite/queries.sql and postgres/queries.sql, and a name is defined in one place only.

-- name: meta_insert
INSERT INTO meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO NOTHING;

-- name: meta_get
SELECT value FROM meta WHERE key = :key;

-- name: meta_set
INSERT INTO meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: meta_replace
UPDATE meta SET value = :new WHERE key = :key AND value = :old;

-- name: api_key_insert_first
INSERT INTO api_keys (id, hash, name, prefix, created_at)
SELECT :id, :hash, :name, :prefix, :created_at WHERE NOT EXISTS (SELECT 1 FROM api_keys);

-- name: api_key_insert
INSERT INTO api_keys (id, hash, name, prefix, created_at)
VALUES (:id, :hash, :name, :prefix, :created_at);

-- name: api_key_known
SELECT 1 FROM api_keys WHERE hash = :hash AND revoked_at IS NULL;

-- name: api_key_list
SELECT id, hash, name, prefix, created_at, last_used_at, revoked_at FROM api_keys
ORDER BY created_at, id;

-- name: api_key_revoke
UPDATE api_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL;

-- name: api_key_touch
-- At most one write a minute per key, however many processes see it used.
UPDATE api_keys SET last_used_at = :now
WHERE hash = :hash AND (last_used_at IS NULL OR last_used_at < :stale_before);

-- name: job_insert
INSERT INTO jobs (id, status, model, provider, provider_job_id, progress, outputs, error,
                  metadata, callback_url, request, attempts, attempt_no, idempotency_key,
                  request_hash, created_at, updated_at, completed_at, deadline_at,
                  next_check_at, check_count, submitted_at)
VALUES (:id, :status, :model, :provider, :provider_job_id, :progress, :outputs, :error,
        :metadata, :callback_url, :request, :attempts, :attempt_no, :idempotency_key,
        :request_hash, :created_at, :updated_at, :completed_at, :deadline_at,
        :next_check_at, :check_count, :submitted_at)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING seq;

-- name: job_next_due
SELECT min(next_check_at) AS due FROM jobs WHERE next_check_at IS NOT NULL;

-- name: job_by_provider_job
SELECT * FROM jobs WHERE provider = :provider AND provider_job_id = :provider_job_id
ORDER BY seq DESC
LIMIT 1;

-- name: job_by_idempotency_key
SELECT * FROM jobs WHERE idempotency_key = :idempotency_key;

-- name: job_record_submission
-- The provider job a submission created, recorded once: by the worker that sent it, or by
-- whoever found it first (a worker reconciling, a webhook adopting it). The worker holding the
-- claim, if it is this one, gives it back.
UPDATE jobs SET
    provider_job_id = :provider_job_id,
    status = CASE WHEN :status = 'in_progress' THEN 'in_progress' ELSE status END,
    progress = CASE WHEN CAST(:progress AS INTEGER) > progress THEN :progress ELSE progress END,
    attempts = :attempts,
    submitted_at = :now,
    updated_at = :now,
    next_check_at = :next_check_at,
    check_count = 0,
    submission_state = NULL,
    claimed_by = CASE WHEN claimed_by = :worker THEN NULL ELSE claimed_by END,
    claimed_until = CASE WHEN claimed_by = :worker THEN NULL ELSE claimed_until END
WHERE id = :id AND attempt_no = :attempt_no AND status IN ('queued', 'in_progress')
  AND (provider_job_id IS NULL OR provider_job_id = :provider_job_id);

-- name: job_begin_submission
-- Written before a provider is called: whoever takes the job next knows that the provider may
-- have accepted this attempt (paying once).
UPDATE jobs SET submission_state = 'sending', submission_attempt = attempt_no,
                submission_started_at = :now
WHERE id = :id AND attempt_no = :attempt_no AND claimed_by = :worker
  AND provider_job_id IS NULL AND status IN ('queued', 'in_progress');

-- name: job_submission_unanswered
-- A submission got no answer: uncertain when it (or an earlier one) may have reached the
-- provider, cleared when it certainly did not; the job waits for its next check.
UPDATE jobs SET
    submission_state = CASE WHEN :uncertain THEN 'uncertain' ELSE NULL END,
    next_check_at = :next_check_at,
    check_count = :check_count,
    claimed_by = NULL,
    claimed_until = NULL
WHERE id = :id AND attempt_no = :attempt_no AND claimed_by = :worker
  AND provider_job_id IS NULL AND status IN ('queued', 'in_progress');

-- name: job_reschedule
UPDATE jobs SET next_check_at = :next_check_at, check_count = :check_count,
                claimed_by = NULL, claimed_until = NULL
WHERE id = :id AND claimed_by = :worker AND status IN ('queued', 'in_progress');

-- name: job_record_progress
-- Progress only rises (a NULL :progress compares as unknown and changes nothing).
UPDATE jobs SET
    status = CASE WHEN :status = 'in_progress' THEN 'in_progress' ELSE status END,
    progress = CASE WHEN CAST(:progress AS INTEGER) > progress THEN :progress ELSE progress END,
    provider_job_id = coalesce(provider_job_id, :provider_job_id),
    updated_at = CASE
        WHEN (:status = 'in_progress' AND status = 'queued')
             OR CAST(:progress AS INTEGER) > progress
        THEN :now ELSE updated_at END
WHERE id = :id AND attempt_no = :attempt_no AND status IN ('queued', 'in_progress');

-- name: job_record_poll
UPDATE jobs SET
    status = CASE WHEN :status = 'in_progress' THEN 'in_progress' ELSE status END,
    progress = CASE WHEN CAST(:progress AS INTEGER) > progress THEN :progress ELSE progress END,
    updated_at = CASE
        WHEN (:status = 'in_progress' AND status = 'queued')
             OR CAST(:progress AS INTEGER) > progress
        THEN :now ELSE updated_at END,
    next_check_at = :next_check_at,
    check_count = check_count + 1,
    claimed_by = NULL,
    claimed_until = NULL
WHERE id = :id AND attempt_no = :attempt_no AND claimed_by = :worker
  AND status IN ('queued', 'in_progress');

-- name: job_switch_attempt
UPDATE jobs SET
    attempt_no = attempt_no + 1,
    model = :model,
    provider = :provider,
    provider_job_id = NULL,
    attempts = :attempts,
    submitted_at = NULL,
    submission_state = NULL,
    check_count = 0,
    next_check_at = :now,
    updated_at = :now,
    claimed_by = NULL,
    claimed_until = NULL
WHERE id = :id AND attempt_no = :attempt_no AND status IN ('queued', 'in_progress');

-- name: job_poke
UPDATE jobs SET next_check_at = CASE WHEN :now < next_check_at THEN :now ELSE next_check_at END
WHERE id = :id AND status IN ('queued', 'in_progress') AND next_check_at IS NOT NULL;

-- name: job_finish
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
  AND (NOT CAST(:unsubmitted AS BOOLEAN) OR provider_job_id IS NULL);

-- name: event_insert
INSERT INTO events (id, type, job_id, payload, created_at)
VALUES (:id, :type, :job_id, :payload, :created_at);

-- name: event_get
SELECT * FROM events WHERE id = :id;

-- name: event_list
SELECT * FROM events
WHERE (CAST(:type AS TEXT) IS NULL OR type = :type)
  AND (CAST(:since AS DOUBLE PRECISION) IS NULL OR created_at >= :since)
  AND (CAST(:after AS TEXT) IS NULL OR seq < (SELECT seq FROM events WHERE id = :after))
ORDER BY seq DESC
LIMIT :limit;

-- name: webhook_insert
INSERT INTO inbound_webhooks
    (job_id, provider, attempt_no, trusted, report, body, received_at, digest)
VALUES (:job_id, :provider, :attempt_no, :trusted, :report, :body, :now, :digest)
ON CONFLICT (job_id, attempt_no, digest) DO NOTHING;

-- name: webhook_finish
UPDATE inbound_webhooks SET processed_at = :now, claimed_by = NULL, claimed_until = NULL
WHERE id = :id;

-- name: webhook_defer
UPDATE inbound_webhooks SET claimed_by = NULL, claimed_until = :until WHERE id = :id;

-- name: subscription_insert
INSERT INTO subscriptions (id, kind, url, events, description, status, secret, filter,
                           max_in_flight, rate_limit, created_at, updated_at)
VALUES (:id, :kind, :url, :events, :description, :status, :secret, :filter,
        :max_in_flight, :rate_limit, :created_at, :updated_at);

-- name: subscription_get
SELECT * FROM subscriptions WHERE id = :id;

-- name: subscription_list
SELECT * FROM subscriptions
WHERE kind = :kind
  AND (CAST(:url AS TEXT) IS NULL OR url = :url)
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:after AS TEXT) IS NULL OR seq < (SELECT seq FROM subscriptions WHERE id = :after))
ORDER BY seq DESC
LIMIT :limit;

-- name: subscription_all
SELECT * FROM subscriptions;

-- name: subscription_update
-- One statement for every PATCH: a column changes only when its set_<column> flag is true.
UPDATE subscriptions SET
    url = CASE WHEN :set_url THEN :url ELSE url END,
    events = CASE WHEN :set_events THEN :events ELSE events END,
    description = CASE WHEN :set_description THEN :description ELSE description END,
    status = CASE WHEN :set_status THEN :status ELSE status END,
    filter = CASE WHEN :set_filter THEN :filter ELSE filter END,
    max_in_flight = CASE WHEN :set_max_in_flight THEN :max_in_flight ELSE max_in_flight END,
    rate_limit = CASE WHEN :set_rate_limit THEN :rate_limit ELSE rate_limit END,
    -- A new rate starts with a full bucket, not with the old rate's debts.
    rate_tat = CASE WHEN :set_rate_limit THEN NULL ELSE rate_tat END,
    updated_at = :now
WHERE id = :id;

-- name: subscription_secrets_to_reseal
-- Subscriptions with a secret not sealed with the newest key (:prefix): stored in clear by an
-- older version, or sealed with an older key.
SELECT seq, id, secret, previous_secret FROM subscriptions
WHERE seq > :after
  AND (substr(secret, 1, :length) <> :prefix OR substr(previous_secret, 1, :length) <> :prefix)
ORDER BY seq
LIMIT :limit;

-- name: subscription_reseal_secret
UPDATE subscriptions SET secret = :new WHERE id = :id AND secret = :old;

-- name: subscription_reseal_previous_secret
UPDATE subscriptions SET previous_secret = :new WHERE id = :id AND previous_secret = :old;

-- name: subscription_rotate_secret
UPDATE subscriptions SET
    previous_secret = secret,
    previous_secret_expires_at = :grace_until,
    secret = :secret,
    updated_at = :now
WHERE id = :id;

-- name: subscription_rate_take
-- Tokens of the subscription's rate limit, from a bucket every worker shares (GCRA): rate_tat is
-- when the bucket is next empty. It never lags behind :floor (now less a full bucket) and moves
-- on by :amount (the tokens taken, in seconds); the new value is when the last of them may go.
UPDATE subscriptions
SET rate_tat = CASE WHEN rate_tat > :floor THEN rate_tat ELSE :floor END + :amount
WHERE id = :id
RETURNING rate_tat AS last_send_at;

-- name: subscription_rate_give_back
UPDATE subscriptions SET rate_tat = rate_tat - :amount WHERE id = :id;

-- name: subscription_enabled
UPDATE subscriptions SET disabled_reason = NULL, failing_since = NULL WHERE id = :id;

-- name: hook_remove
-- A hook whose target answered 410 Gone is removed (the REST-hook convention); a subscription is
-- not a hook and is left to subscription_disable.
DELETE FROM subscriptions WHERE id = :id AND kind = 'hook';

-- name: subscription_disable
UPDATE subscriptions SET status = 'disabled', disabled_reason = :reason, updated_at = :now
WHERE id = :id AND status = 'active';

-- name: subscription_succeeded
UPDATE subscriptions SET failing_since = NULL
WHERE id = :subscription_id AND failing_since IS NOT NULL;

-- name: subscription_failed
UPDATE subscriptions SET failing_since = coalesce(failing_since, :attempted_at)
WHERE id = :subscription_id;

-- name: subscriptions_failing_too_long
SELECT id, failing_since FROM subscriptions
WHERE status = 'active' AND failing_since IS NOT NULL AND failing_since <= :cutoff;

-- name: deliveries_skip_for_subscription
-- A disabled subscription's waiting deliveries are kept as skipped, to be recovered later.
UPDATE deliveries SET status = 'skipped', next_attempt_at = NULL, updated_at = :now
WHERE subscription_id = :id AND status = 'pending';

-- name: subscription_delete
DELETE FROM subscriptions WHERE id = :id;

-- name: deliveries_cancel_for_subscription
UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, updated_at = :now
WHERE subscription_id = :id AND status = 'pending';

-- name: delivery_insert
INSERT INTO deliveries (id, event_id, subscription_id, url, status, next_attempt_at,
                        created_at, updated_at)
VALUES (:id, :event_id, :subscription_id, :url, :status, :next_attempt_at, :now, :now);

-- name: delivery_list
SELECT * FROM deliveries
WHERE (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:subscription_id AS TEXT) IS NULL OR subscription_id = :subscription_id)
  AND (CAST(:event_id AS TEXT) IS NULL OR event_id = :event_id)
  AND (CAST(:since AS DOUBLE PRECISION) IS NULL OR created_at >= :since)
  AND (CAST(:after AS TEXT) IS NULL OR seq < (SELECT seq FROM deliveries WHERE id = :after))
ORDER BY seq DESC
LIMIT :limit;

-- name: delivery_get
SELECT * FROM deliveries WHERE id = :id;

-- name: deliveries_redeliver
-- Sends an event again to its targets (or one subscription's): due now, a full schedule again.
-- Deliveries in flight are left alone; so are those of subscriptions not active any more.
UPDATE deliveries SET status = 'pending', attempt_count = 0, next_attempt_at = :now,
                      updated_at = :now
WHERE event_id = :event_id
  AND (CAST(:subscription_id AS TEXT) IS NULL OR subscription_id = :subscription_id)
  AND claimed_by IS NULL
  AND (subscription_id IS NULL
       OR subscription_id IN (SELECT id FROM subscriptions WHERE status = 'active'));

-- name: delivery_insert_for_subscription
INSERT INTO deliveries (id, event_id, subscription_id, url, status, next_attempt_at,
                        created_at, updated_at)
SELECT :id, :event_id, s.id, s.url, 'pending', :now, :now, :now
FROM subscriptions AS s
WHERE s.id = :subscription_id AND s.status = 'active'
  AND NOT EXISTS (SELECT 1 FROM deliveries
                  WHERE event_id = :event_id AND subscription_id = :subscription_id);

-- name: delivery_stats
SELECT status, count(*) AS n, min(created_at) AS oldest
FROM deliveries
WHERE status IN ('pending', 'failed')
GROUP BY status;

-- name: events_expire
-- Old events go with their deliveries and attempts (ON DELETE CASCADE), unless still being sent
-- (a redelivery or recovery queueing one meanwhile takes turns with this: retention_lock).
DELETE FROM events WHERE seq IN (
    SELECT seq FROM events AS e
    WHERE e.created_at < :cutoff
      AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                      WHERE d.event_id = e.id AND d.status = 'pending')
    ORDER BY seq
    LIMIT :batch);

-- name: attempts_expire
DELETE FROM delivery_attempts WHERE id IN (
    SELECT id FROM delivery_attempts WHERE attempted_at < :cutoff ORDER BY id LIMIT :batch);

-- name: webhooks_expire
DELETE FROM inbound_webhooks WHERE id IN (
    SELECT id FROM inbound_webhooks
    WHERE received_at < :cutoff AND processed_at IS NOT NULL
    ORDER BY id
    LIMIT :batch);

-- name: delivery_record
UPDATE deliveries SET
    -- A retry for a subscription disabled meanwhile is kept as skipped, not sent.
    status = CASE
        WHEN :status = 'pending' AND EXISTS (
            SELECT 1 FROM subscriptions AS s
            WHERE s.id = deliveries.subscription_id AND s.status = 'disabled')
        THEN 'skipped'
        -- Nor is one sent for a subscription or hook removed meanwhile.
        WHEN :status = 'pending' AND deliveries.subscription_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM subscriptions AS s WHERE s.id = deliveries.subscription_id)
        THEN 'cancelled'
        ELSE :status END,
    attempt_count = attempt_count + 1,
    next_attempt_at = :next_attempt_at,
    last_status_code = :status_code,
    last_error = :error,
    updated_at = :attempted_at,
    delivered_at = CASE WHEN :status = 'succeeded' THEN :attempted_at ELSE delivered_at END,
    claimed_by = NULL,
    claimed_until = NULL
WHERE seq = :seq AND claimed_by = :worker;

-- name: delivery_defer
-- Back to the queue for later without counting as an attempt (a subscription's rate limit).
UPDATE deliveries SET next_attempt_at = :next_attempt_at, claimed_by = NULL, claimed_until = NULL
WHERE seq = :seq AND claimed_by = :worker;

-- name: attempt_insert
INSERT INTO delivery_attempts (delivery_seq, attempted_at, status_code, duration_ms, error,
                               error_class, response_body)
VALUES (:seq, :attempted_at, :status_code, :duration_ms, :error, :error_class, :response_body);

-- name: release_jobs
UPDATE jobs SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = :worker;

-- name: release_webhooks
UPDATE inbound_webhooks SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = :worker;

-- name: release_deliveries
UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = :worker;

-- name: worker_heartbeat
INSERT INTO workers (id, host, pid, started_at, last_seen) VALUES (:id, :host, :pid, :now, :now)
ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen;

-- name: workers_on_host
SELECT id, pid FROM workers WHERE host = :host;

-- name: workers_silent
SELECT id FROM workers WHERE last_seen < :before;

-- name: worker_forget
DELETE FROM workers WHERE id = :worker;

-- name: migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL
);

-- name: migrations_applied
SELECT version FROM schema_migrations;

-- name: migration_record
INSERT INTO schema_migrations (version, name, applied_at) VALUES (:version, :name, :now);

-- name: schema_version
SELECT max(version) AS version FROM schema_migrations;

-- name: job_log_insert
INSERT INTO job_log (job_id, at, kind, detail) VALUES (:job_id, :at, :kind, :detail);

-- name: job_log_insert_if_changed
-- An observation is told only when it moved the job (status forward, progress up; the update set
-- updated_at to its time): a job polled a thousand times has a story of a few lines.
INSERT INTO job_log (job_id, at, kind, detail)
SELECT :job_id, :at, :kind, :detail
WHERE EXISTS (SELECT 1 FROM jobs WHERE id = :job_id AND updated_at = :at);

-- name: job_log_insert_capped
-- What arrives from outside (webhooks) is told up to a bound per job, so a sender repeating
-- itself cannot grow a job's story without end.
INSERT INTO job_log (job_id, at, kind, detail)
SELECT :job_id, :at, :kind, :detail
WHERE (SELECT count(*) FROM job_log WHERE job_id = :job_id) < :cap;

-- name: job_log_list
SELECT id, job_id, at, kind, detail FROM job_log WHERE job_id = :job_id ORDER BY id LIMIT :limit;

-- name: job_log_expire
DELETE FROM job_log WHERE id IN (
    SELECT id FROM job_log WHERE at < :cutoff ORDER BY id LIMIT :batch);

-- name: job_counts
SELECT status, provider, count(*) AS n FROM jobs WHERE created_at >= :since
GROUP BY status, provider;

-- name: delivery_counts
SELECT status, count(*) AS n FROM deliveries WHERE created_at >= :since GROUP BY status;

-- name: delivery_oldest_pending
SELECT * FROM deliveries WHERE status = 'pending' ORDER BY seq LIMIT 1;

-- name: session_insert
INSERT INTO dashboard_sessions (id, key_hash, created_at, expires_at)
VALUES (:id, :key_hash, :created_at, :expires_at);

-- name: session_get
SELECT * FROM dashboard_sessions WHERE id = :id;

-- name: session_delete
DELETE FROM dashboard_sessions WHERE id = :id;

-- name: sessions_expire
DELETE FROM dashboard_sessions WHERE id IN (
    SELECT id FROM dashboard_sessions WHERE expires_at < :cutoff ORDER BY expires_at LIMIT :batch);

-- name: event_by_job
SELECT * FROM events WHERE job_id = :job_id;
