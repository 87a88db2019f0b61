-- Account-level webhooks (OpenAI's project webhooks) name the provider's job, not ours.
CREATE INDEX jobs_by_provider_job ON jobs (provider, provider_job_id);
