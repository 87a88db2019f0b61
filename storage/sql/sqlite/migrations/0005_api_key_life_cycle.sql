-- API keys get a life cycle: an id to name them by, an optional name, the first characters of
-- the key (to recognise it; keys made before have none), when it was last used (updated at most
-- once a minute), and when it was revoked (a revoked key is refused; its row stays, listed).
ALTER TABLE api_keys ADD COLUMN id TEXT;
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN prefix TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at REAL;
ALTER TABLE api_keys ADD COLUMN revoked_at REAL;
-- Keys made before get an id from their hash: stable, and too little of it to matter.
UPDATE api_keys SET id = 'key_' || substr(hash, 1, 16) WHERE id IS NULL;
CREATE UNIQUE INDEX api_keys_by_id ON api_keys (id);
