"""What the dashboard reads and writes through the store, the same on every backend: each job's
story (written in the transactions that change the job, bounded, expired with old records),
sessions, the overview's counts, and the filtered, cursor-paginated lists."""

from __future__ import annotations

import os
import time

import pytest

from service.encryption import Cipher
from storage import open_store
from storage.records import (
    AttemptResult,
    DashboardSession,
    JobNote,
    JobProgress,
    NewDelivery,
    Subscription,
)
from storage.sqlstore import JOB_LOG_CAP
from tests.support.databases import BACKENDS
from tests.test_storage import a_job, an_event, final

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
async def store(database_url):
    opened = await open_store(database_url, Cipher([os.urandom(32)]))
    await opened.migrate()
    yield opened
    await opened.close()


def note(kind: str, **detail) -> JobNote:
    return JobNote(kind, detail)


async def kinds(store, job_id: str) -> list[str]:
    return [entry.kind for entry in await store.job_log(job_id)]


async def test_a_job_refused_for_its_idempotency_key_tells_nothing(store):
    first, created = await store.create_job(a_job(idempotency_key="k"), note("created"))
    assert created
    refused = a_job(idempotency_key="k")
    again, created = await store.create_job(refused, note("created"))
    assert not created and again.id == first.id
    assert await kinds(store, first.id) == ["created"]
    assert await kinds(store, refused.id) == []


async def test_a_jobs_story_is_written_with_each_change_it_tells_of(store):
    job = a_job()
    await store.create_job(job, note("created", model=job.model))
    [claimed] = await store.claim_jobs("w", time.time(), 10, 60, ())
    progress = JobProgress("queued", 0, "p1")
    assert await store.record_submission(
        claimed, "w", progress, claimed.attempts, time.time(), time.time(), note("submitted")
    )
    # A write that changes nothing (another provider job for the same attempt) tells nothing.
    other = JobProgress("queued", 0, "p2")
    assert not await store.record_submission(
        claimed, "w", other, claimed.attempts, time.time(), time.time(), note("submitted")
    )
    assert await kinds(store, job.id) == ["created", "submitted"]

    moved = JobProgress("in_progress", 40)
    await store.record_progress(job.id, 0, moved, time.time(), note=note("status", progress=40))
    # The same observation again moved nothing: no second line.
    await store.record_progress(job.id, 0, moved, time.time() + 1, note=note("status"))
    await store.record_progress(
        job.id, 0, JobProgress("in_progress", 70), time.time() + 2, note=note("status")
    )
    assert await kinds(store, job.id) == ["created", "submitted", "status", "status"]

    event = an_event(job)
    finished = await store.finish_job(
        job.id, 0, final(), event, lambda subscriptions: [], note("finished", event_id=event.id)
    )
    assert finished
    # The end is told once: a second terminal transition writes nothing.
    assert not await store.finish_job(
        job.id, 0, final(), an_event(job), lambda s: [], note("finished")
    )
    log = await store.job_log(job.id)
    assert [entry.kind for entry in log][-1] == "finished"
    assert log[-1].detail == {"event_id": event.id}
    assert [entry.kind for entry in log].count("finished") == 1
    assert (await store.get_event_for_job(job.id)).id == event.id


async def test_webhook_lines_are_bounded_per_job(store):
    job = a_job()
    await store.create_job(job)
    for _ in range(JOB_LOG_CAP + 5):
        await store.add_job_note(job.id, note("webhook", outcome="duplicate"), time.time())
    await store.add_webhook(
        job.id, "simulator", 0, True, None, b"{}", time.time(), note("webhook", outcome="x")
    )
    assert len(await store.job_log(job.id)) == JOB_LOG_CAP
    # The webhook itself is kept for the worker; only its line is left out.
    assert len(await store.claim_webhooks("w", time.time(), 10, 60)) == 1


async def test_retention_removes_old_story_lines_and_expired_sessions(store):
    job = a_job()
    await store.create_job(job)
    long_ago = time.time() - 10 * 86400
    await store.add_job_note(job.id, note("webhook", outcome="old"), long_ago)
    await store.add_job_note(job.id, note("webhook", outcome="new"), time.time())
    old = DashboardSession(id="old", key_hash="h", created_at=long_ago, expires_at=long_ago + 3600)
    current = DashboardSession(
        id="new", key_hash="h", created_at=time.time(), expires_at=time.time() + 3600
    )
    await store.create_session(old)
    await store.create_session(current)
    assert await store.expire(time.time() - 86400, 100) >= 2
    assert [entry.detail["outcome"] for entry in await store.job_log(job.id)] == ["new"]
    assert await store.get_session("old") is None
    assert await store.get_session("new") == current
    await store.delete_session("new")
    assert await store.get_session("new") is None


async def test_jobs_filter_by_status_provider_model_and_metadata_with_cursors(store):
    jobs = [a_job(metadata={"user": str(n % 3)}, model=f"simulator/m{n % 2}") for n in range(7)]
    for job in jobs:
        await store.create_job(job)
    page = await store.list_jobs(None, 3, None, metadata=("user", "1"))
    assert [job.id for job in page.items] == [jobs[4].id, jobs[1].id]
    assert not page.has_more
    page = await store.list_jobs(None, 2, None, model="simulator/m0")
    assert [job.id for job in page.items] == [jobs[6].id, jobs[4].id] and page.has_more
    rest = await store.list_jobs(None, 2, page.items[-1].id, model="simulator/m0")
    assert [job.id for job in rest.items] == [jobs[2].id, jobs[0].id] and not rest.has_more
    assert len((await store.list_jobs("queued", 10, None, provider="simulator")).items) == 7
    assert (await store.list_jobs(None, 10, None, provider="fal")).items == []
    assert (await store.list_jobs(None, 10, None, metadata=("user", "9"))).items == []


async def test_overview_counts(store):
    now = time.time()
    for job in (a_job(), a_job(), a_job(provider="fal", model="fal/x")):
        await store.create_job(job)
    counts = await store.job_counts(now - 60)
    assert sorted(counts) == [("queued", "fal", 1), ("queued", "simulator", 2)]
    assert await store.job_counts(time.time() + 60) == []

    subscriber = Subscription(
        id="sub_a",
        url="http://127.0.0.1:9/",
        events=["video.completed"],
        secret="whsec_x",
        created_at=now,
        updated_at=now,
    )
    await store.create_subscription(subscriber)
    job = a_job()
    await store.create_job(job)
    route = lambda subscriptions: [  # noqa: E731
        NewDelivery("sub_a", subscriber.url),
        NewDelivery(None, "http://127.0.0.1:9/cb"),
    ]
    await store.finish_job(job.id, 0, final(), an_event(job), route)
    assert await store.delivery_counts(now - 60) == {"pending": 2}
    oldest = await store.oldest_pending_delivery()
    assert oldest is not None and oldest.subscription_id == "sub_a"
    [task, _] = await store.claim_deliveries("w", time.time(), 10, 60, 10)
    result = AttemptResult(task.seq, "sub_a", time.time(), 1.0, "succeeded", None, 200)
    await store.record_attempts("w", [result], 86400)
    assert await store.delivery_counts(now - 60) == {"pending": 1, "succeeded": 1}
    assert (await store.oldest_pending_delivery()).subscription_id is None

    await store.update_subscription("sub_a", {"status": "disabled"}, time.time())
    disabled = await store.list_subscriptions(10, None, status="disabled")
    assert [s.id for s in disabled.items] == ["sub_a"]
    assert (await store.list_subscriptions(10, None, status="active")).items == []
