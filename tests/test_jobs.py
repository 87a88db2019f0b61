"""The job engine's handling of received webhooks: only a verified body is taken as the status."""

from __future__ import annotations

import time

import pytest

from service.jobs import JobEngine
from storage.records import InboundWebhook, JobProgress
from tests.support.databases import BACKENDS
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
