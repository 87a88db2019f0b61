-- The initial schema: jobs and their state machine, the receiver inbox, subscriptions,
-- events (one per job) and the delivery outbox with its attempt log.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE api_keys (
    hash TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);

CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('queued', 'in_progress', 'completed', 'failed')),
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_job_id TEXT,
    progress INTEGER NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    callback_url TEXT,
    request TEXT NOT NULL,
    attempts TEXT NOT NULL DEFAULT '[]',
    attempt_no INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT UNIQUE,
    request_hash TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    completed_at REAL,
    deadline_at REAL NOT NULL,
    -- When a worker should next submit or poll; NULL once terminal.
    next_check_at REAL,
    check_count INTEGER NOT NULL DEFAULT 0,
    submitted_at REAL,
    claimed_by TEXT,
    claimed_until REAL
);
CREATE INDEX jobs_due ON jobs (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX jobs_by_status ON jobs (status, seq);

CREATE TABLE inbound_webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    attempt_no INTEGER NOT NULL,
    trusted INTEGER NOT NULL,
    report TEXT,
    body BLOB NOT NULL,
    received_at REAL NOT NULL,
    processed_at REAL,
    claimed_by TEXT,
    claimed_until REAL
);
CREATE INDEX inbound_webhooks_unprocessed ON inbound_webhooks (id) WHERE processed_at IS NULL;

CREATE TABLE subscriptions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    secret TEXT NOT NULL,
    filter TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    -- Exactly one terminal event per job, enforced by the database too.
    job_id TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX events_by_type ON events (type, seq);

CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- NULL for the job's own callback_url.
    subscription_id TEXT,
    url TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'succeeded', 'failed', 'skipped', 'cancelled')),
    attempt_count INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    claimed_by TEXT,
    claimed_until REAL,
    last_status_code INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, seq);

CREATE TABLE delivery_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_seq INTEGER NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    attempted_at REAL NOT NULL,
    status_code INTEGER,
    duration_ms REAL NOT NULL,
    error TEXT,
    response_body TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_seq);
