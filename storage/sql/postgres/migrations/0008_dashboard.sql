-- The dashboard: each job's story (job_log, appended in the transactions that change the job),
-- sign-in sessions, and the indexes its overview counts the last 24 hours by.

CREATE TABLE job_log (
    id bigserial PRIMARY KEY,
    job_id text NOT NULL,
    at double precision NOT NULL,
    kind text NOT NULL,
    -- JSON, only ever shown.
    detail text NOT NULL
);
CREATE INDEX job_log_by_job ON job_log (job_id, id);
CREATE INDEX job_log_by_at ON job_log (at);

CREATE TABLE dashboard_sessions (
    id text PRIMARY KEY,
    key_hash text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX dashboard_sessions_by_expiry ON dashboard_sessions (expires_at);

CREATE INDEX jobs_by_created ON jobs (created_at);
CREATE INDEX deliveries_by_created ON deliveries (created_at);
