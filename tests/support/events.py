"""Terminal events made fast: jobs finished by the job engine directly, as a worker would on a
completion, without going through a provider."""

from __future__ import annotations

import time

from service.context import Context
from service.jobs import JobEngine
from storage.ids import new_id
from storage.records import Job


async def finish_jobs(
    context: Context, count: int, metadata: dict[str, str] | None = None
) -> list[str]:
    """Creates `count` running jobs and completes them; the ids of the jobs."""
    engine, now, ids = JobEngine(context, "tests"), time.time(), []
    for _ in range(count):
        job = Job(
            id=new_id("vid"),
            status="in_progress",
            model="simulator/x",
            provider="simulator",
            provider_job_id=new_id("p"),
            request={"model": "simulator/x", "fallback_models": []},
            attempts=[{"provider": "simulator", "model": "simulator/x"}],
            metadata=metadata or {},
            created_at=now,
            updated_at=now,
            deadline_at=now + 600,
        )
        await context.store.create_job(job)
        outputs = [{"url": "https://cdn.example/v.mp4", "content_type": "video/mp4"}]
        assert await engine.finish(job, "completed", outputs=outputs)
        ids.append(job.id)
    return ids
