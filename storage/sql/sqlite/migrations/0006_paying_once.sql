-- Paying a provider once: a submission is recorded as under way before the provider is called,
-- so that whoever takes the job next knows the provider may have accepted it.
-- submission_state: 'sending' (a worker is calling the provider, or died doing so) or
-- 'uncertain' (the answer never came); NULL once the provider job is recorded, or when the last
-- send certainly never reached the provider. It belongs to attempt submission_attempt only.
ALTER TABLE jobs ADD COLUMN submission_state TEXT
    CHECK (submission_state IN ('sending', 'uncertain'));
ALTER TABLE jobs ADD COLUMN submission_attempt INTEGER;
ALTER TABLE jobs ADD COLUMN submission_started_at REAL;

-- A row per running worker, refreshed by its heartbeat: the claims of a worker whose heartbeat
-- stopped are given back at once instead of when their leases lapse. `host` names the machine
-- and process namespace, so that a worker can tell a dead neighbour by its pid.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE INDEX workers_by_host ON workers (host);
