-- The initial schema: jobs and their state machine, the receiver inbox, subscriptions,
-- events (one per job) and the delivery outbox with its attempt log.
-- Times are Unix seconds (double precision), as in the SQLite schema.

CREATE TABLE meta (
    key text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE api_keys (
    hash text PRIMARY KEY,
    created_at double precision NOT NULL
);

CREATE TABLE jobs (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    status text NOT NULL CHECK (status IN ('queued', 'in_progress', 'completed', 'failed')),
    model text NOT NULL,
    provider text NOT NULL,
    provider_job_id text,
    progress integer NOT NULL DEFAULT 0,
    outputs jsonb NOT NULL DEFAULT '[]',
    error jsonb,
    metadata jsonb NOT NULL DEFAULT '{}',
    callback_url text,
    request jsonb NOT NULL,
    attempts jsonb NOT NULL DEFAULT '[]',
    attempt_no integer NOT NULL DEFAULT 0,
    idempotency_key text UNIQUE,
    request_hash text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    completed_at double precision,
    deadline_at double precision NOT NULL,
    -- When a worker should next submit or poll; NULL once terminal.
    next_check_at double precision,
    check_count integer NOT NULL DEFAULT 0,
    submitted_at double precision,
    claimed_by text,
    claimed_until double precision
);
CREATE INDEX jobs_due ON jobs (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX jobs_by_status ON jobs (status, seq);

CREATE TABLE inbound_webhooks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id text NOT NULL,
    provider text NOT NULL,
    attempt_no integer NOT NULL,
    trusted boolean NOT NULL,
    report jsonb,
    body bytea NOT NULL,
    received_at double precision NOT NULL,
    processed_at double precision,
    claimed_by text,
    claimed_until double precision
);
CREATE INDEX inbound_webhooks_unprocessed ON inbound_webhooks (id) WHERE processed_at IS NULL;

CREATE TABLE subscriptions (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    url text NOT NULL,
    events jsonb NOT NULL,
    description text,
    status text NOT NULL CHECK (status IN ('active', 'disabled')),
    secret text NOT NULL,
    filter jsonb,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);

CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    type text NOT NULL,
    -- Exactly one terminal event per job, enforced by the database too.
    job_id text NOT NULL UNIQUE,
    payload text NOT NULL,
    created_at double precision NOT NULL
);
CREATE INDEX events_by_type ON events (type, seq);

CREATE TABLE deliveries (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    event_id text NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- NULL for the job's own callback_url.
    subscription_id text,
    url text NOT NULL,
    status text NOT NULL
        CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped', 'cancelled')),
    attempt_count integer NOT NULL DEFAULT 0,
    next_attempt_at double precision,
    claimed_by text,
    claimed_until double precision,
    last_status_code integer,
    last_error text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    delivered_at double precision
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, seq);

CREATE TABLE delivery_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_seq bigint NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    attempted_at double precision NOT NULL,
    status_code integer,
    duration_ms double precision NOT NULL,
    error text,
    response_body text
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_seq);
