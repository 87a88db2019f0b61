"""The job engine: only a verified webhook body is taken as the status; polls back off."""

from __future__ import annotations

import itertools
import time

import pytest

from service.jobs import JobEngine
from storage.records import InboundWebhook, JobProgress
from tests.support.databases import BACKENDS
from tests.support.provider import fake_provider
from tests.support.service import running_service

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)

COMPLETED = {
    "provider_job_id": "p1",
    "status": "completed",
    "progress": 100,
    "outputs": [{"url": "https://cdn.example/v.mp4", "content_type": "video/mp4"}],
}


async def submitted_job(svc):
    video = await svc.submit()
    job = await svc.store.get_job(video["id"])
    assert await svc.store.claim_jobs("t", time.time() + 1, 10, 30, ())
    await svc.store.record_submission(
        job, "t", JobProgress("queued", 0, "p1"), job.attempts, time.time(), time.time() + 600
    )
    return await svc.store.get_job(video["id"])


def hook(job, trusted: bool, report: dict | None) -> InboundWebhook:
    return InboundWebhook(
        id=1,
        job_id=job.id,
        provider="simulator",
        attempt_no=0,
        trusted=trusted,
        report=report,
        received_at=time.time(),
    )


async def test_an_unverified_report_only_brings_the_next_poll_forward(env):
    async with running_service(env, worker=False) as svc:
        job = await submitted_job(svc)
        engine = JobEngine(svc.context, "t")
        assert await engine.process_webhook(hook(job, trusted=False, report=COMPLETED))
        after = await svc.store.get_job(job.id)
        assert after.status == "queued"  # not taken as truth
        assert after.next_check_at <= time.time()  # but the provider will be asked now
        assert await svc.events() == []


async def test_a_verified_report_about_another_provider_job_is_not_applied(env):
    async with running_service(env, worker=False) as svc:
        job = await submitted_job(svc)
        engine = JobEngine(svc.context, "t")
        assert await engine.process_webhook(hook(job, True, {**COMPLETED, "provider_job_id": "p2"}))
        assert (await svc.store.get_job(job.id)).status == "queued"


async def test_a_verified_report_is_applied(env):
    async with running_service(env, worker=False) as svc:
        job = await submitted_job(svc)
        assert await JobEngine(svc.context, "t").process_webhook(hook(job, True, COMPLETED))
        assert (await svc.store.get_job(job.id)).status == "completed"
        [event] = await svc.events()
        assert event["data"]["outputs"][0]["url"] == "https://cdn.example/v.mp4"


async def test_a_report_before_the_submission_is_recorded_waits(env):
    async with running_service(env, worker=False) as svc:
        video = await svc.submit()
        job = await svc.store.get_job(video["id"])
        assert (
            await JobEngine(svc.context, "t").process_webhook(hook(job, True, COMPLETED)) is False
        )


async def test_the_gaps_between_polls_of_a_long_job_grow(env):
    # Slow polls, so that a gap is seconds and the time a poll takes here does not matter; the
    # polls are made at once, by claiming the job when its next check is due.
    env |= {"VIDEOHOOKS_POLL_MIN": "10s", "VIDEOHOOKS_POLL_MAX": "1000s"}
    async with fake_provider() as provider:
        env["VIDEOHOOKS_SIMULATOR_BASE_URL"] = provider.url
        async with running_service(env, public=False, worker=False) as svc:
            video = await svc.submit()
            engine, gaps = JobEngine(svc.context, "t"), []
            for _ in range(6):
                due = (await svc.store.get_job(video["id"])).next_check_at
                [job] = await svc.store.claim_jobs("t", due, 1, 30, ())
                polled_at = time.time()
                await engine.handle(job)  # the submission, then polls of a job that runs on
                gaps.append((await svc.store.get_job(video["id"])).next_check_at - polled_at)
    assert provider.count("GET") == 5
    polls = gaps[1:]
    # Backing off: each gap longer than the last, the fifth several times the first.
    assert all(later > earlier for earlier, later in itertools.pairwise(polls))
    assert polls[-1] > 3 * polls[0]
